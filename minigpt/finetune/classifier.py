"""Head-swap sequence classification on top of any GPT (GPT-1 section 3.2, GPT-2's convention).

A text x_1..x_m goes through the transformer; its feature f pools the final-norm hidden states
h_i = LayerNorm(h_L)[i]:

    last   f = h_m                        the last real token: the only position of a causal model
                                          that has seen the whole text (a prefix model reads the
                                          whole text as prefix)
    mean   f = (1/m) sum_{i<=m} h_i       the mean over real tokens: leans less on how well one
                                          position summarises the text

`pooling="auto"` follows the model's attention: mean for bidirectional models, where every
position saw the whole text (a prepended classification token measured no better,
bench/pooling.py, and needs an embedding row nothing pre-trained), last otherwise.
A new linear head replaces the LM head:

    P(y | x_1..x_m) = softmax(f W_y + b_y)            W_y: (C x K) for K labels
    L2 = -sum_(x, y) log P(y | x_1..x_m)              the classification loss

GPT-1 also keeps language modelling as an auxiliary objective on the same texts, through the LM
head that is kept alongside:

    L3 = L2 + lambda * L1,     L1 = -sum_i log P(x_{i+1} | x_1..x_i)     (lambda = 0.5 in GPT-1)

Prompt-based fine-tuning swaps nothing: with a `Prompt` (minigpt.finetune.prompt) each text is
wrapped in a template and class c is scored by its label word at the template's slot, through the
GPT's own LM head, s_c = z[t_mask, v_c]; the loss is the same L2.

Batches are right-padded: row b holds its tokens at [0, lengths[b]). Causal attention already
stops every real token from seeing the padding after it, so no padding mask is needed and the
fused SDPA kernel stays on its `is_causal` path; the pad positions compute values nobody reads.
Bidirectional and prefix models get `lengths` so their real tokens never see the padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from minigpt.checkpoint import (
    CONFIG_FILE,
    CheckpointError,
    MissingCheckpointError,
    check_tensors,
    check_vocab,
    load_tokenizer,
    read_json,
    read_tensor_file,
    write_json,
    write_tensors,
)
from minigpt.data import collate
from minigpt.data.tokenizer import Tokenizer
from minigpt.finetune.peft import MethodConfig, apply_method, merged_copy
from minigpt.finetune.prompt import Prompt, PromptReadout
from minigpt.model.gpt import GPT
from minigpt.model.loss import IGNORE_INDEX, lm_loss

CLASSIFIER_FILE = "classifier.json"
TENSORS_FILE = "classifier.safetensors"
FORMAT = "minigpt-classifier"
POOLINGS = ("auto", "last", "mean")


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor  # (B, K) class scores
    loss: (
        torch.Tensor | None
    )  # L3 = L2 + lambda * L1 (just L2 when lambda = 0); None without labels
    lm_loss: torch.Tensor | None  # L1, when an auxiliary LM weight was given


class GPTClassifier(nn.Module):
    """A GPT whose LM head is replaced (for classification) by Linear(n_embd, num_labels), or,
    given a `prompt`, kept and read at the label words in the prompt's slot (no new head).

    `labels` are the label values as they appear in the data, in class-index order;
    `label_names` are what to print for them (default: the values themselves). `method` says
    which weights train (see minigpt.finetune.peft); it is applied to `gpt` in place. The head
    always trains. `base_dir` is the checkpoint the GPT came from: frozen-base methods save a
    reference to it instead of its weights.
    """

    def __init__(
        self,
        gpt: GPT,
        labels: Sequence[str],
        label_names: Sequence[str] | None = None,
        method: MethodConfig | None = None,
        base_dir: str | Path | None = None,
        pooling: str = "auto",
        prompt: Prompt | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: choose one of {', '.join(POOLINGS)}")
        if pooling == "auto":
            pooling = "mean" if gpt.config.attention == "bidirectional" else "last"
        self.pooling = pooling
        if len(labels) < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {list(labels)}")
        if label_names is not None and len(label_names) != len(labels):
            raise ValueError(f"{len(label_names)} label names for {len(labels)} labels")
        self.method = method or MethodConfig(method="full")
        self.base_dir = None if base_dir is None else str(Path(base_dir).resolve())
        self.prefix = apply_method(gpt, self.method)
        self.gpt = gpt
        self.labels = tuple(map(str, labels))
        self.label_names = tuple(label_names) if label_names is not None else self.labels
        if prompt is not None and len(prompt.label_ids) != len(labels):
            raise ValueError(
                f"{len(prompt.label_ids)} label words {list(prompt.label_words)} for"
                f" {len(labels)} labels {list(self.labels)}: give one word per label, in order"
            )
        self.prompt = None if prompt is None else PromptReadout(prompt, gpt.config)
        self.head = None if prompt is not None else self._new_head(gpt, len(labels))

    @staticmethod
    def _new_head(gpt: GPT, num_labels: int) -> nn.Linear:
        like = gpt.ln_f.weight
        head = nn.Linear(gpt.config.n_embd, num_labels, device=like.device, dtype=like.dtype)
        nn.init.normal_(head.weight, std=0.02)  # the GPT's own init scale
        nn.init.zeros_(head.bias)
        return head

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        labels: Sequence[str],
        label_names: Sequence[str] | None = None,
        method: MethodConfig | None = None,
        **overrides: Any,
    ) -> GPTClassifier:
        """A classifier over the GPT at `path` (minigpt or HF gpt2/gpt_neo/gptj dir); `overrides`
        replace shape-free config fields such as dropout."""
        gpt = GPT.from_pretrained(path, **overrides)
        return cls(gpt, labels, label_names, method, base_dir=path)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def hidden_states(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states (B, T, C), after the learned prefixes if there are any."""
        cache = None if self.prefix is None else self.prefix.new_cache(self.gpt, len(input_ids))
        mode = self.gpt.config.attention
        prefix_len = lengths if mode == "prefix" else None  # the text is the prefix
        return self.gpt.hidden_states(input_ids, cache, prefix_len, lengths)

    def forward(
        self,
        input_ids: torch.Tensor,
        lengths: torch.Tensor,
        labels: torch.Tensor | None = None,
        aux_lm_weight: float = 0.0,
        class_weight: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """input_ids (B, T) right-padded, lengths (B,) real tokens per row, labels (B,) class
        indices -> ClassifierOutput with logits (B, K). `class_weight` (K,) weighs L2 per class."""
        _check_lengths(lengths, input_ids.size(1))
        lengths = lengths.to(input_ids.device)
        if self.prompt is not None:
            input_ids, lengths = self.prompt.wrap(input_ids, lengths)  # text in the template
        h = self.hidden_states(input_ids, lengths)  # (B, T, C)
        if self.prompt is not None:
            logits = self.prompt.scores(self.gpt.lm_head, h, lengths)  # (B, K) at the slot
        else:
            logits = self.head(self.pool(h, lengths))  # (B, K)
        if labels is None:
            return ClassifierOutput(logits, None, None)
        weight = None if class_weight is None else class_weight.to(logits.device)
        loss = F.cross_entropy(logits.float(), labels.to(logits.device), weight)  # L2
        aux = None
        if aux_lm_weight and self.gpt.config.attention != "causal":
            raise ValueError(
                f"the auxiliary LM loss needs a causal model, but this one's attention is"
                f" {self.gpt.config.attention!r}; fine-tune it with --aux_lm_weight=0"
            )
        if aux_lm_weight:
            aux = lm_loss(self.gpt.lm_head(h), next_token_targets(input_ids, lengths))  # L1
            loss = loss + aux_lm_weight * aux  # L3
        return ClassifierOutput(logits, loss, aux)

    def pool(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, C) hidden states -> (B, C) features f, ignoring the padding."""
        if self.pooling == "last":
            return h[torch.arange(len(h), device=h.device), lengths - 1]  # h_m of each text
        real = torch.arange(h.size(1), device=h.device) < lengths[:, None]  # (B, T)
        return (h * real[..., None]).sum(1) / lengths[:, None].to(h.dtype)

    @torch.no_grad()
    def predict_proba(
        self, texts: Sequence[str], tokenizer: Tokenizer, batch_size: int = 32
    ) -> torch.Tensor:
        """Class probabilities (N, K) for raw texts, truncated to the model's block_size."""
        batch_ids = [encode_text(tokenizer, t, self.gpt.config.block_size) for t in texts]
        pad = tokenizer.eot_id if tokenizer.eot_id is not None else 0
        device = self.gpt.ln_f.weight.device
        was_training = self.training
        self.eval()
        probs = []
        for start in range(0, len(batch_ids), batch_size):
            batch = collate([(ids, 0) for ids in batch_ids[start : start + batch_size]], pad)
            logits = self(batch.input_ids.to(device), batch.lengths.to(device)).logits
            probs.append(logits.float().softmax(-1).cpu())
        self.train(was_training)
        return torch.cat(probs) if probs else torch.empty(0, self.num_labels)

    def label_index(self, label: str | int) -> int:
        """The class index of a label value; a clear error for one the model does not know."""
        try:
            return self.labels.index(str(label))
        except ValueError:
            raise ValueError(
                f"unknown label {label!r}: this classifier knows {list(self.labels)}"
            ) from None


def encode_text(tokenizer: Tokenizer, text: str, max_len: int) -> list[int]:
    """Token ids of one text, keeping its first max_len tokens; empty text is an error."""
    if not text or not text.strip():
        raise ValueError("empty text: there is nothing to classify")
    ids = tokenizer.encode(text)[:max_len]
    if not ids:
        raise ValueError(f"text {text!r} encodes to no tokens")
    return ids


def next_token_targets(input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """targets[b, t] = input_ids[b, t + 1] while t + 1 is a real token, else IGNORE_INDEX: the
    last real token has no next token, and padding is never a target."""
    T = input_ids.size(1)
    targets = torch.full_like(input_ids, IGNORE_INDEX)
    targets[:, :-1] = input_ids[:, 1:]
    positions = torch.arange(T, device=input_ids.device)
    return targets.masked_fill(positions + 1 >= lengths.to(input_ids.device)[:, None], IGNORE_INDEX)


def _check_lengths(lengths: torch.Tensor, T: int) -> None:
    # A device-wide check would sync a GPU every batch; CUDA's gather asserts on bad indices.
    if lengths.device.type == "cpu" and lengths.numel() and int(lengths.min()) < 1:
        raise ValueError("a row has length 0: empty texts cannot be classified")
    if lengths.device.type == "cpu" and lengths.numel() and int(lengths.max()) > T:
        raise ValueError(f"lengths up to {int(lengths.max())} exceed the batch width {T}")


# ---- checkpoints --------------------------------------------------------------------------------
#
# A classifier directory holds classifier.json (labels, method, base reference) and
# classifier.safetensors. Methods that change base weights (top, full) also hold the whole GPT
# (config.json + model.safetensors, loadable on its own with GPT.from_pretrained) and keep only
# the head in classifier.safetensors. Frozen-base methods (head, lora, adalora, adapter, prefix:
# peft.FROZEN_BASE_METHODS) store only their trainable tensors and the path of the base
# checkpoint they were trained on.


def save_classifier(
    classifier: GPTClassifier, path: str | Path, tokenizer: Tokenizer | None = None
) -> None:
    """Write the classifier into directory `path` (see the section comment for the layout)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    method = classifier.method
    if method.frozen_base:
        if classifier.base_dir is None:
            raise ValueError(
                f"method {method.method!r} saves only its trainable tensors plus a reference to"
                " the base checkpoint, but this classifier was built from an in-memory GPT; build"
                " it with GPTClassifier.from_pretrained(dir, ...) or pass base_dir="
            )
    else:
        classifier.gpt.save_pretrained(path)
    write_tensors(path / TENSORS_FILE, _saved_tensors(classifier))
    write_json(path / CLASSIFIER_FILE, _meta(classifier, asdict(method)))
    if tokenizer is not None:
        tokenizer.save(path)


def export_merged(
    classifier: GPTClassifier, path: str | Path, tokenizer: Tokenizer | None = None
) -> None:
    """Write a standalone classifier whose GPT has LoRA merged in, W' = W + (alpha/r) B A:
    no base reference, no PEFT modules, plain Linear layers. Adapters and prefixes add
    computation that no weight of the original architecture can hold, so they cannot merge."""
    method = classifier.method
    if method.method in ("adapter", "prefix"):
        raise ValueError(
            f"{method.method} modules cannot be merged into the GPT's weights; ship the"
            " checkpoint with its base, or fine-tune with --method=lora to export a merged model"
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    merged_copy(classifier.gpt).save_pretrained(path)
    write_tensors(path / TENSORS_FILE, _outside_gpt(classifier))
    meta = _meta(classifier, asdict(MethodConfig(method="full")))
    write_json(path / CLASSIFIER_FILE, {**meta, "merged_from": method.method})
    if tokenizer is not None:
        tokenizer.save(path)


def load_classifier(
    path: str | Path,
    num_labels: int | None = None,
    base_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[GPTClassifier, Tokenizer | None]:
    """(classifier, tokenizer) from a directory written by save_classifier / export_merged; the
    tokenizer is the one saved beside it, else the base's, checked against the model (None when
    neither has one: finetune.py always saves it).

    `num_labels`, when given, must match the checkpoint; `base_dir` overrides the stored base
    reference of a frozen-base checkpoint (for a base that moved)."""
    path = Path(path)
    file = path / CLASSIFIER_FILE
    if not path.exists():
        raise MissingCheckpointError(f"no checkpoint at {path} (no {CLASSIFIER_FILE})")
    if not file.is_file() or read_json(file).get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minigpt classifier checkpoint (no {file.name})")
    meta = read_json(file)
    labels = meta["labels"]
    if num_labels is not None and num_labels != len(labels):
        raise CheckpointError(
            f"{path} has {len(labels)} labels {labels} but num_labels={num_labels} was asked"
        )
    method = MethodConfig(**meta["method"])
    gpt_dir = path
    if method.frozen_base:
        gpt_dir = Path(base_dir or meta["base"])
        if not (gpt_dir / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{path} holds {method.method} weights for the base checkpoint {gpt_dir}, which"
                " is missing; restore it or pass its new location (base_dir= / --base=)"
            )
    gpt = GPT.from_pretrained(gpt_dir)
    tokenizer = load_tokenizer(path) or load_tokenizer(gpt_dir)
    if tokenizer is not None:
        check_vocab(gpt, tokenizer, str(path))
    pooling = meta.get("pooling", "last")
    prompt = _prompt_from_meta(meta.get("prompt"))
    classifier = GPTClassifier(gpt, labels, meta["label_names"], method, gpt_dir, pooling, prompt)
    _load_tensors(classifier, path / TENSORS_FILE)
    return classifier.to(device), tokenizer


def _saved_tensors(classifier: GPTClassifier) -> dict[str, torch.Tensor]:
    """What classifier.safetensors holds: every trainable tensor for frozen-base methods, else
    everything outside the GPT (the head), since the GPT is saved whole beside it."""
    if classifier.method.frozen_base:
        return {n: p for n, p in classifier.named_parameters() if p.requires_grad}
    return _outside_gpt(classifier)


def _outside_gpt(classifier: GPTClassifier) -> dict[str, torch.Tensor]:
    """The tensors that are not the GPT's: the linear head (none for a prompt classifier)."""
    return {n: p for n, p in classifier.named_parameters() if not n.startswith("gpt.")}


def _prompt_from_meta(saved: dict[str, Any] | None) -> Prompt | None:
    """The Prompt that classifier.json stores (lists back to tuples), or None."""
    if saved is None:
        return None
    return Prompt(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def _meta(classifier: GPTClassifier, method: dict[str, Any]) -> dict[str, Any]:
    frozen = MethodConfig(**method).frozen_base
    return {
        "format": FORMAT,
        "labels": list(classifier.labels),
        "label_names": list(classifier.label_names),
        "method": method,
        "base": classifier.base_dir if frozen else None,
        "pooling": classifier.pooling,
        "prompt": None if classifier.prompt is None else asdict(classifier.prompt.prompt),
    }


def _load_tensors(classifier: GPTClassifier, file: Path) -> None:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing")
    tensors = read_tensor_file(file)
    expected = _saved_tensors(classifier)
    check_tensors(expected, tensors, str(file))
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(tensors[name])
