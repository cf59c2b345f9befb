"""minigpt models inside EleutherAI's lm-evaluation-harness (the `eval` extra).

Importing this module registers the model type "minigpt", so the harness can build one from a
checkpoint directory:

    import minigpt.eval.harness, lm_eval
    lm_eval.simple_evaluate(model="minigpt", model_args="pretrained=out,batch_size=16",
                            tasks=["lambada_openai"])

(the `lm_eval` command does not import it; `python eval.py --harness_tasks=...` runs the same
thing from the command line). The three request types map onto minigpt's own scorers:

    loglikelihood(context, continuation) -> (log p(continuation | context), greedy?)
                                            minigpt.eval.tasks.score_continuations
    loglikelihood_rolling(text)          -> log p(text | separator), the sliding windows of
                                            minigpt.eval.bpb (window and stride are model_args)
    generate_until(context, gen_kwargs)  -> greedy text, cut at the first `until` string,
                                            at most `max_gen_toks` tokens
"""

from __future__ import annotations

from typing import Any

import lm_eval.api.model
import lm_eval.api.registry
import torch

from minigpt.data.prepare import separator
from minigpt.device import autocast, resolve_device, resolve_dtype
from minigpt.eval.bpb import score_documents
from minigpt.eval.models import EvalModel, load_eval_model
from minigpt.eval.tasks import score_continuations

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_GEN_TOKS = 256


@lm_eval.api.registry.register_model("minigpt")
class MiniGPTLM(lm_eval.api.model.LM):
    """A minigpt or HF-format checkpoint as a harness model. `pretrained` is its directory, or a
    model already loaded with minigpt.eval.load_eval_model."""

    def __init__(
        self,
        pretrained: str | EvalModel,
        batch_size: int | str | None = DEFAULT_BATCH_SIZE,
        device: str | None = None,
        dtype: str = "auto",
        tokenizer: str = "gpt2",
        window: int | None = None,
        stride: int | None = None,
        **kwargs: Any,  # the harness passes settings other backends use (max_batch_size, ...)
    ) -> None:
        super().__init__()
        self._device = resolve_device(device or "auto")
        self.precision = resolve_dtype(dtype, self._device)
        if isinstance(pretrained, EvalModel):
            self.loaded = pretrained
        else:
            self.loaded = load_eval_model(pretrained, self._device, tokenizer)
        # the harness's requests are (context, continuation): the model's own objective scores them
        self.scorer = next(iter(self.loaded.scorers.values()))
        self.batch_size = _batch_size(batch_size)
        self.window, self.stride = window, stride

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        pairs = [request.args for request in requests]
        with autocast(self._device, self.precision):
            scores = score_continuations(
                self.loaded.model, self.loaded.tokenizer, pairs, self.batch_size, self.scorer
            )
        return [(score.total, score.greedy) for score in scores]

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        out = []
        with autocast(self._device, self.precision):
            for request in requests:
                (text,) = request.args
                score = score_documents(
                    self.loaded.model, self.loaded.tokenizer, [text], window=self.window,
                    stride=self.stride, batch_size=self.batch_size, scorer=self.scorer,
                )  # fmt: skip
                out.append(-score.nll)
        return out

    def generate_until(self, requests: list[Any]) -> list[str]:
        return [self._generate(*request.args) for request in requests]

    def _generate(self, context: str, gen_kwargs: dict[str, Any]) -> str:
        """Greedy continuation of `context`, stopped as soon as it contains an `until` string."""
        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        max_new = int(gen_kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
        ids = tokenizer.encode(context) or separator(tokenizer)
        idx = torch.tensor([ids], device=self._device)
        new: list[int] = []
        text = ""
        with autocast(self._device, self.precision):
            for token in model.generate_stream(
                idx, max_new, temperature=0.0, top_k=None, eos_id=tokenizer.eot_id
            ):
                if int(token[0, 0]) == tokenizer.eot_id:
                    break
                new.append(int(token[0, 0]))
                text = tokenizer.decode(new)
                if any(stop in text for stop in until):
                    break
        cut = min((text.index(s) for s in until if s in text), default=len(text))
        return text[:cut]


def _batch_size(value: int | str | None) -> int:
    """The harness passes ints, digit strings, or "auto" (the default here: no memory probing)."""
    if value is None or str(value).startswith("auto"):
        return DEFAULT_BATCH_SIZE
    size = int(value)
    if size < 1:
        raise ValueError(f"batch_size={size} must be >= 1")
    return size
