"""From documents to a prepared dataset: token bins, meta.json, and the prepare scripts' CLI.

A corpus of documents d_1..d_n becomes one flat stream of ids

    enc(d_1) SEP enc(d_2) SEP ... enc(d_n) SEP

where SEP is [eot_id], or the encoding of DOC_SEPARATOR ("\\n\\n") for tokenizers without an
end-of-text token (char, bytes). The stream is stored as raw integers in native byte order
(little-endian on x86 and ARM), uint16 when every id fits (n_vocab <= 65,536) and uint32
otherwise, so `np.memmap` reads it with no parsing.

`meta.json` records what is needed to use and trust the bins:

    {"tokenizer": <Tokenizer.to_spec()>, "vocab_size": n_vocab, "dtype": "uint16",
     "splits": {"train": {"file": "train.bin", "tokens": N, "sha256": "..."}, "val": {...}},
     "source": {...}, ...dataset-specific extras}

It is written last, so a folder with a meta.json holds complete bins.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from minigpt.data.corpus import SHAKESPEARE_SOURCE, sha256_file, shakespeare_works
from minigpt.data.tokenizer import SubsetBPETokenizer, Tokenizer

META_FILE = "meta.json"
DOC_SEPARATOR = "\n\n"
BATCH_CHARS = 1 << 22  # ~4 MB of text per encode_batch call: enough documents to keep threads busy


def dtype_for(n_vocab: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids 0..n_vocab-1 (uint16 or uint32)."""
    return np.dtype(np.uint16 if n_vocab - 1 <= np.iinfo(np.uint16).max else np.uint32)


def make_tokenizer(name: str, docs: Sequence[str]) -> Tokenizer:
    """`Tokenizer.from_name(name)`, except that "char" builds its alphabet from the documents
    (and the separator that will join them), and "<bpe>:<n_vocab>" keeps the n_vocab ids of that
    BPE the documents use most."""
    if name == "char":
        return Tokenizer.char_from_text(DOC_SEPARATOR + "".join(docs))
    if ":" in name:
        base, n_vocab = name.split(":", 1)
        if not n_vocab.isdigit():
            raise ValueError(
                f"tokenizer {name!r}: write a BPE subset as <bpe>:<n_vocab>, e.g. gpt2:8192"
            )
        return SubsetBPETokenizer.from_corpus(base, docs, int(n_vocab))
    return Tokenizer.from_name(name)


def separator(tokenizer: Tokenizer) -> list[int]:
    """The ids appended after every document."""
    if tokenizer.eot_id is not None:
        return [tokenizer.eot_id]
    return tokenizer.encode(DOC_SEPARATOR)


def encode_documents(
    tokenizer: Tokenizer,
    docs: Iterable[str],
    *,
    total_chars: int | None = None,
    num_threads: int = 8,
) -> Iterator[np.ndarray]:
    """Yield the id stream of `docs` (each followed by `separator`) in pieces of dtype
    `dtype_for(tokenizer.n_vocab)`. Text is tokenized ~BATCH_CHARS at a time on `num_threads`
    threads behind a progress bar, and the throughput is printed at the end."""
    dtype, sep = dtype_for(tokenizer.n_vocab), separator(tokenizer)
    n_chars = n_tokens = 0
    start = time.perf_counter()
    with tqdm(total=total_chars, unit="char", unit_scale=True, desc="tokenizing") as bar:
        for batch in _batches(docs):
            ids = tokenizer.encode_batch(batch, num_threads=num_threads)
            piece = np.fromiter(chain.from_iterable(doc + sep for doc in ids), dtype=dtype)
            chars = sum(map(len, batch))
            n_chars, n_tokens = n_chars + chars, n_tokens + len(piece)
            bar.update(chars)
            yield piece
    seconds = time.perf_counter() - start
    print(
        f"tokenized {n_chars:,} chars into {n_tokens:,} {tokenizer.name} tokens in {seconds:.1f} s"
        f" ({n_tokens / max(seconds, 1e-9):,.0f} tokens/s)"
    )


def _batches(docs: Iterable[str]) -> Iterator[list[str]]:
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc)
        if size >= BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def write_bin(path: str | os.PathLike, pieces: Iterable[np.ndarray]) -> dict[str, Any]:
    """Stream `pieces` into the bin file `path`; returns its meta.json record."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        n_tokens = sum(f.write(piece.tobytes()) // piece.itemsize for piece in pieces)
    os.replace(tmp, path)  # a crash mid-write never leaves a plausible-looking truncated bin
    return {"file": path.name, "tokens": n_tokens, "sha256": sha256_file(path)}


def write_splits(
    out_dir: str | os.PathLike,
    tokenizer: Tokenizer,
    docs: dict[str, Iterable[str]],
    *,
    num_threads: int = 8,
) -> dict[str, dict[str, Any]]:
    """Write `<split>.bin` for each {split: documents}, streaming; returns their records."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        split: write_bin(
            out_dir / f"{split}.bin", encode_documents(tokenizer, texts, num_threads=num_threads)
        )
        for split, texts in docs.items()
    }


def write_meta(
    out_dir: str | os.PathLike,
    tokenizer: Tokenizer,
    splits: dict[str, dict[str, Any]],
    source: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Write meta.json (the dataset's description, see the module docstring); returns it."""
    meta = {
        "tokenizer": tokenizer.to_spec(),
        "vocab_size": tokenizer.n_vocab,
        "dtype": dtype_for(tokenizer.n_vocab).name,
        "splits": splits,
        "source": source,
        **extra,
    }
    text = json.dumps(meta, indent=1, ensure_ascii=False)
    (Path(out_dir) / META_FILE).write_text(text + "\n", encoding="utf-8")
    return meta


def prepare_documents(
    docs: Sequence[str],
    tokenizer_name: str,
    out_dir: str | os.PathLike,
    *,
    source: dict[str, Any],
    val_fraction: float = 0.1,
    num_threads: int = 8,
) -> dict[str, Any]:
    """Tokenize an in-memory corpus, cut the stream into train (first 1 - val_fraction of the
    tokens) and val (the rest), and write train.bin, val.bin and meta.json into `out_dir`."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction}")
    if not any(doc.strip() for doc in docs):
        raise ValueError("the corpus is empty: every document is blank; give it some text")
    tokenizer = make_tokenizer(tokenizer_name, docs)
    total = sum(map(len, docs))
    pieces = encode_documents(tokenizer, docs, total_chars=total, num_threads=num_threads)
    ids = np.concatenate(list(pieces))
    n_train = len(ids) - max(1, round(len(ids) * val_fraction))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": write_bin(out_dir / "train.bin", [ids[:n_train]]),
        "val": write_bin(out_dir / "val.bin", [ids[n_train:]]),
    }
    meta = write_meta(out_dir, tokenizer, splits, source, documents=len(docs), chars=total)
    print(f"wrote {out_dir}: train {n_train:,} tokens, val {len(ids) - n_train:,} tokens")
    return meta


def prepare_shakespeare(
    *,
    out_dir: str | os.PathLike,
    tokenizer: str,
    val_fraction: float = 0.1,
    cache_dir: str | None = None,
    num_threads: int = 8,
) -> dict[str, Any]:
    """The complete works of Shakespeare as a dataset (data/shakespeare and data/shakespeare_char
    differ only in `tokenizer` and `out_dir`)."""
    works = shakespeare_works(cache_dir)
    return prepare_documents(
        list(works.values()), tokenizer, out_dir,
        source={**SHAKESPEARE_SOURCE, "works": len(works)},
        val_fraction=val_fraction, num_threads=num_threads,
    )  # fmt: skip


def run_cli(
    prepare: Callable[..., dict[str, Any]],
    description: str | None,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Command line for a prepare(...) function: each keyword parameter becomes --name (typed
    by its default; `--name value` and `--name=value` both work), and each parameter without a
    default becomes a positional list (e.g. the input files of data/text)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for param in inspect.signature(prepare).parameters.values():
        if param.default is inspect.Parameter.empty:
            parser.add_argument(param.name, nargs="+")
        else:
            kind = _parse_bool if isinstance(param.default, bool) else _arg_type(param.default)
            parser.add_argument(f"--{param.name}", type=kind, default=param.default,
                                help=f"default: {param.default}")  # fmt: skip
    return prepare(**vars(parser.parse_args(argv)))


def _arg_type(default: Any) -> Callable[[str], Any]:
    return str if default is None or isinstance(default, Path) else type(default)


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return text.lower() in ("true", "1")


def ensure_dataset(data_dir: Path) -> None:
    """Run data_dir/prepare.py's `prepare(out_dir=data_dir)` if the dataset is not there yet."""
    if (data_dir / META_FILE).is_file():
        return
    script = data_dir / "prepare.py"
    if not script.is_file():
        raise FileNotFoundError(
            f"{data_dir / META_FILE} not found and there is no {script} to make it"
        )
    spec = importlib.util.spec_from_file_location(f"prepare_{data_dir.name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.prepare(out_dir=data_dir)
