"""Faults: a rank that dies mid-run, an out_dir that cannot take a checkpoint."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import train
from minigpt import GPT
from minigpt.checkpoint import CheckpointError
from minigpt.train.metrics import read_metrics
from minigpt.train.state import check_out_dir, load_train_state
from tests.train.cli import check_ok, environment, run_train, tiny_flags, train_command
from tests.train.fixtures import make_dataset


def rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of torchrun's worker with RANK=rank (its children carry RANK in their env)."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    for pid in children:
        if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return int(pid)
    raise AssertionError(f"no rank {rank} among {children}")


def test_a_killed_rank_stops_the_run_and_its_last_checkpoint_resumes(tmp_path):
    data_dir, out = make_dataset(tmp_path / "data"), tmp_path / "out"
    flags = tiny_flags(out, data_dir, max_iters=100_000, lr_decay_iters=100_000, eval_interval=5)
    launcher = subprocess.Popen(
        train_command(flags, nproc=2), env=environment(), text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "train_state.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a few more steps, maybe another checkpoint
        os.kill(rank_pid(launcher, 1), signal.SIGKILL)
        output, _ = launcher.communicate(timeout=60)  # the other rank exits by itself
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode != 0, output
    state = load_train_state(out)
    saved_iter = state["iter_num"]
    assert saved_iter >= 5 and saved_iter % 5 == 0
    GPT.from_pretrained(out)  # the checkpoint on disk is whole
    # one process continues the two-rank run (accumulation steps are global, so the same batch)
    check_ok(run_train(["--init_from=resume", f"--out_dir={out}", f"--max_iters={saved_iter + 3}"]))
    logged = [r["iter"] for r in read_metrics(out) if r.get("kind") != "eval"]
    assert logged[-3:] == [saved_iter + 1, saved_iter + 2, saved_iter + 3]


def test_an_out_dir_under_a_file_fails_before_training_with_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    data_dir = make_dataset(tmp_path / "data")
    capsys.readouterr()  # the dataset's own progress output
    assert train.main(tiny_flags(blocker / "out", data_dir)) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: --out_dir={blocker / 'out'} is not writable (Not a directory); "
        "choose another --out_dir\n"
    )
    assert "iter" not in captured.out  # not one step was taken


def test_a_disk_without_room_for_a_checkpoint_fails_before_training(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_out_dir(tmp_path / "out", needed_bytes=free // 2)  # fits
    with pytest.raises(CheckpointError, match=r"MiB free but a checkpoint needs about") as error:
        check_out_dir(tmp_path / "out", needed_bytes=2 * free)
    assert "\n" not in str(error.value)
