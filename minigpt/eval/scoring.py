"""Log-likelihood of scored spans: the one model call behind bits per byte and task scoring.

A span is a token sequence x_0..x_{m-1} whose first `n_context` tokens only condition, and whose
remaining tokens are scored, each given everything before it in the span:

    log p(x_i | x_0..x_{i-1}) = z_{i-1, x_i} - logsumexp_{v < n_vocab} z_{i-1, v}

for n_context <= i < m, where z_{i-1} = logits[b, i - 1] is the causal model's output at the
position before x_i. The softmax runs over the tokenizer's n_vocab ids only: rows of a padded
vocabulary are never tokens (sampling masks them too). Sliding windows over a long text
(minigpt.eval.bpb) and (context, continuation) pairs of a task (minigpt.eval.tasks) are both
lists of spans.

`score_causal` is the causal objective's scorer: the model reads left to right and every scored
token sees exactly its left context. `score_prefix` is the prefix LM's: the span's context is the
prefix, read with full visibility (prefix_len = n_context), and the scored tokens follow it
causally, as in training. Both give log p(continuation | context) summed over the same tokens, so
bits per byte compare across them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from minigpt.model.gpt import GPT

IGNORE = -100  # target id of positions that are not scored (context and padding)


@dataclass(frozen=True)
class Span:
    """Token ids, of which ids[n_context:] are scored; 1 <= n_context < len(ids)."""

    ids: Sequence[int]
    n_context: int

    def __post_init__(self) -> None:
        if not 1 <= self.n_context < len(self.ids):
            raise ValueError(
                f"a span of {len(self.ids)} tokens needs 1 <= n_context < {len(self.ids)},"
                f" got {self.n_context}"
            )


@dataclass(frozen=True)
class SpanScore:
    """Per-token log-probs (float64, one per scored token) and whether greedy decoding (argmax at
    every scored position) would have produced exactly the scored tokens."""

    logprobs: torch.Tensor
    greedy: bool

    @property
    def total(self) -> float:
        return float(self.logprobs.sum())


SpanScorer = Callable[[GPT, Sequence[Span], int], list[SpanScore]]


def score_causal(model: GPT, spans: Sequence[Span], batch_size: int) -> list[SpanScore]:
    """Score `spans` with a causal model, `batch_size` spans per forward pass (see `_score`)."""
    return _score(model, spans, batch_size, prefix=False)


def score_prefix(model: GPT, spans: Sequence[Span], batch_size: int) -> list[SpanScore]:
    """Score `spans` with a prefix-LM model: each span's context is its prefix."""
    return _score(model, spans, batch_size, prefix=True)


def _score(model: GPT, spans: Sequence[Span], batch_size: int, prefix: bool) -> list[SpanScore]:
    """Score `spans`, `batch_size` spans per forward pass.

    Spans are batched longest first (so a batch pads little) and right-padded: padding after a
    token cannot change that token's logits (every scored position reads causally). Results come
    back in the order of `spans`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    limit = model.config.block_size + 1
    too_long = [len(s.ids) for s in spans if len(s.ids) > limit]
    if too_long:
        raise ValueError(f"a span of {too_long[0]} tokens exceeds block_size + 1 = {limit}")
    order = sorted(range(len(spans)), key=lambda i: -len(spans[i].ids))
    scores: list[SpanScore | None] = [None] * len(spans)
    for k in range(0, len(order), batch_size):
        batch = [spans[i] for i in order[k : k + batch_size]]
        scored = _score_batch(model, batch, prefix)
        for i, score in zip(order[k : k + batch_size], scored, strict=True):
            scores[i] = score
    return scores  # type: ignore[return-value]


@torch.inference_mode()
def _score_batch(model: GPT, spans: Sequence[Span], prefix: bool) -> list[SpanScore]:
    device = next(model.parameters()).device
    T = max(len(s.ids) for s in spans) - 1
    inputs = torch.zeros(len(spans), T, dtype=torch.long)
    targets = torch.full((len(spans), T), IGNORE, dtype=torch.long)
    for b, span in enumerate(spans):
        ids = torch.as_tensor(span.ids, dtype=torch.long)
        inputs[b, : len(ids) - 1] = ids[:-1]
        targets[b, span.n_context - 1 : len(ids) - 1] = ids[span.n_context :]
    n_vocab = model.config.n_vocab or model.config.vocab_size
    prefix_len = torch.tensor([s.n_context for s in spans], device=device) if prefix else None
    logits = model(inputs.to(device), prefix_len=prefix_len).logits[..., :n_vocab].float()
    scored = (targets != IGNORE).to(device)
    safe_targets = targets.clamp(min=0).to(device)
    picked = logits.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    token_logprobs = picked - logits.logsumexp(-1)  # log-softmax at the targets only
    hits = logits.argmax(-1) == safe_targets  # (B, T)
    out = []
    for b in range(len(spans)):
        mask = scored[b]
        lp = token_logprobs[b][mask].double().cpu()
        out.append(SpanScore(lp, bool(hits[b][mask].all())))
    return out
