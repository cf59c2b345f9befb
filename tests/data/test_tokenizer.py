"""Tokenizer: known ids for the BPE vocabularies, char/bytes round trips, specs, and errors."""

import json

import numpy as np
import pytest
import requests
import tiktoken
import torch

from minigpt.data.tokenizer import TOKENIZER_FILE, CharTokenizer, Tokenizer


def bpe_or_skip(name: str) -> Tokenizer:
    """p50k_base and o200k_base are not in the shared cache: test them only where they exist."""
    try:
        return Tokenizer.from_name(name)
    except RuntimeError as e:
        pytest.skip(str(e))


def test_gpt2_is_r50k_with_eot_50256():
    tok = Tokenizer.from_name("gpt2")
    assert (tok.name, tok.n_vocab, tok.eot_id) == ("gpt2", 50257, 50256)
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode("Hello world") == Tokenizer.from_name("r50k_base").encode("Hello world")
    assert tok.padded_vocab_size() == 50304
    assert tok.padded_vocab_size(128) == 50304
    assert tok.padded_vocab_size(1) == 50257


def test_cl100k_is_gpt4_bpe():
    tok = Tokenizer.from_name("cl100k_base")
    assert (tok.n_vocab, tok.eot_id) == (100277, 100257)
    assert tok.encode("hello world") == [15339, 1917]
    assert tok.padded_vocab_size() == 100288


@pytest.mark.parametrize("name, n_vocab", [("p50k_base", 50281), ("o200k_base", 200019)])
def test_uncached_bpe_names_work_when_their_file_exists(name, n_vocab):
    tok = bpe_or_skip(name)
    assert tok.n_vocab == n_vocab
    assert tok.decode(tok.encode("round trip ✓")) == "round trip ✓"


def test_plain_text_never_becomes_eot():
    tok = Tokenizer.from_name("gpt2")
    text = "a<|endoftext|>b"
    assert tok.eot_id not in tok.encode(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.eot_id not in tok.encode_batch([text, text])[1]
    assert tok.encode(text, allowed_special={"<|endoftext|>"}) == [64, 50256, 65]
    assert tok.encode(text, allowed_special="all") == [64, 50256, 65]
    assert tok.encode_with_eot("a") == [64, 50256]


def test_encode_batch_matches_encode_on_any_thread_count():
    tok = Tokenizer.from_name("gpt2")
    texts = [f"document {i}: to be, or not to be" * (i + 1) for i in range(20)]
    expected = [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, num_threads=1) == expected
    assert tok.encode_batch(texts, num_threads=4) == expected


def test_missing_bpe_file_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "p50k_base", raising=False)

    def offline(url):
        raise requests.ConnectionError(f"cannot reach {url}")

    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    with pytest.raises(RuntimeError) as err:
        Tokenizer.from_name("p50k_base")
    message = str(err.value)
    assert "\n" not in message
    assert "'p50k_base'" in message and "TIKTOKEN_CACHE_DIR" in message and str(tmp_path) in message


def test_char_tokenizer_sorted_alphabet_and_unknown_id():
    tok = Tokenizer.char_from_text("hello world")
    assert isinstance(tok, CharTokenizer)
    assert tok.chars == " dehlorw"
    assert (tok.n_vocab, tok.unk_id, tok.eot_id) == (9, 8, None)
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.encode("hex!") == [3, 2, 8, 8]
    assert tok.decode(tok.encode("hex!")) == "he\ufffd\ufffd"
    assert tok.decode(tok.encode("world hello")) == "world hello"
    assert tok.padded_vocab_size() == 64


def test_char_tokenizer_has_no_specials():
    tok = Tokenizer.char_from_text("abc")
    assert tok.encode("<|endoftext|>") == [3] * 13  # every character unknown, none special
    assert tok.encode("abc", allowed_special="all") == [0, 1, 2]
    with pytest.raises(ValueError, match="no special tokens"):
        tok.encode("abc", allowed_special={"<|endoftext|>"})
    with pytest.raises(ValueError, match="no end-of-text token"):
        tok.encode_with_eot("abc")


def test_bytes_tokenizer_round_trips_any_text():
    tok = Tokenizer.from_name("bytes")
    text = "héllo ✓ <|endoftext|>"
    ids = tok.encode(text)
    assert ids[:3] == [104, 195, 169] and len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert (tok.n_vocab, tok.eot_id, tok.padded_vocab_size()) == (256, None, 256)
    assert tok.decode([104, 195]) == "h\ufffd"  # a cut UTF-8 sequence decodes to U+FFFD


@pytest.mark.parametrize("name", ["gpt2", "bytes", "char"])
def test_decode_takes_lists_arrays_and_tensors(name):
    tok = Tokenizer.char_from_text("hi there") if name == "char" else Tokenizer.from_name(name)
    ids = tok.encode("hi there")
    for form in (ids, np.array(ids, dtype=np.uint16), torch.tensor(ids)):
        assert tok.decode(form) == "hi there"


@pytest.mark.parametrize("name", ["gpt2", "bytes", "char"])
def test_decode_rejects_ids_outside_vocab(name):
    tok = Tokenizer.char_from_text("ab") if name == "char" else Tokenizer.from_name(name)
    with pytest.raises(ValueError, match=f"cannot decode id {tok.n_vocab}"):
        tok.decode([0, tok.n_vocab])


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "bytes", "char"])
def test_spec_round_trip_through_json_file_and_dir(name, tmp_path):
    tok = Tokenizer.char_from_text("to be or not") if name == "char" else Tokenizer.from_name(name)
    spec = json.loads(json.dumps(tok.to_spec()))
    assert Tokenizer.from_spec(spec).to_spec() == tok.to_spec()
    assert tok.save(tmp_path) == tmp_path / TOKENIZER_FILE
    for path in (tmp_path, tmp_path / TOKENIZER_FILE):
        loaded = Tokenizer.load(path)
        assert type(loaded) is type(tok)
        assert loaded.encode("not to be?") == tok.encode("not to be?")


def test_char_spec_stores_alphabet():
    spec = Tokenizer.char_from_text("cab").to_spec()
    assert spec == {"kind": "char", "name": "char", "n_vocab": 4, "chars": "abc"}
    assert Tokenizer.from_name("gpt2").to_spec() == {
        "kind": "bpe",
        "name": "gpt2",
        "n_vocab": 50257,
        "eot_id": 50256,
    }


def test_bad_names_and_specs_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt5': choose one of gpt2,"):
        Tokenizer.from_name("gpt5")
    with pytest.raises(ValueError, match="char_from_text"):
        Tokenizer.from_name("char")
    with pytest.raises(ValueError, match="unknown kind 'wordpiece'"):
        Tokenizer.from_spec({"kind": "wordpiece", "name": "bert"})
    with pytest.raises(FileNotFoundError, match="no tokenizer spec at"):
        Tokenizer.load(tmp_path)
    with pytest.raises(ValueError, match="gpt2 has n_vocab=50000, but it builds 50257"):
        Tokenizer.from_spec({"kind": "bpe", "name": "gpt2", "n_vocab": 50000})
    with pytest.raises(ValueError, match="non-empty alphabet"):
        Tokenizer.char_from_text("")
