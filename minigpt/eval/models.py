"""Checkpoints to evaluate: a model, the tokenizer it reads with, and how to score it.

A minigpt checkpoint carries its tokenizer (tokenizer_spec.json); a Hugging Face gpt2 / gpt_neo /
gptj directory does not, and is read with a named fallback (GPT-2's BPE unless told otherwise).
Either way the tokenizer must fit the model: every id it makes needs a row of the embedding.

Each model is scored once per objective it can be scored with (minigpt.eval.scoring.SpanScorer).
A causal model is scored as causal; a prefix-attention model (trained as a prefix LM or with T5's
span corruption) as a prefix LM: the context is its prefix. A bidirectional (BERT-style) model
defines no likelihood of text read left to right, so it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from minigpt.checkpoint import load_model
from minigpt.data.tokenizer import Tokenizer
from minigpt.eval.scoring import SpanScorer, score_causal, score_prefix
from minigpt.model.gpt import GPT


@dataclass
class EvalModel:
    name: str
    model: GPT
    tokenizer: Tokenizer

    @property
    def scorers(self) -> dict[str, SpanScorer]:
        """objective -> span scorer. Models read left to right (GPTConfig.attention causal, the
        only kind before the objectives) are scored as causal."""
        attention = self.model.config.attention
        if attention == "bidirectional":
            raise ValueError(
                f"{self.name} is a bidirectional (masked LM) model: it assigns no probability to"
                " text read left to right, so it has no bits per byte; fine-tune it instead"
            )
        if attention == "prefix":
            return {"prefix_lm": score_prefix}
        return {"causal": score_causal}


def load_eval_model(
    path: str | Path, device: torch.device, fallback_tokenizer: str = "gpt2"
) -> EvalModel:
    """The checkpoint at `path` in eval mode on `device`, with its (checked) tokenizer."""
    model, tokenizer = load_model(path, fallback_tokenizer)
    return EvalModel(str(path), model.to(device).eval(), tokenizer)
