"""Pre-training objectives as data transforms: GPT, prefix LM, T5 span corruption, BERT masked LM.

One decoder stack runs all four systems (T5 paper, section 3.2); only the attention visibility
(GPTConfig.attention) and the data change. Each objective turns a window w of T+1 consecutive
token ids, (B, T+1), into an `ObjectiveBatch`: inputs x (B, T), targets y (B, T) with
IGNORE_INDEX where no loss is taken, and the per-row prefix length P (B,) for prefix models. The
model minimises the mean cross entropy over the N positions that have a target,

    L = -(1/N) sum_{(b, t): y[b,t] != IGNORE_INDEX} log p(y[b,t] | x[b], P_b),

so an objective is fully described by how it builds x, y and P (each function's docstring states
its L). Randomness comes only from the torch.Generator passed in, so a batch is a function of the
window and the generator state (a resumed run redraws exactly the same batches).

    objective  attention       tokens needed
    causal     causal          -
    prefix_lm  prefix          -
    span       prefix          SENTINELS (T5's 100 "<extra_id_k>")
    mlm        bidirectional   MASK_TOKEN (BERT's "[MASK]")

Special tokens come from `Tokenizer.add_special_tokens`: ids past the text vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import torch

from minigpt.data.tokenizer import Tokenizer

IGNORE_INDEX = -100  # cross entropy's ignore_index, as in minigpt.model.loss
MASK_TOKEN = "[MASK]"
SENTINELS = tuple(f"<extra_id_{k}>" for k in range(100))

ATTENTION = {"causal": "causal", "prefix_lm": "prefix", "span": "prefix", "mlm": "bidirectional"}
OBJECTIVES = tuple(ATTENTION)
# Objectives whose loss is the NLL of text continuing text, so exp(L) is a perplexity. Span
# targets mix sentinels with dropped fragments and MLM predicts tokens from both sides: their
# exp(L) is no perplexity of the language.
LANGUAGE_MODELLING = ("causal", "prefix_lm")


class ObjectiveBatch(NamedTuple):
    inputs: torch.Tensor  # x (B, T) token ids
    targets: torch.Tensor  # y (B, T) ids to predict, IGNORE_INDEX where no loss is taken
    prefix_len: torch.Tensor | None  # P (B,) for prefix models, else None


Objective = Callable[[torch.Tensor, torch.Generator], ObjectiveBatch]


def causal_lm(window: torch.Tensor, generator: torch.Generator | None = None) -> ObjectiveBatch:
    """GPT: predict every next token, L = -(1/T) sum_{t<T} log p(w_{t+1} | w_0..w_t).

    x = w[:, :T], y = w[:, 1:]. The generator is unused (the objective draws nothing)."""
    return ObjectiveBatch(window[:, :-1], window[:, 1:], None)


def prefix_lm(window: torch.Tensor, generator: torch.Generator) -> ObjectiveBatch:
    """Prefix LM (T5 Table 2, "Prefix LM, LM"): split each row at P ~ U{1, ..., T-1}; the prefix
    w_0..w_{P-1} is seen bidirectionally and the loss falls on the continuation only:

        L = -(1/N) sum_{t=P}^{T} log p(w_t | w_0..w_{t-1}),   N = T - P + 1 per row.

    x = w[:, :T]; y[t] = w[t+1] for t >= P-1, else IGNORE_INDEX."""
    B, T = window.size(0), window.size(1) - 1
    if T < 2:
        raise ValueError(f"prefix_lm needs block_size >= 2 to split a row, got {T}")
    prefix_len = torch.randint(1, T, (B,), generator=generator).to(window.device)  # P (B,)
    t = torch.arange(T, device=window.device)
    targets = window[:, 1:].masked_fill(t[None, :] < prefix_len[:, None] - 1, IGNORE_INDEX)
    return ObjectiveBatch(window[:, :-1], targets, prefix_len)


def masked_lm(
    window: torch.Tensor,
    generator: torch.Generator,
    mask_id: int,
    n_vocab: int,
    rate: float = 0.15,
    p_mask: float = 0.8,
    p_random: float = 0.1,
) -> ObjectiveBatch:
    """BERT (section 3.1): pick M, round(rate * T) positions of each row; at a picked position
    the input becomes mask_id with probability p_mask, a uniform random text id in [0, n_vocab)
    with probability p_random, and stays itself otherwise. The loss falls on M only:

        L = -(1/|M|) sum_{i in M} log p(w_i | x),   x the corrupted row (fully visible).

    x and y are aligned: y[i] = w_i for i in M, else IGNORE_INDEX. The last token of the window
    is unused, so every objective reads the same T+1 tokens."""
    tokens = window[:, :-1]
    B, T = tokens.shape
    n_picked = max(1, round(rate * T))
    order = torch.rand(B, T, generator=generator).argsort(dim=1)  # a random permutation per row
    picked = torch.zeros(B, T, dtype=torch.bool).scatter(1, order[:, :n_picked], True)
    u = torch.rand(B, T, generator=generator)
    random_ids = torch.randint(n_vocab, (B, T), generator=generator)
    picked, u, random_ids = (t.to(window.device) for t in (picked, u, random_ids))
    inputs = torch.where(picked & (u < p_mask), mask_id, tokens)
    inputs = torch.where(picked & (u >= p_mask) & (u < p_mask + p_random), random_ids, inputs)
    targets = tokens.masked_fill(~picked, IGNORE_INDEX)
    return ObjectiveBatch(inputs, targets, None)


def span_corruption(
    window: torch.Tensor,
    generator: torch.Generator,
    sentinel_ids: Sequence[int],
    pad_id: int,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
) -> ObjectiveBatch:
    """T5 (sections 3.1.4, 3.3.4): drop noise_density of the tokens in k spans of mean length
    mean_span_length; the input keeps the rest with one sentinel per dropped span, the target
    lists each sentinel followed by its span, and a closing sentinel (see `corrupt_spans`). On one
    decoder the row is  input ++ target, the input is the prefix (P = its length) and the loss
    falls on the target u_1..u_M only:

        L = -(1/M) sum_{m=1}^{M} log p(u_m | input, u_1..u_{m-1}).

    The first n tokens of each row are corrupted, n the longest that fits in T+1 with its
    sentinels (n + 2k + 1 <= T+1); the rest of the row is padding with no loss (it comes after
    everything, so causal visibility hides it)."""
    rows = window.cpu()
    B, width = rows.shape  # width = T + 1
    n = fitting_length(width, noise_density, mean_span_length)
    seqs, prefix, used = [], 0, 0
    for row in rows:
        noise = random_spans_noise_mask(n, noise_density, mean_span_length, generator)
        source, target = corrupt_spans(row[:n].tolist(), noise.tolist(), sentinel_ids)
        # n, the noise count and k are the same for every row, so are these lengths
        prefix, used = len(source), len(source) + len(target)
        seqs.append(source + target + [pad_id] * (width - used))
    z = torch.tensor(seqs, dtype=window.dtype)  # (B, T+1)
    t = torch.arange(width - 1)
    no_loss = (t < prefix - 1) | (t >= used - 1)  # predicting an input token, or padding
    targets = z[:, 1:].masked_fill(no_loss[None, :], IGNORE_INDEX)
    prefix_len = torch.full((B,), prefix)
    return ObjectiveBatch(*(x.to(window.device) for x in (z[:, :-1], targets, prefix_len)))


def noise_counts(length: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
    """(noise tokens, spans) for a row of `length`: round(length * density) tokens, at least
    one and leaving one kept, in round(noise / mean_span_length) >= 1 spans."""
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = min(max(round(n_noise / mean_span_length), 1), n_noise, length - n_noise)
    return n_noise, n_spans


def fitting_length(width: int, noise_density: float, mean_span_length: float) -> int:
    """The longest n whose corrupted input and target (n + 2k + 1 tokens) fit in `width`."""
    for n in range(width, 1, -1):
        if n + 2 * noise_counts(n, noise_density, mean_span_length)[1] + 1 <= width:
            return n
    raise ValueError(f"span corruption needs block_size >= 4, got {width - 1}")


def random_spans_noise_mask(
    length: int, noise_density: float, mean_span_length: float, generator: torch.Generator
) -> torch.Tensor:
    """Bool (length,): True on the noise tokens. As in T5, the row alternates kept and noise
    spans, kept first: k kept runs and k noise runs, each a uniformly random split of its token
    count into k non-empty parts, so the noise spans have mean length n_noise / k."""
    n_noise, n_spans = noise_counts(length, noise_density, mean_span_length)
    noise_runs = _random_split(n_noise, n_spans, generator)
    kept_runs = _random_split(length - n_noise, n_spans, generator)
    mask = torch.zeros(length, dtype=torch.bool)
    start = 0
    for kept, noise in zip(kept_runs, noise_runs, strict=True):
        start += kept
        mask[start : start + noise] = True
        start += noise
    return mask


def _random_split(total: int, parts: int, generator: torch.Generator) -> list[int]:
    """A uniformly random composition of `total` into `parts` positive integers: cut the run at
    parts-1 distinct places among its total-1 inner boundaries."""
    cuts = sorted((torch.randperm(total - 1, generator=generator)[: parts - 1] + 1).tolist())
    edges = [0, *cuts, total]
    return [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]


def corrupt_spans(
    tokens: Sequence[int], noise: Sequence[bool], sentinel_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    """(input, target) of T5's span corruption. Span s of noise becomes sentinel_ids[s] in the
    input; the target is each sentinel followed by the span it replaced, closed by the next
    sentinel. The paper's example, noise on "for inviting" and "last":

        tokens  Thank you for inviting me to your party last week .
        input   Thank you <X> me to your party <Y> week .
        target  <X> for inviting <Y> last <Z>
    """
    source: list[int] = []
    target: list[int] = []
    n_spans = 0
    for i, (token, is_noise) in enumerate(zip(tokens, noise, strict=True)):
        if is_noise and (i == 0 or not noise[i - 1]):  # a span starts
            if n_spans + 1 >= len(sentinel_ids):
                raise ValueError(
                    f"{n_spans + 2} sentinels needed but {len(sentinel_ids)} given; "
                    "use a shorter block_size or fewer spans"
                )
            source.append(sentinel_ids[n_spans])
            target.append(sentinel_ids[n_spans])
            n_spans += 1
        (target if is_noise else source).append(token)
    target.append(sentinel_ids[n_spans])
    return source, target


def special_tokens(objective: str) -> tuple[str, ...]:
    """Names of the special tokens `objective` needs in the tokenizer."""
    return {"mlm": (MASK_TOKEN,), "span": SENTINELS}.get(_checked(objective), ())


def make_objective(objective: str, tokenizer: Tokenizer) -> Objective:
    """The transform (window, generator) -> ObjectiveBatch of `objective`, with its special
    token ids from `tokenizer` (add them first: tokenizer.add_special_tokens(special_tokens(o)))."""
    if _checked(objective) == "causal":
        return causal_lm
    if objective == "prefix_lm":
        return prefix_lm
    if objective == "mlm":
        mask_id = tokenizer.special_id(MASK_TOKEN)
        return partial(masked_lm, mask_id=mask_id, n_vocab=tokenizer.n_vocab)
    sentinel_ids = [tokenizer.special_id(name) for name in SENTINELS]
    pad_id = tokenizer.eot_id if tokenizer.eot_id is not None else 0
    return partial(span_corruption, sentinel_ids=sentinel_ids, pad_id=pad_id)


def _checked(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    return objective
