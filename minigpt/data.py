"""Training data: token bins sampled as (x, y) windows, and labelled texts for classification.

Language modelling. A prepared dataset is a folder with `train.bin` / `val.bin` (one flat array of
token ids, uint16 or uint32) and `meta.json`. A batch is B windows of T+1 consecutive tokens at
uniformly random offsets o_b, split into inputs and targets shifted by one:

    x[b, t] = data[o_b + t],   y[b, t] = data[o_b + t + 1],   o_b ~ U{0, ..., N - T - 1}

so y[b, t] is the token that follows x[b, :t+1]: the x_{i+1} of
L = -sum_i log p(x_{i+1} | x_1..x_i).

Classification. `LabelledTextDataset` reads JSONL/CSV/TSV rows of (text, label), tokenizes and
truncates them, and `collate` right-pads a batch into a rectangle with lengths and a mask.
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

from minigpt.corpus import read_text
from minigpt.prepare import META_FILE
from minigpt.tokenizer import Tokenizer


def load_meta(data_dir: str | os.PathLike) -> dict[str, Any]:
    """The `meta.json` that a `data/<name>/prepare.py` script wrote into `data_dir`."""
    path = Path(data_dir) / META_FILE
    if not path.is_file():
        script = f"data/{Path(data_dir).name}/prepare.py"
        raise FileNotFoundError(f"{path} not found; prepare the dataset first: python {script}")
    return json.loads(path.read_text(encoding="utf-8"))


def check_tokenizer(meta: dict[str, Any], tokenizer: Tokenizer) -> None:
    """Raise if the data in `meta` was tokenized differently from `tokenizer`: ids would silently
    mean different strings, and training would still run."""
    data_spec, model_spec = meta["tokenizer"], tokenizer.to_spec()
    if data_spec != model_spec:
        raise ValueError(
            f"the data was tokenized with {_describe(data_spec)} but the model uses"
            f" {_describe(model_spec)}; re-run prepare.py with the model's tokenizer"
            " or train on data prepared with this one"
        )


def _describe(spec: dict[str, Any]) -> str:
    alphabet = f", alphabet {spec['chars'][:20]!r}..." if "chars" in spec else ""
    return f"{spec['name']} (n_vocab={spec['n_vocab']}{alphabet})"


class TokenSampler:
    """Random (x, y) windows from a token bin; see the module docstring for the equation.

    Determinism: the offsets come from one torch.Generator seeded with `seed`. Each call draws
    `world_size * batch_size` offsets and keeps rows [rank*B, (rank+1)*B), so every rank draws the
    same numbers, and 2 ranks with batch B together see exactly the rows of 1 process with 2B.
    `state_dict()` captures the generator, so a resumed run continues the same stream.

    Memory: the file is memory-mapped afresh for every batch. A memmap held open for the whole run
    keeps every page it ever touched resident, so the process grows towards the corpus size
    (nanoGPT's fix does the same). Only the B*(T+1) sampled tokens are ever copied.
    """

    def __init__(
        self,
        bin_path: str | os.PathLike,
        block_size: int,
        batch_size: int,
        *,
        dtype: str | np.dtype,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
    ):
        if min(block_size, batch_size) < 1:
            raise ValueError(f"block_size={block_size} and batch_size={batch_size} must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.bin_path = Path(bin_path)
        self.dtype = np.dtype(dtype)
        self.n_tokens = _count_tokens(self.bin_path, self.dtype)
        if self.n_tokens < block_size + 1:
            empty = "is empty" if self.n_tokens == 0 else f"has only {self.n_tokens} tokens"
            raise ValueError(
                f"{self.bin_path} {empty}, but block_size={block_size} needs at least"
                f" {block_size + 1}; use a larger corpus or a smaller --block_size"
            )
        self.block_size, self.batch_size = block_size, batch_size
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), both int64 of shape (batch_size, block_size), on `device`."""
        B, T = self.batch_size, self.block_size
        offsets = torch.randint(self.n_tokens - T, (self.world_size * B,), generator=self.generator)
        mine = offsets[self.rank * B : (self.rank + 1) * B].tolist()
        data = np.memmap(self.bin_path, dtype=self.dtype, mode="r")
        windows = torch.from_numpy(np.stack([data[o : o + T + 1] for o in mine]).astype(np.int64))
        del data  # unmap now, see the class docstring
        x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()  # (B, T), y shifted by one
        if self.device.type == "cuda":
            # page-locked host memory lets the copy overlap with the GPU work already queued
            x, y = x.pin_memory(), y.pin_memory()
            return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sampler's position in its random stream (tensors only: safe for weights_only)."""
        return {"rng_state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["rng_state"])


def _count_tokens(path: Path, dtype: np.dtype) -> int:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the dataset's prepare.py first")
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise ValueError(f"{path} has {size} bytes, not a whole number of {dtype}; wrong dtype?")
    return size // dtype.itemsize


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
