"""The texts that models are scored on: prepared datasets decoded back to text, or text files.

Models with different tokenizers can only be compared on the same bytes, so a prepared dataset's
val.bin is decoded with the tokenizer that wrote it (its meta.json) and re-tokenized by each model.
A stream with an end-of-text token splits into its documents there; a char or byte stream has no
such token and is one document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigpt.data.bins import load_meta
from minigpt.data.prepare import META_FILE
from minigpt.data.tokenizer import Tokenizer
from minigpt.paths import dataset_dir
from minigpt.settings import ConfigError


@dataclass(frozen=True)
class Texts:
    """Named documents to score."""

    name: str
    documents: list[str]

    @property
    def n_bytes(self) -> int:
        return sum(len(d.encode("utf-8")) for d in self.documents)

    def truncated(self, max_bytes: int) -> Texts:
        """The first `max_bytes` bytes (whole characters) of the documents; all if 0."""
        if max_bytes <= 0:
            return self
        kept, budget = [], max_bytes
        for doc in self.documents:
            raw = doc.encode("utf-8")
            if len(raw) > budget:
                # errors="ignore" drops a multi-byte character cut at the boundary
                kept.append(raw[:budget].decode("utf-8", errors="ignore"))
                break
            kept.append(doc)
            budget -= len(raw)
        return Texts(self.name, [d for d in kept if d])


def load_texts(spec: str, split: str = "val") -> Texts:
    """A text file, a prepared dataset folder, or the name of one (minigpt.data.paths)."""
    path = Path(spec)
    if path.is_file():
        return _text_file(path)
    for folder in (path, dataset_dir(spec)):
        if (folder / META_FILE).is_file():
            return _prepared(folder, split)
    raise ConfigError(
        f"unknown dataset {spec!r}: not a text file, and no {META_FILE} in {spec} or"
        f" {dataset_dir(spec)}; give a text file, or prepare it: python data/{spec}/prepare.py"
    )


def _text_file(path: Path) -> Texts:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}); convert it first") from None
    if not text:
        raise ValueError(f"{path} is empty; give a file with text to score")
    return Texts(path.stem, [text])


def _prepared(folder: Path, split: str) -> Texts:
    meta = load_meta(folder)
    record = meta["splits"].get(split)
    if record is None:
        raise ValueError(f"{folder} has no {split} split; it has {', '.join(meta['splits'])}")
    ids = np.fromfile(folder / record["file"], dtype=np.dtype(meta["dtype"]))
    if ids.size == 0:
        raise ValueError(f"{folder / record['file']} is empty; re-run the dataset's prepare.py")
    tokenizer = Tokenizer.from_spec(meta["tokenizer"])
    if tokenizer.eot_id is None:
        documents = [tokenizer.decode(ids)]
    else:
        pieces = np.split(ids, np.flatnonzero(ids == tokenizer.eot_id))  # each after an eot
        documents = [tokenizer.decode(p[p != tokenizer.eot_id]) for p in pieces]
    return Texts(folder.name, [d for d in documents if d])
