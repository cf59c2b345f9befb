"""sample.py end to end: a trained checkpoint, its own tokenizer, streamed and seeded output."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sample
from minigpt.data.tokenizer import Tokenizer
from minigpt.train.trainer import Trainer
from tests.tiny_models import one_thread
from tests.train.fixtures import make_dataset, tiny_train_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sample")
    with one_thread():
        Trainer(tiny_train_config(tmp / "out", make_dataset(tmp / "data"), max_iters=10)).train()
    return tmp / "out"


def run_sample(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "sample.py"), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def test_sample_cli_streams_seeded_samples_from_the_checkpoint(checkpoint, tmp_path, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Shall I")
    args = [f"--out_dir={checkpoint}", "--num_samples=2", "--max_new_tokens=25", "--seed=7",
            "--device=cpu", "--dtype=float32", "--top_k=5", "--top_p", "0.9",
            "--compile=False"]  # fmt: skip
    first = run_sample(*args, f"--start=FILE:{prompt}")  # the script itself, as a user runs it
    assert first.returncode == 0, first.stderr
    samples = first.stdout.rstrip("\n").split("\n---------------\n")
    assert len(samples) == 2
    alphabet = set(Tokenizer.load(checkpoint).chars)
    for text in samples:
        assert text.startswith("Shall I")
        assert len(text) == len("Shall I") + 25  # one character per char token
        assert set(text) <= alphabet  # decoded with the checkpoint's own tokenizer
    with one_thread():
        assert sample.main([*args, "--start=Shall I"]) == 0
        assert capsys.readouterr().out == first.stdout  # same seed, same text
        sample.main([*args, "--seed=8", "--start=Shall I"])
        assert capsys.readouterr().out != first.stdout


@pytest.mark.compile
def test_sample_compile_true_prints_the_same_samples(checkpoint, capsys):
    args = [f"--out_dir={checkpoint}", "--num_samples=2", "--max_new_tokens=25", "--seed=7",
            "--device=cpu", "--dtype=float32", "--top_k=5", "--start=Shall I"]  # fmt: skip
    compiled = run_sample(*args, "--compile=True")  # nanoGPT's flag
    assert compiled.returncode == 0, compiled.stderr
    with one_thread():
        assert sample.main(args) == 0
    assert compiled.stdout == capsys.readouterr().out


def test_sample_bad_inputs_are_one_line(checkpoint, capsys):
    assert sample.main([f"--out_dir={checkpoint}", "--top_q=0.9"]) == 2
    assert capsys.readouterr().err == "error: unknown setting --top_q; did you mean --top_p?\n"
    assert sample.main([f"--out_dir={checkpoint}", "--start=FILE:/nonexistent"]) == 2
    assert capsys.readouterr().err == "error: --start=FILE:/nonexistent: no such file\n"
    assert sample.main(["--out_dir=/nonexistent"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_stream_text_holds_back_split_characters():
    tok = Tokenizer.from_name("bytes")
    ids = tok.encode("é!")  # two bytes for é, then !
    pieces = list(sample.stream_text(tok, iter(torch.tensor([[i]]) for i in ids)))
    assert pieces == ["é", "!"]  # nothing is printed for the first, incomplete byte
