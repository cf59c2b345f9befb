"""eval.py as users run it: a trained minigpt checkpoint and an HF-format one, text and a task."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import eval as eval_cli
import minigpt
from minigpt.eval import load_eval_model, load_texts, score_documents
from minigpt.eval.config import EvalConfig
from minigpt.settings import to_flags
from tests.eval.models import random_model
from tests.train.fixtures import VERSE

ROOT = Path(__file__).resolve().parents[2]


def run_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), "--device=cpu", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


def test_help_lists_every_setting():
    result = run_eval("--help")
    assert result.returncode == 0
    for flag in to_flags(EvalConfig()):
        assert f"{flag.partition('=')[0]} " in result.stdout


def test_json_reports_bpb_for_each_model_on_the_same_bytes_and_task_accuracy(files):
    result = run_eval(
        f"--init_from={files / 'char'},{files / 'hf'}", f"--dataset={files / 'verse.txt'}",
        f"--tasks={files / 'task.jsonl'}", "--stride=8", "--batch_size=3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    models = {m["name"]: m for m in report["models"]}
    assert models[str(files / "char")]["tokenizer"] == "char"
    assert models[str(files / "hf")]["tokenizer"] == "gpt2"  # the fallback for HF directories
    text_rows = [r for r in report["results"] if r["on"] == "verse"]
    task_rows = [r for r in report["results"] if r["on"] == str(files / "task.jsonl")]
    assert len(text_rows) == len(task_rows) == 2
    for row in text_rows:
        assert row["objective"] == "causal"
        assert row["n_bytes"] == len((VERSE * 3).encode("utf-8"))
        assert row["bpb"] == pytest.approx(row["nll"] / math.log(2) / row["n_bytes"])
        assert row["ppl"] == pytest.approx(math.exp(row["loss"]))
        loaded = load_eval_model(row["model"], "cpu")
        texts = load_texts(str(files / "verse.txt"))
        expected = score_documents(loaded.model, loaded.tokenizer, texts.documents, stride=8)
        assert row["nll"] == pytest.approx(expected.nll, rel=1e-6)
    for row in task_rows:  # one item right and one wrong, whichever choice the model prefers
        assert (row["n"], row["accuracy"], row["num_fewshot"]) == (2, 0.5, 0)


def test_the_table_has_one_line_per_model_and_dataset(files):
    result = run_eval(f"--init_from={files / 'char'}", f"--dataset={files / 'verse.txt'}")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["model", "objective", "on", "tokens", "bytes", "loss", "ppl", "bpb",
                              "acc", "acc_norm"]  # fmt: skip
    assert row.split()[1:3] == ["causal", "verse"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        ("--init_from={char} --dataset=no_such_data", 2, "error: unknown dataset 'no_such_data'"),
        ("--init_from={char} --dataset={empty}", 1, "is empty; give a file with text to score"),
        ("--init_from={char} --dataset= --tasks={empty}", 1, "is empty; write one JSON item per"),
        ("--init_from={char} --tasks={text} --num_fewshot=2", 2, "needs --fewshot_file"),
        ("--init_from={small_hf} --dataset={text}", 1, "error: tokenizer mismatch: "),
        ("--init_from=/no/such/dir --dataset={text}", 2,
         "error: no checkpoint at /no/such/dir (no config.json)"),
        ("--datset=x", 2, "unknown setting --datset; did you mean --dataset?"),
    ],
)  # fmt: skip
def test_bad_input_is_a_one_line_error(files, tmp_path, capsys, args, code, message):
    """Exit 2 for settings that cannot work (missing paths too), 1 for a run that fails on what
    it reads."""
    (tmp_path / "empty.txt").write_text("")
    small_hf = tmp_path / "small_hf"  # 300 ids, read with GPT-2's 50,257-id fallback tokenizer
    minigpt.export_hf_gpt2(random_model(300), small_hf)
    paths = {"char": files / "char", "text": files / "verse.txt", "small_hf": small_hf,
             "empty": tmp_path / "empty.txt"}  # fmt: skip
    assert eval_cli.main(["--device=cpu", *args.format(**paths).split()]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_an_hf_checkpoint_can_be_read_with_a_named_tokenizer(files):
    loaded = load_eval_model(files / "hf", "cpu", fallback_tokenizer="r50k_base")
    assert loaded.tokenizer.name == "r50k_base"
    with pytest.raises(ValueError, match="unknown tokenizer 'nope'"):
        load_eval_model(files / "hf", "cpu", fallback_tokenizer="nope")
    assert load_eval_model(files / "char", "cpu").tokenizer.name == "char"
