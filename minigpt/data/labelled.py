"""Labelled texts for classification: JSONL/CSV/TSV rows of (text, label), tokenized and
truncated, and `collate`, which right-pads a batch into a rectangle with lengths and a mask.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from minigpt.data.corpus import read_text
from minigpt.data.tokenizer import Tokenizer


class TextBatch(NamedTuple):
    """A right-padded batch. Row b holds its tokens at [0, lengths[b]) and `pad_id` after;
    the last real token, where a classifier reads its features, is at lengths[b] - 1."""

    input_ids: torch.Tensor  # (B, T) int64, T = longest row in the batch
    lengths: torch.Tensor  # (B,) int64
    attention_mask: torch.Tensor  # (B, T) bool, True on real tokens
    labels: torch.Tensor  # (B,) int64 class indices


def collate(batch: Sequence[tuple[list[int], int]], pad_id: int = 0) -> TextBatch:
    """[(ids, label), ...] -> TextBatch, padding every row on the right with `pad_id`."""
    lengths = torch.tensor([len(ids) for ids, _ in batch], dtype=torch.long)
    input_ids = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    mask = torch.arange(input_ids.shape[1]) < lengths[:, None]  # (B, T)
    labels = torch.tensor([label for _, label in batch], dtype=torch.long)
    return TextBatch(input_ids, lengths, mask, labels)


class LabelledTextDataset(torch.utils.data.Dataset):
    """Labelled texts from a JSONL, CSV or TSV file, tokenized and truncated to `max_len`.

    - `text_column`, `label_column`: the fields to read (JSONL keys or CSV/TSV header names).
    - `labels`: the label set, in class-index order; label values are compared as strings, so a
      JSONL 3 and a CSV "3" are the same label. If None it is every label in the file, sorted
      (numerically when all are integers): pass `labels=train_set.labels` to val and test sets so
      that class indices agree.
    - `max_len`: longer texts keep their first `max_len` tokens; `n_truncated` counts them.
    - `skip_unlabelled`: rows whose label is empty or null are dropped (counted in `n_skipped`)
      instead of raising, e.g. the neutral rows of movie_reviews' label2.

    Items are (token ids, class index); use `dataset.collate` as a DataLoader's collate_fn. Every
    malformed row (missing column, empty text, label outside the set) is a one-line ValueError
    naming the file and line.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        tokenizer: Tokenizer,
        *,
        text_column: str = "text",
        label_column: str = "label",
        labels: Sequence[str | int] | None = None,
        max_len: int | None = None,
        skip_unlabelled: bool = False,
        errors: str = "strict",
    ):
        self.path = Path(path)
        rows, self.n_skipped = _labelled_rows(
            self.path, text_column, label_column, skip_unlabelled, errors
        )
        texts, raw_labels = [text for _, text, _ in rows], [label for _, _, label in rows]
        self.labels = _sorted_labels(raw_labels) if labels is None else tuple(map(str, labels))
        index = {label: i for i, label in enumerate(self.labels)}
        for line, _, label in rows:
            if label not in index:
                raise ValueError(
                    f"{self.path} line {line}: label {label!r} is not in the label set"
                    f" {list(self.labels)}; fix the file or pass the full set as labels=[...]"
                )
        ids = tokenizer.encode_batch(texts)
        self.n_truncated = sum(max_len is not None and len(x) > max_len for x in ids)
        self.examples = [(x[:max_len], index[v]) for x, v in zip(ids, raw_labels, strict=True)]
        self.pad_id = tokenizer.eot_id if tokenizer.eot_id is not None else 0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.examples[i]

    def class_counts(self) -> list[int]:
        """Number of examples of each class, in `labels` order."""
        return np.bincount([y for _, y in self.examples], minlength=len(self.labels)).tolist()

    def collate(self, batch: Sequence[tuple[list[int], int]]) -> TextBatch:
        """`collate` padding with this tokenizer's end-of-text id (0 if it has none): the mask,
        not the pad value, is what keeps padding out of the model's view."""
        return collate(batch, self.pad_id)


def _labelled_rows(
    path: Path, text_column: str, label_column: str, skip_unlabelled: bool, errors: str
) -> tuple[list[tuple[int, str, str]], int]:
    """(line, text, label) for each labelled row, and how many unlabelled rows were skipped."""
    rows, skipped = [], 0
    for line, row in _read_rows(path, errors):
        where = f"{path} line {line}"
        text, label = _field(row, text_column, where), _field(row, label_column, where)
        if text is None or not str(text).strip():
            raise ValueError(f"{where}: empty {text_column!r}; remove the row or fill it")
        if label is None or str(label) == "":
            if not skip_unlabelled:
                raise ValueError(
                    f"{where}: no {label_column!r}; fill it or pass skip_unlabelled=True"
                )
            skipped += 1
            continue
        rows.append((line, str(text), str(label)))
    if not rows:
        raise ValueError(f"{path} holds no labelled rows")
    return rows, skipped


def _read_rows(path: Path, errors: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a .jsonl / .csv / .tsv file."""
    suffix = path.suffix.lower()
    text = read_text(path, errors)
    if suffix in (".jsonl", ".json"):
        for line, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                yield line, _json_row(raw, line, path)
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        for row in reader:
            yield reader.line_num, row
    else:
        raise ValueError(f"{path}: unknown format {suffix!r}; use a .jsonl, .csv or .tsv file")


def _json_row(raw: str, line: int, path: Path) -> dict[str, Any]:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {line} is not valid JSON: {e.msg}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path} line {line} is a JSON {type(row).__name__}, expected an object")
    return row


def _field(row: dict[str, Any], column: str, where: str) -> Any:
    if column not in row:
        raise ValueError(
            f"{where} has no column {column!r} (has: {', '.join(map(str, row))});"
            " choose it with text_column=/label_column="
        )
    return row[column]


def _sorted_labels(values: list[str]) -> tuple[str, ...]:
    unique = set(values)
    numeric = all(v.lstrip("-").isdigit() for v in unique)
    return tuple(sorted(unique, key=int if numeric else str))
