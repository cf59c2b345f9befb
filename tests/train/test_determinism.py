"""The same train.py command repeats bit for bit: five runs with the default threads, two of them
beside a busy loop (so they sleep their idle threads where the others spin), give the same
logged losses and the same final weights. Default optimizer (Muon), dropout on, a model whose
ops the threads split; fp32 everywhere, and bf16 too where the CPU has it natively."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from minigpt.device import native_bf16
from tests.tiny_models import DEFAULT_THREADS, THREADED_SHAPE
from tests.train.cli import assert_same_weights, check_ok, logged_losses, run_train, tiny_flags

BUSY_LOOP = "while True: pass"
RUNS = (False, False, True, False, True)  # beside a busy loop?


@contextlib.contextmanager
def busy_loop() -> Iterator[None]:
    """One process spinning on a core for the length of the block."""
    process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        yield
    finally:
        process.kill()
        process.wait()


DTYPES = ["float32"]
if native_bf16(torch.device("cpu")):
    DTYPES.append("bfloat16")


@pytest.mark.parametrize("dtype", DTYPES)
def test_five_runs_of_one_command_are_bit_identical_idle_and_loaded(tmp_path, data_dir, dtype):
    outputs = []
    for k, loaded in enumerate(RUNS):
        out_dir = tmp_path / f"run{k}"
        flags = tiny_flags(out_dir, data_dir, optimizer="muon", dtype=dtype, max_iters=30,
                           lr_decay_iters=30, eval_interval=15, **THREADED_SHAPE)  # fmt: skip
        with busy_loop() if loaded else contextlib.nullcontext():
            outputs.append(check_ok(run_train(flags)).stdout)
    assert all(f"{DEFAULT_THREADS} threads per process" in out for out in outputs)
    assert all(f"dtype {dtype} (set)" in out for out in outputs)
    first = tmp_path / "run0"
    for k in range(1, len(RUNS)):
        assert logged_losses(tmp_path / f"run{k}") == logged_losses(first), f"run {k} differs"
        assert_same_weights(first, tmp_path / f"run{k}")
