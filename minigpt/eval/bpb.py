"""Bits per UTF-8 byte: a language model's loss in a unit that does not depend on its tokenizer.

A model with its own tokenizer turns documents into n_tokens tokens x_i and pays
NLL_i = -log p(x_i | x_<i) nats for each. Per token, the numbers of a character model and a BPE
model cannot be compared (a BPE token holds ~4 characters); per byte of the same text they can:

    loss = sum_i NLL_i / n_tokens                 (nats per token)
    ppl  = exp(loss)
    bpb  = sum_i NLL_i / ln 2 / n_bytes           (bits per UTF-8 byte of the documents)

Every document is preceded by the tokenizer's document separator (end-of-text, or a blank line
for tokenizers without one: minigpt.data.prepare.separator), which is how documents met the model
in training. Separator tokens are context only: the scored tokens are exactly those of the
documents, and n_bytes counts exactly their bytes.

Long streams are scored with a sliding window of `window` tokens (at most the model's block_size)
that moves `stride` tokens at a time. Each token is scored once, in the window where it is among
the newest, so it sees at least window - stride + 1 tokens of left context (all of it near the
start):

    window 1: inputs s[0 : W],             scores s[1 : W + 1]
    window k: inputs s[e - W - 1 : e - 1],  scores the S tokens before e = W + 1 + (k - 1) S

stride = window gives disjoint windows (fastest, least context); stride = 1 gives every token the
full window (slowest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from minigpt.data.prepare import separator
from minigpt.data.tokenizer import Tokenizer
from minigpt.eval.scoring import Span, SpanScorer, score_causal
from minigpt.model.gpt import GPT


@dataclass(frozen=True)
class TextScore:
    """Summed NLL (nats) of n_tokens tokens that spell n_bytes bytes; see the module docstring."""

    nll: float
    n_tokens: int
    n_bytes: int

    @property
    def loss(self) -> float:
        return self.nll / self.n_tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.n_bytes

    def to_dict(self) -> dict[str, float]:
        derived = {"loss": self.loss, "ppl": self.perplexity, "bpb": self.bits_per_byte}
        return {**asdict(self), **derived}


def window_bounds(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, first_new, stop) for each window over a stream of n tokens: the span
    s[start:stop] whose tokens s[first_new:stop] are scored now. Token 0 is never scored (it has
    no context); every other token is scored exactly once."""
    if not 1 <= stride <= window:
        raise ValueError(f"stride={stride} must be in [1, window={window}]")
    bounds: list[tuple[int, int, int]] = []
    first_new = 1
    while first_new < n:
        stop = min(first_new + (stride if bounds else window), n)
        start = max(0, stop - window - 1)
        bounds.append((start, first_new, stop))
        first_new = stop
    return bounds


def document_stream(tokenizer: Tokenizer, documents: Sequence[str]) -> tuple[list[int], list[bool]]:
    """The ids of `separator + document` for every document, and which ids are document tokens."""
    sep = separator(tokenizer)
    ids: list[int] = []
    scored: list[bool] = []
    for doc_ids in tokenizer.encode_batch(list(documents)):
        ids += sep + doc_ids
        scored += [False] * len(sep) + [True] * len(doc_ids)
    return ids, scored


def score_documents(
    model: GPT,
    tokenizer: Tokenizer,
    documents: Sequence[str],
    *,
    window: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    scorer: SpanScorer = score_causal,
) -> TextScore:
    """Sum the NLL of `documents` under `model`, read through `tokenizer` in sliding windows.

    `window` defaults to the model's block_size, `stride` to half the window.
    """
    window = window or model.config.block_size
    if not 1 <= window <= model.config.block_size:
        raise ValueError(f"window={window} must be in [1, block_size={model.config.block_size}]")
    stride = stride or max(1, window // 2)
    n_bytes = sum(len(doc.encode("utf-8")) for doc in documents)
    if n_bytes == 0:
        raise ValueError("there is no text to score: every document is empty")
    ids, scored = document_stream(tokenizer, documents)
    bounds = window_bounds(len(ids), window, stride)
    spans = [Span(ids[start:stop], first_new - start) for start, first_new, stop in bounds]
    nll, n_tokens = 0.0, 0
    for (_, first_new, stop), result in zip(bounds, scorer(model, spans, batch_size), strict=True):
        keep = torch.tensor(scored[first_new:stop])  # separators are context, never scored
        nll -= float(result.logprobs[keep].sum())
        n_tokens += int(keep.sum())
    return TextScore(nll, n_tokens, n_bytes)
