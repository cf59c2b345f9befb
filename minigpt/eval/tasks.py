"""Zero- and few-shot multiple choice, scored by log-likelihood with no training.

A task is a JSONL file of items {"context": str, "choices": [str, ...], "label": int}. Each choice
c_j is scored as the continuation of the item's prompt:

    ll_j      = sum_i log p(c_{j,i} | prompt, c_{j,<i})       (summed over c_j's tokens)
    pred      = argmax_j ll_j                                  -> accuracy
    pred_norm = argmax_j ll_j / len(c_j)                       -> accuracy_norm

len(c_j) counts characters, as lm-evaluation-harness's acc_norm does, so the normalisation does
not depend on the tokenizer. Choices are appended to the context verbatim: write the separating
space into them (" positive"). The context and a choice are tokenized separately and joined, so a
choice's tokens do not depend on the context; when the pair is longer than the model's window the
context loses its oldest tokens. An empty context is the tokenizer's document separator.

Few-shot: the prompt is k solved examples, drawn for each item by random.Random(seed) from a
separate pool (never from the items scored), each its context followed by its correct choice,
joined by a blank line before the item's context.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from minigpt.data.prepare import separator
from minigpt.data.tokenizer import Tokenizer
from minigpt.eval.scoring import Span, SpanScore, SpanScorer, score_causal
from minigpt.model.gpt import GPT

FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class ChoiceItem:
    context: str
    choices: tuple[str, ...]
    label: int


@dataclass(frozen=True)
class TaskScore:
    n: int
    accuracy: float
    accuracy_norm: float


def load_task(path: str | Path) -> list[ChoiceItem]:
    """The items of a task JSONL file, each checked; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"task file {path} not found")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            items.append(_parse_item(line, f"{path}:{number}"))
    if not items:
        raise ValueError(f"task file {path} is empty; write one JSON item per line")
    return items


def _parse_item(line: str, where: str) -> ChoiceItem:
    try:
        row = json.loads(line)
        context, choices, label = row["context"], row["choices"], row["label"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f'{where}: expected {{"context": str, "choices": [str, ...], "label": int}}'
        ) from None
    ok = (
        isinstance(context, str)
        and isinstance(choices, list)
        and len(choices) >= 2
        and all(isinstance(c, str) and c for c in choices)
        and isinstance(label, int)
        and 0 <= label < len(choices)
    )
    if not ok:
        raise ValueError(f"{where}: need >= 2 non-empty string choices and 0 <= label < choices")
    return ChoiceItem(context, tuple(choices), label)


def fewshot_items(
    items: Sequence[ChoiceItem], pool: Sequence[ChoiceItem], k: int, seed: int
) -> list[ChoiceItem]:
    """`items` with k solved examples from `pool` written before each context."""
    if k == 0:
        return list(items)
    if k > len(pool):
        raise ValueError(f"--num_fewshot={k} but the few-shot pool has only {len(pool)} items")
    rng = random.Random(seed)
    out = []
    for item in items:
        shots = [ex.context + ex.choices[ex.label] for ex in rng.sample(list(pool), k)]
        prompt = FEWSHOT_DELIMITER.join([*shots, item.context])
        out.append(ChoiceItem(prompt, item.choices, item.label))
    return out


def continuation_span(tokenizer: Tokenizer, context: str, continuation: str, limit: int) -> Span:
    """The span `context + continuation` (at most `limit` tokens) scoring the continuation."""
    context_ids = tokenizer.encode(context) if context else separator(tokenizer)
    continuation_ids = tokenizer.encode(continuation)
    if not continuation_ids:
        raise ValueError("cannot score an empty continuation")
    if len(continuation_ids) >= limit:
        raise ValueError(f"a continuation of {len(continuation_ids)} tokens leaves no context")
    context_ids = context_ids[-(limit - len(continuation_ids)) :]
    return Span([*context_ids, *continuation_ids], len(context_ids))


def score_continuations(
    model: GPT,
    tokenizer: Tokenizer,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 8,
    scorer: SpanScorer = score_causal,
) -> list[SpanScore]:
    """The log-likelihood of each (context, continuation) pair's continuation."""
    limit = model.config.block_size + 1
    spans = [continuation_span(tokenizer, c, x, limit) for c, x in pairs]
    return scorer(model, spans, batch_size)


def evaluate_task(
    model: GPT,
    tokenizer: Tokenizer,
    items: Sequence[ChoiceItem],
    batch_size: int = 8,
    scorer: SpanScorer = score_causal,
) -> TaskScore:
    """Accuracy and length-normalised accuracy of `items` (see the module docstring)."""
    pairs = [(item.context, choice) for item in items for choice in item.choices]
    scores = iter(score_continuations(model, tokenizer, pairs, batch_size, scorer))
    correct = correct_norm = 0
    for item in items:
        lls = [next(scores).total for _ in item.choices]
        normed = [ll / len(choice) for ll, choice in zip(lls, item.choices, strict=True)]
        correct += _argmax(lls) == item.label
        correct_norm += _argmax(normed) == item.label
    return TaskScore(len(items), correct / len(items), correct_norm / len(items))


def _argmax(values: Sequence[float]) -> int:
    """Index of the largest value, the first on ties (as numpy.argmax)."""
    return max(range(len(values)), key=lambda j: (values[j], -j))
