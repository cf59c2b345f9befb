"""Every CLI, run as a user runs it: a local path that does not exist is one line naming it (exit
2, before any data is prepared; never sent to the hub), and data/<dataset> is found from any
working directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from minigpt.paths import dataset_dir

ROOT = Path(__file__).resolve().parents[1]
MISSING = "/no/such/dir"

COMMANDS = {
    "train --init_from": ["train.py", f"--init_from={MISSING}", "--device=cpu"],
    "sample": ["sample.py", f"--out_dir={MISSING}", "--device=cpu"],
    "eval": ["eval.py", f"--init_from={MISSING}", "--device=cpu"],
    "finetune": ["finetune.py", f"--init_from={MISSING}", "--device=cpu"],
    "finetune predict": ["finetune.py", "predict", f"--out_dir={MISSING}", "--text=a film"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_missing_checkpoint_is_one_line_naming_it(name, tmp_path):
    script, *args = COMMANDS[name]
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    expected = "classifier.json" if name == "finetune predict" else "config.json"
    assert done.stderr == f"error: no checkpoint at {MISSING} (no {expected})\n"


def test_datasets_are_found_in_the_checkout_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dataset_dir("shakespeare_char") == ROOT / "data" / "shakespeare_char"
    assert dataset_dir("shakespeare_char", "bins") == Path("bins")  # an explicit folder, as given
