"""minigpt.data: token-window sampling, meta checks, and the labelled-text dataset."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from minigpt.data import LabelledTextDataset, TokenSampler, check_tokenizer, collate, load_meta
from minigpt.data.tokenizer import Tokenizer


@pytest.fixture
def ramp(tmp_path):
    """A bin whose token at position i is i: every window shows where it was cut from."""
    path = tmp_path / "train.bin"
    np.arange(1000, dtype=np.uint16).tofile(path)
    return path


def test_batch_is_shifted_windows(ramp):
    x, y = TokenSampler(ramp, block_size=8, batch_size=4, dtype="uint16").get_batch()
    assert x.shape == y.shape == (4, 8)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # y[b, t] = data[o_b + t + 1]
    assert torch.equal(x, x[:, :1] + torch.arange(8))  # consecutive tokens
    assert int(x.min()) >= 0 and int(y.max()) <= 999


def test_every_window_start_is_reachable(tmp_path):
    path = tmp_path / "short.bin"
    np.arange(6, dtype=np.uint32).tofile(path)  # block 4: starts 0 and 1 only
    sampler = TokenSampler(path, block_size=4, batch_size=64, dtype=np.uint32)
    starts = set(sampler.get_batch()[0][:, 0].tolist())
    assert starts == {0, 1}


def test_same_seed_same_batches(ramp):
    a, b, c = (TokenSampler(ramp, 8, 4, dtype="uint16", seed=s) for s in (1, 1, 2))
    for _ in range(3):
        xa, xb, xc = a.get_batch()[0], b.get_batch()[0], c.get_batch()[0]
        assert torch.equal(xa, xb)
        assert not torch.equal(xa, xc)


def test_ranks_split_the_single_process_batch(ramp):
    single = TokenSampler(ramp, 8, 6, dtype="uint16", seed=3)
    ranks = [TokenSampler(ramp, 8, 3, dtype="uint16", seed=3, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(3):
        joined = torch.cat([r.get_batch()[0] for r in ranks])
        assert torch.equal(joined, single.get_batch()[0])


def test_state_dict_resumes_exactly(ramp, tmp_path):
    sampler = TokenSampler(ramp, 8, 4, dtype="uint16", seed=5)
    sampler.get_batch()
    torch.save(sampler.state_dict(), tmp_path / "sampler.pt")
    expected = [sampler.get_batch()[0] for _ in range(2)]
    resumed = TokenSampler(ramp, 8, 4, dtype="uint16", seed=999)
    resumed.load_state_dict(torch.load(tmp_path / "sampler.pt", weights_only=True))
    assert all(torch.equal(resumed.get_batch()[0], x) for x in expected)


def test_sampler_holds_no_memmap(ramp):
    sampler = TokenSampler(ramp, 8, 4, dtype="uint16")
    sampler.get_batch()
    assert not any(isinstance(v, np.ndarray) for v in vars(sampler).values())


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from Linux /proc")
def test_resident_memory_does_not_grow_with_batches(tmp_path):
    def rss_mib() -> float:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    path = tmp_path / "big.bin"
    np.zeros(1 << 24, dtype=np.uint16).tofile(path)  # 32 MiB
    sampler = TokenSampler(path, 64, 64, dtype="uint16")
    sampler.get_batch()
    before = rss_mib()
    for _ in range(300):  # ~19k random windows: a memmap kept open would map most of the file
        sampler.get_batch()
    assert rss_mib() - before < 4


@pytest.mark.parametrize(
    "n_tokens, message",
    [(0, "is empty, but block_size=8 needs at least 9"), (8, "has only 8 tokens")],
)
def test_corpus_too_short(tmp_path, n_tokens, message):
    path = tmp_path / "tiny.bin"
    np.zeros(n_tokens, dtype=np.uint16).tofile(path)
    with pytest.raises(ValueError, match=message):
        TokenSampler(path, 8, 2, dtype="uint16")
    np.zeros(9, dtype=np.uint16).tofile(path)
    assert TokenSampler(path, 8, 2, dtype="uint16").get_batch()[0].shape == (2, 8)


def test_sampler_input_errors(tmp_path, ramp):
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="not a whole number of uint32; wrong dtype"):
        TokenSampler(odd, 1, 1, dtype="uint32")
    with pytest.raises(FileNotFoundError, match="missing.bin not found"):
        TokenSampler(tmp_path / "missing.bin", 8, 2, dtype="uint16")
    with pytest.raises(ValueError, match="block_size=0 and batch_size=2 must be >= 1"):
        TokenSampler(ramp, 0, 2, dtype="uint16")
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        TokenSampler(ramp, 8, 2, dtype="uint16", rank=2, world_size=2)


def test_load_meta_and_missing_meta(tmp_path):
    folder = tmp_path / "shakespeare_char"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="python data/shakespeare_char/prepare.py"):
        load_meta(folder)
    (folder / "meta.json").write_text(json.dumps({"dtype": "uint16"}))
    assert load_meta(folder) == {"dtype": "uint16"}


def test_check_tokenizer():
    gpt2, char = Tokenizer.from_name("gpt2"), Tokenizer.char_from_text("abc")
    check_tokenizer({"tokenizer": gpt2.to_spec()}, gpt2)
    check_tokenizer({"tokenizer": char.to_spec()}, Tokenizer.char_from_text("cba"))
    with pytest.raises(ValueError, match=r"tokenized with char \(n_vocab=4.*uses gpt2") as err:
        check_tokenizer({"tokenizer": char.to_spec()}, gpt2)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="alphabet 'abd'"):
        check_tokenizer({"tokenizer": char.to_spec()}, Tokenizer.char_from_text("abd"))


# ---- labelled text -------------------------------------------------------------------------

ROWS = [("good film", 1), ("bad", 0), ("a long and very tedious film indeed", 0), ("fine", 2)]


def write_rows(path, rows=ROWS, text="text", label="label"):
    if path.suffix == ".jsonl":
        lines = [json.dumps({text: t, label: y, "id": i}) for i, (t, y) in enumerate(rows)]
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        lines = [f"id{sep}{text}{sep}{label}"]
        lines += [f"{i}{sep}{t}{sep}{y}" for i, (t, y) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_labelled_formats_agree(tmp_path, suffix):
    tok = Tokenizer.from_name("bytes")
    path = write_rows(tmp_path / f"d{suffix}", text="review", label="stars")
    ds = LabelledTextDataset(path, tok, text_column="review", label_column="stars", max_len=5)
    assert ds.labels == ("0", "1", "2")
    assert len(ds) == 4 and ds.n_truncated == 2 and ds.n_skipped == 0
    assert ds[0] == (list(b"good "), 1)
    assert ds[1] == (list(b"bad"), 0)
    assert ds.class_counts() == [2, 1, 1]


def test_collate_right_pads_with_mask_and_lengths(tmp_path):
    tok = Tokenizer.from_name("gpt2")
    ds = LabelledTextDataset(write_rows(tmp_path / "d.jsonl"), tok, labels=[0, 1, 2])
    batch = ds.collate([ds[0], ds[1]])  # "good film" = 2 tokens, "bad" = 1
    assert batch.input_ids.tolist() == [[11274, 2646], [14774, 50256]]
    assert batch.lengths.tolist() == [2, 1]
    assert batch.attention_mask.tolist() == [[True, True], [True, False]]
    assert batch.labels.tolist() == [1, 0]
    padded = collate([([5, 6, 7], 1), ([8], 0)], pad_id=0)
    assert padded.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert padded.input_ids.dtype == padded.lengths.dtype == torch.int64


def test_label_set_order_and_numeric_inference(tmp_path):
    tok = Tokenizer.from_name("bytes")
    path = write_rows(tmp_path / "d.csv", [("x", 10), ("y", 2), ("z", -1)])
    assert LabelledTextDataset(path, tok).labels == ("-1", "2", "10")
    named = write_rows(tmp_path / "n.jsonl", [("x", "pos"), ("y", "neg")])
    ds = LabelledTextDataset(named, tok, labels=["pos", "neg"])
    assert [y for _, y in ds] == [0, 1]


def test_label_outside_set(tmp_path):
    path = write_rows(tmp_path / "d.jsonl")
    with pytest.raises(ValueError, match=r"line 4: label '2' is not in the label set \['0', '1'\]"):
        LabelledTextDataset(path, Tokenizer.from_name("bytes"), labels=[0, 1])


def test_unlabelled_rows_error_or_skip(tmp_path):
    tok = Tokenizer.from_name("bytes")
    path = write_rows(tmp_path / "d.jsonl", [("x", 1), ("y", None), ("z", 0)])
    with pytest.raises(ValueError, match="line 2: no 'label'; fill it or pass skip_unlabelled"):
        LabelledTextDataset(path, tok)
    ds = LabelledTextDataset(path, tok, skip_unlabelled=True)
    assert (len(ds), ds.n_skipped) == (2, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"text_column": "body"}, r"line 1 has no column 'body' \(has: text, label, id\)"),
        ({"label_column": "y"}, "has no column 'y'"),
    ],
)
def test_missing_columns(tmp_path, kwargs, message):
    path = write_rows(tmp_path / "d.jsonl")
    with pytest.raises(ValueError, match=message):
        LabelledTextDataset(path, Tokenizer.from_name("bytes"), **kwargs)


def test_csv_missing_column_names_header(tmp_path):
    path = write_rows(tmp_path / "d.csv")
    with pytest.raises(ValueError, match=r"d.csv line 2 has no column 'body' \(has: id, text"):
        LabelledTextDataset(path, Tokenizer.from_name("bytes"), text_column="body")


def test_bad_files(tmp_path):
    tok = Tokenizer.from_name("bytes")
    empty_text = write_rows(tmp_path / "e.jsonl", [("ok", 1), ("  ", 0)])
    with pytest.raises(ValueError, match="line 2: empty 'text'"):
        LabelledTextDataset(empty_text, tok)
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"text": "a", "label": 1}\n{"text": \n')
    with pytest.raises(ValueError, match="b.jsonl line 2 is not valid JSON"):
        LabelledTextDataset(broken, tok)
    with pytest.raises(ValueError, match="unknown format '.xml'; use a .jsonl, .csv or .tsv"):
        LabelledTextDataset(write_rows(tmp_path / "d.csv").rename(tmp_path / "d.xml"), tok)
    header_only = tmp_path / "h.csv"
    header_only.write_text("text,label\n")
    with pytest.raises(ValueError, match="holds no labelled rows"):
        LabelledTextDataset(header_only, tok)


def test_non_utf8_is_an_error_unless_replaced(tmp_path):
    tok = Tokenizer.from_name("bytes")
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv is not valid UTF-8 \(byte 14"):
        LabelledTextDataset(path, tok)
    ds = LabelledTextDataset(path, tok, errors="replace")
    assert tok.decode(ds[0][0]) == "caf\ufffd"
