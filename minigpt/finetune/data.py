"""The labelled splits of a fine-tuning run: files, label set, label names, truncation report.

The label set is the training file's (or `--labels`, in that order of class indices); validation
and test files are read against it, so a label the training set never had is a one-line error
naming its file and line rather than a silently wrong class index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from minigpt.data import LabelledTextDataset
from minigpt.data.prepare import META_FILE
from minigpt.data.tokenizer import Tokenizer
from minigpt.finetune.config import FinetuneConfig

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    train: LabelledTextDataset
    val: LabelledTextDataset
    test: LabelledTextDataset
    label_names: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.train.labels

    def items(self) -> list[tuple[str, LabelledTextDataset]]:
        return [("train", self.train), ("val", self.val), ("test", self.test)]

    def loader(self, split: str, batch_size: int, seed: int = 0) -> torch.utils.data.DataLoader:
        """Batches of a split: the training split in `LengthGroupedBatches` (new ones every
        epoch, seeded), the others in file order."""
        dataset = getattr(self, split)
        if split != "train":
            return torch.utils.data.DataLoader(dataset, batch_size, collate_fn=dataset.collate)
        batches = LengthGroupedBatches([len(ids) for ids, _ in dataset], batch_size, seed)
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, collate_fn=dataset.collate
        )


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Random batches of texts of similar length.

    A right-padded batch costs B x (its longest text); random batches of short reviews are half
    padding. Each epoch shuffles all indices, sorts every window of `group` batches by length,
    cuts the windows into batches and shuffles the batch order: nearly no padding, and every
    batch is still a random draw from its window.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: int = 50) -> None:
        self.lengths = torch.tensor(lengths)
        self.batch_size, self.window = batch_size, batch_size * group
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator)
        batches = []
        for start in range(0, len(order), self.window):
            window = order[start : start + self.window]
            window = window[self.lengths[window].argsort(stable=True)]
            batches += list(window.split(self.batch_size))
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i].tolist()


def split_paths(cfg: FinetuneConfig, data_dir: Path) -> dict[str, Path]:
    """train/val/test file paths: the explicit --*_file flags, else data_dir/<split>.jsonl."""
    given = {"train": cfg.train_file, "val": cfg.val_file, "test": cfg.test_file}
    return {s: Path(given[s]) if given[s] else data_dir / f"{s}.jsonl" for s in SPLITS}


def load_splits(
    cfg: FinetuneConfig, paths: dict[str, Path], tokenizer: Tokenizer, max_len: int
) -> Splits:
    for split, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"{split} file {path} not found; pass --{split}_file=PATH")
    common = dict(text_column=cfg.text_column, label_column=cfg.label_column, max_len=max_len)
    train = LabelledTextDataset(paths["train"], tokenizer, labels=cfg.labels or None, **common)
    val = LabelledTextDataset(paths["val"], tokenizer, labels=train.labels, **common)
    test = LabelledTextDataset(paths["test"], tokenizer, labels=train.labels, **common)
    names = cfg.label_names or _names_from_meta(paths["train"].parent, cfg, train)
    if len(names) != len(train.labels):
        raise ValueError(
            f"--label_names has {len(names)} names for the {len(train.labels)} labels"
            f" {list(train.labels)}"
        )
    return Splits(train, val, test, tuple(names))


def _names_from_meta(
    data_dir: Path, cfg: FinetuneConfig, train: LabelledTextDataset
) -> tuple[str, ...]:
    """Display names from the dataset's meta.json when its labels are class indices 0..K-1
    (movie_reviews' label5 -> "very negative" ... "very positive"); else the labels themselves."""
    meta_file = data_dir / META_FILE
    if meta_file.is_file():
        names = json.loads(meta_file.read_text(encoding="utf-8")).get("labels", {})
        names = names.get(cfg.label_column) if isinstance(names, dict) else None
        indices = tuple(str(i) for i in range(len(names or ())))
        if names and train.labels == indices:
            return tuple(names)
    return train.labels
