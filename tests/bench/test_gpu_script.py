"""bench/gpu.py on a machine without a GPU: its argument handling and its one-line exit."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def run_gpu_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/gpu.py", *args], cwd=ROOT, capture_output=True, text=True
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit without a GPU")
def test_without_a_gpu_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu"
    done = run_gpu_script("--out_dir", str(out))
    assert done.returncode == 2
    assert done.stdout.strip().splitlines() == [
        "bench/gpu.py: no CUDA GPU here (torch.cuda.is_available() is False); nothing run"
    ]
    assert not out.exists()


def test_out_dir_is_required_and_unknown_steps_are_named():
    done = run_gpu_script()
    assert done.returncode == 2
    assert "--out_dir is required" in done.stderr.splitlines()[-1]
    done = run_gpu_script("--out_dir", "x", "--steps", "tests,decod")
    assert done.returncode == 2
    assert "unknown step 'decod'; choose from tests, train_gpt2" in done.stderr


def test_list_names_every_step_within_eight_minutes():
    done = run_gpu_script("--list")
    assert done.returncode == 0
    lines = done.stdout.strip().splitlines()
    assert [line.split(" ")[0] for line in lines] == [
        "tests", "train_gpt2", "attention_band", "decode"
    ]  # fmt: skip
    limits = [int(line.split("(limit ")[1].split(" s)")[0]) for line in lines]
    assert sum(limits) < 8 * 60
    assert "--compile on --dtypes bfloat16" in lines[1]
