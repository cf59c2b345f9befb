"""Tokenizers: text <-> integer ids, and the JSON spec that pins them to data and checkpoints.

A language model only ever sees integers. A tokenizer is the pair of maps

    encode: str -> [x_1, ..., x_n]  with every x_i in [0, n_vocab)
    decode: [x_1, ..., x_n] -> str

such that decode(encode(s)) == s for every text the tokenizer can represent. The objective
L = -sum_i log p(x_{i+1} | x_1..x_i) is defined over these ids, so data and model must agree on
the tokenizer exactly; `to_spec()` is the small JSON record that every `meta.json` and checkpoint
stores to make that checkable.

Three kinds:

- BPE (byte-pair encoding) through tiktoken: "gpt2" (the GPT-2/GPT-3 vocabulary: r50k_base ranks,
  end-of-text id 50256), "r50k_base", "p50k_base", "cl100k_base" (GPT-4), "o200k_base".
- Character-level: one id per distinct character of a corpus (`Tokenizer.char_from_text`). Ids
  0..len(chars)-1 are the characters in sorted order; the extra id `len(chars)` is `unk_id`, what
  any character outside the corpus maps to (it decodes to U+FFFD).
- Bytes: the 256 byte values of the UTF-8 encoding; represents every text, no training needed.
- A BPE subset, named "<bpe>:<n_vocab>" (e.g. "gpt2:8192"): a BPE vocabulary cut down to the
  n_vocab ids a corpus uses most (`SubsetBPETokenizer`). The LM head of a model over it has
  n_vocab rows instead of 50,257, which is most of a small model's compute.

`eot_id` is the end-of-text id that separates documents, or None for tokenizers that have none
(char, bytes). Special tokens are never produced from plain text: "<|endoftext|>" inside a
document is encoded as the ordinary characters it is made of, unless `allowed_special` asks for it.

Objective tokens (BERT's "[MASK]", T5's sentinels "<extra_id_0>".."<extra_id_99>") are no text at
all: `add_special_tokens` gives them the ids n_vocab, n_vocab + 1, ..., the padding rows of the
embedding first (50257 -> 50304 leaves 47 for GPT-2) and more rows past them when needed, so they
never take a real token's id. Text never encodes to them, and the spec records their names so a
checkpoint reloads with the same ids.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import tiktoken

TOKENIZER_FILE = "tokenizer_spec.json"
"""File name of the tokenizer spec inside a checkpoint or data directory."""

# name -> tiktoken encoding. "gpt2" is an alias: tiktoken's own "gpt2" encoding reads the older
# encoder.json/vocab.bpe files, while r50k_base holds the same ranks in the file that is cached.
BPE_ENCODINGS = {
    "gpt2": "r50k_base",
    "r50k_base": "r50k_base",
    "p50k_base": "p50k_base",
    "cl100k_base": "cl100k_base",
    "o200k_base": "o200k_base",
}
NAMES = (*BPE_ENCODINGS, "char", "bytes")

Special = Collection[str] | Literal["all"]


class Tokenizer(ABC):
    """Base class: the shared API. Build one with `from_name`, `char_from_text` or `load`."""

    name: str
    n_vocab: int
    eot_id: int | None = None
    special_tokens: tuple[str, ...] = ()  # objective tokens; special_tokens[k] has id n_vocab + k

    # ---- construction -------------------------------------------------------------------
    @staticmethod
    def from_name(name: str) -> Tokenizer:
        """A BPE tokenizer by name (see `NAMES`) or "bytes". "char" needs a corpus: see
        `char_from_text`."""
        if name == "bytes":
            return ByteTokenizer()
        if name in BPE_ENCODINGS:
            return BPETokenizer(name)
        hint = "; build it with Tokenizer.char_from_text(text)" if name == "char" else ""
        raise ValueError(f"unknown tokenizer {name!r}: choose one of {', '.join(NAMES)}{hint}")

    @staticmethod
    def char_from_text(text: str) -> CharTokenizer:
        """A character-level tokenizer whose vocabulary is every distinct character of `text`."""
        return CharTokenizer("".join(sorted(set(text))))

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from `to_spec()` output."""
        kind = spec.get("kind")
        if kind == "char":
            tok: Tokenizer = CharTokenizer(spec["chars"])
        elif kind == "bpe_subset":
            tok = SubsetBPETokenizer(spec["base"], spec["base_ids"])
        elif kind in ("bpe", "bytes"):
            tok = Tokenizer.from_name(spec["name"])
        else:
            raise ValueError(
                f"tokenizer spec has unknown kind {kind!r}; expected bpe, bpe_subset, char, bytes"
            )
        if spec.get("n_vocab", tok.n_vocab) != tok.n_vocab:  # e.g. a tiktoken file that changed
            raise ValueError(
                f"tokenizer spec says {spec['name']} has n_vocab={spec['n_vocab']}, but it builds"
                f" {tok.n_vocab}; the saved ids would not mean the same text"
            )
        tok.add_special_tokens(spec.get("special_tokens", ()))
        return tok

    @staticmethod
    def load(path: str | os.PathLike) -> Tokenizer:
        """Read a spec written by `save`; `path` is the JSON file or a directory holding
        `TOKENIZER_FILE`."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer spec at {path}; save one with tokenizer.save()")
        return Tokenizer.from_spec(json.loads(path.read_text(encoding="utf-8")))

    # ---- the shared API -----------------------------------------------------------------
    def to_spec(self) -> dict[str, Any]:
        """A JSON-serialisable description that `from_spec` turns back into this tokenizer."""
        spec = self._kind_spec()
        if self.special_tokens:
            spec["special_tokens"] = list(self.special_tokens)
        return spec

    @abstractmethod
    def _kind_spec(self) -> dict[str, Any]:
        """The spec of the plain tokenizer, without special tokens."""

    def add_special_tokens(self, names: Iterable[str]) -> list[int]:
        """Give each name not yet known the next id after the vocabulary; return all their ids."""
        new = [n for n in dict.fromkeys(names) if n not in self.special_tokens]
        self.special_tokens = (*self.special_tokens, *new)
        return [self.special_id(n) for n in names]

    def special_id(self, name: str) -> int:
        """The id of a special token added with `add_special_tokens`."""
        if name not in self.special_tokens:
            known = list(self.special_tokens) or "none"
            raise ValueError(f"tokenizer has no special token {name!r} (it has {known})")
        return self.n_vocab + self.special_tokens.index(name)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the spec as JSON to `path` (a file, or a directory that gets `TOKENIZER_FILE`)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        path.write_text(json.dumps(self.to_spec(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @abstractmethod
    def encode(self, text: str, *, allowed_special: Special = ()) -> list[int]:
        """Text -> ids. Special tokens are produced only for the strings in `allowed_special`."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Ids (a list, numpy array or 1-D tensor) -> text. Ids outside [0, n_vocab) raise
        ValueError."""

    def encode_batch(self, texts: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        """`encode` of each text; BPE runs them on `num_threads` threads (tiktoken's Rust core
        releases the GIL), the simple kinds are fast enough in one."""
        return [self.encode(t) for t in texts]

    def encode_with_eot(self, text: str) -> list[int]:
        """`encode(text)` followed by `eot_id`: one document, ready to be concatenated."""
        if self.eot_id is None:
            raise ValueError(f"tokenizer {self.name!r} has no end-of-text token")
        return [*self.encode(text), self.eot_id]

    def padded_vocab_size(self, multiple: int = 64) -> int:
        """`n_vocab` plus the special tokens, rounded up to a multiple of `multiple`, for the
        embedding/LM-head size.

        Matrix shapes that are multiples of 64 map onto GPU tiles without ragged edges; nanoGPT
        measured about 25% faster training for 50257 -> 50304. The extra rows are never text
        targets, and sampling must mask logits at ids >= n_vocab.
        """
        return -(-(self.n_vocab + len(self.special_tokens)) // multiple) * multiple

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_vocab={self.n_vocab})"

    def _checked(self, ids: Iterable[int]) -> list[int]:
        """`ids` as plain ints, each verified to be in [0, n_vocab)."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.n_vocab]
        if bad:
            raise ValueError(
                f"cannot decode id {bad[0]}: tokenizer {self.name!r} has ids 0..{self.n_vocab - 1}"
                " (mask padded-vocab logits before sampling)"
            )
        return ids


class BPETokenizer(Tokenizer):
    """tiktoken byte-level BPE. Every text is representable; `eot_id` is "<|endoftext|>"."""

    def __init__(self, name: str):
        self.name = name
        self.encoding = _load_encoding(BPE_ENCODINGS[name])
        self.n_vocab = self.encoding.n_vocab
        self.eot_id = self.encoding.eot_token

    def _kind_spec(self) -> dict[str, Any]:
        return {"kind": "bpe", "name": self.name, "n_vocab": self.n_vocab, "eot_id": self.eot_id}

    def encode(self, text: str, *, allowed_special: Special = ()) -> list[int]:
        if not allowed_special:
            return self.encoding.encode_ordinary(text)
        # disallowed_special=() : a special string not allowed stays plain text instead of raising
        return self.encoding.encode(text, allowed_special=allowed_special, disallowed_special=())

    def decode(self, ids: Iterable[int]) -> str:
        return self.encoding.decode(self._checked(ids))

    def encode_batch(self, texts: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(list(texts), num_threads=num_threads)


class SubsetBPETokenizer(Tokenizer):
    """A BPE vocabulary cut down to the base ids a corpus uses most, with byte fallback.

    New id i stands for base id `base_ids[i]`. The subset always holds the base's 256 single-byte
    tokens and its end-of-text token; a base token outside the subset is split into subset tokens
    by greedy longest match over its bytes (" Conan" -> " Con" "an"), which ends at single bytes
    at worst. So every text still encodes, decode(encode(s)) == s, and only rare words cost more
    ids than under the full vocabulary.
    """

    def __init__(self, base: str, base_ids: Sequence[int]):
        self.base = _subset_base(base)
        encoding = self.base.encoding
        self.base_ids = [int(i) for i in base_ids]
        self._new_id = {b: i for i, b in enumerate(self.base_ids)}
        if len(self._new_id) != len(self.base_ids):
            raise ValueError("a BPE subset lists a base id twice")
        missing = [i for i in _required_ids(encoding) if i not in self._new_id]
        if missing:
            raise ValueError(f"a {base} subset must keep every single-byte token and end-of-text")
        self.name = f"{base}:{len(self.base_ids)}"
        self.n_vocab = len(self.base_ids)
        self.eot_id = self._new_id[encoding.eot_token]
        # the pieces a split may use: every ordinary token (never end-of-text) by its bytes
        self._by_bytes = {
            encoding.decode_single_token_bytes(b): i
            for b, i in self._new_id.items()
            if i != self.eot_id
        }
        self._longest = max(map(len, self._by_bytes))
        self._pieces: dict[int, list[int]] = {}  # base id outside the subset -> its subset ids

    @staticmethod
    def from_corpus(base: str, docs: Iterable[str], n_vocab: int) -> SubsetBPETokenizer:
        """The subset of `base` with its required ids plus the ids most frequent in `docs`:
        n_vocab ids in all, or fewer when `docs` use fewer."""
        encoding = _subset_base(base).encoding
        required = _required_ids(encoding)
        if n_vocab < len(required):
            raise ValueError(f"a {base} subset needs n_vocab >= {len(required)} (bytes + eot)")
        counts = Counter(i for ids in encoding.encode_ordinary_batch(list(docs)) for i in ids)
        kept = set(required)
        frequent = [i for i, _ in counts.most_common() if i not in kept][: n_vocab - len(kept)]
        return SubsetBPETokenizer(base, [*required, *frequent])

    def _kind_spec(self) -> dict[str, Any]:
        return {
            "kind": "bpe_subset",
            "name": self.name,
            "base": self.base.name,
            "n_vocab": self.n_vocab,
            "eot_id": self.eot_id,
            "base_ids": self.base_ids,
        }

    def encode(self, text: str, *, allowed_special: Special = ()) -> list[int]:
        return self._from_base(self.base.encode(text, allowed_special=allowed_special))

    def decode(self, ids: Iterable[int]) -> str:
        return self.base.decode([self.base_ids[i] for i in self._checked(ids)])

    def encode_batch(self, texts: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        batch = self.base.encode_batch(texts, num_threads=num_threads)
        return [self._from_base(ids) for ids in batch]

    def _from_base(self, base_ids: list[int]) -> list[int]:
        out = []
        for i in base_ids:
            new = self._new_id.get(i)
            if new is None:
                out += self._split(i)
            else:
                out.append(new)
        return out

    def _split(self, base_id: int) -> list[int]:
        """Subset ids for a base token outside the subset: greedy longest match over its bytes."""
        if base_id not in self._pieces:
            data, pieces, start = self.base.encoding.decode_single_token_bytes(base_id), [], 0
            while start < len(data):
                stop = min(len(data), start + self._longest)
                while data[start:stop] not in self._by_bytes:  # single bytes always match
                    stop -= 1
                pieces.append(self._by_bytes[data[start:stop]])
                start = stop
            self._pieces[base_id] = pieces
        return self._pieces[base_id]


def _subset_base(base: str) -> BPETokenizer:
    if base not in BPE_ENCODINGS:
        raise ValueError(
            f"unknown BPE {base!r} to subset: choose one of {', '.join(BPE_ENCODINGS)}"
        )
    return BPETokenizer(base)


def _required_ids(encoding: tiktoken.Encoding) -> list[int]:
    """The base ids every subset keeps: the 256 single bytes, then end-of-text."""
    return [*(encoding.encode_single_token(bytes([b])) for b in range(256)), encoding.eot_token]


class CharTokenizer(Tokenizer):
    """One id per character of a fixed alphabet, plus `unk_id` for every other character."""

    def __init__(self, chars: str):
        if not chars:
            raise ValueError("a char tokenizer needs a non-empty alphabet: build it from text")
        if len(set(chars)) != len(chars):
            raise ValueError("char tokenizer alphabet has repeated characters")
        self.name = "char"
        self.chars = chars
        self.unk_id = len(chars)
        self.n_vocab = len(chars) + 1
        self._ids = {c: i for i, c in enumerate(chars)}

    def _kind_spec(self) -> dict[str, Any]:
        return {"kind": "char", "name": "char", "n_vocab": self.n_vocab, "chars": self.chars}

    def encode(self, text: str, *, allowed_special: Special = ()) -> list[int]:
        _no_specials(self, allowed_special)
        ids, unk = self._ids, self.unk_id
        return [ids.get(c, unk) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        alphabet = self.chars + "\ufffd"  # unk_id decodes to the Unicode replacement character
        return "".join(alphabet[i] for i in self._checked(ids))


class ByteTokenizer(Tokenizer):
    """The UTF-8 bytes of the text, one id each. Decoding replaces invalid sequences by U+FFFD."""

    name = "bytes"
    n_vocab = 256

    def _kind_spec(self) -> dict[str, Any]:
        return {"kind": "bytes", "name": "bytes", "n_vocab": 256}

    def encode(self, text: str, *, allowed_special: Special = ()) -> list[int]:
        _no_specials(self, allowed_special)
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(self._checked(ids)).decode("utf-8", errors="replace")


def _no_specials(tok: Tokenizer, allowed_special: Special) -> None:
    """Char and byte tokenizers have no special tokens; asking for a named one is a mistake."""
    if allowed_special and allowed_special != "all":
        asked = sorted(allowed_special)
        raise ValueError(f"tokenizer {tok.name!r} has no special tokens (asked for {asked})")


def _load_encoding(encoding: str) -> tiktoken.Encoding:
    """tiktoken's encoding, turning its download failure into one actionable line."""
    try:
        return tiktoken.get_encoding(encoding)
    except OSError as e:  # requests' ConnectionError and file errors are OSErrors
        cache = os.environ.get("TIKTOKEN_CACHE_DIR", "unset")
        raise RuntimeError(
            f"BPE file for tiktoken encoding {encoding!r} is not cached and could not be downloaded"
            f" ({type(e).__name__}); set TIKTOKEN_CACHE_DIR to a folder holding a cached copy"
            f" (now: {cache})"
        ) from None
