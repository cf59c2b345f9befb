"""Run train.py as users do, in subprocesses: alone, or under torchrun with N ranks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from minigpt.settings import to_flags
from minigpt.train.metrics import read_metrics
from tests.train.fixtures import tiny_train_config

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "train.py")


def tiny_flags(out_dir: Path, data_dir: Path, **overrides) -> list[str]:
    """train.py flags for tiny_train_config with dropout on and a log line every step: every
    setting spelled out, as a user's command line would fix them all."""
    cfg = tiny_train_config(out_dir, data_dir, **{"dropout": 0.1, "log_interval": 1, **overrides})
    return to_flags(cfg)


def environment() -> dict[str, str]:
    """This checkout first on the path; threads as a user's process gets them (torchrun gives
    each rank one unless OMP_NUM_THREADS says otherwise)."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_command(args: Sequence[str], nproc: int = 1) -> list[str]:
    """`python train.py ARGS`, or `torchrun --nproc_per_node=N train.py ARGS` for N > 1."""
    if nproc == 1:
        return [sys.executable, TRAIN, *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                f"--master_port={free_port()}"]  # fmt: skip
    return [*launcher, TRAIN, *args]


def run_train(
    args: Sequence[str], nproc: int = 1, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(args, nproc), capture_output=True, text=True, env=environment(),
        timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def check_ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def logged_losses(out_dir: Path) -> list[tuple]:
    """(iter, kind, loss, val_loss, lr) of every record: what must repeat exactly."""
    return [(r["iter"], r.get("kind", "train"), r["loss"], r.get("val_loss"), r.get("lr"))
            for r in read_metrics(out_dir)]  # fmt: skip


def weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(Path(out_dir) / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), f"{name} differs"
