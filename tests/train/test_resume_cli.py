"""Resume across processes: `train.py --init_from=resume` in a new process repeats a straight
run bit for bit (CPU, fp32, dropout on, the default optimizer and threads, a model whose ops the
threads split), after a normal end and after Ctrl-C."""

import json
import signal
import subprocess
import time

from tests.tiny_models import THREADED_SHAPE
from tests.train.cli import (
    assert_same_weights,
    check_ok,
    environment,
    logged_losses,
    run_train,
    tiny_flags,
    train_command,
)


def resume(out_dir, max_iters: int) -> None:
    check_ok(run_train(["--init_from=resume", f"--out_dir={out_dir}", f"--max_iters={max_iters}"]))


def flags(out_dir, data_dir, **overrides) -> list[str]:
    return tiny_flags(out_dir, data_dir, optimizer="muon", **{**THREADED_SHAPE, **overrides})


def test_resumed_process_repeats_a_straight_run_bit_for_bit(tmp_path, data_dir):
    straight, split = tmp_path / "straight", tmp_path / "split"
    check_ok(run_train(flags(straight, data_dir, max_iters=40, lr_decay_iters=40)))
    check_ok(run_train(flags(split, data_dir, max_iters=20, lr_decay_iters=40)))
    resume(split, 40)
    expected = logged_losses(straight)
    assert [r[0] for r in expected if r[1] == "eval"] == [10, 20, 30, 40]
    assert logged_losses(split) == expected  # every loss, val loss and lr, exactly
    assert_same_weights(straight, split)


def last_logged_iter(out_dir) -> int:
    try:
        lines = (out_dir / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["iter"] if lines else 0
    except (FileNotFoundError, json.JSONDecodeError):  # not there yet, or a line half-written
        return 0


def test_resume_after_ctrl_c_repeats_a_straight_run_bit_for_bit(tmp_path, data_dir):
    # steps of tens of milliseconds, so Ctrl-C lands mid-run
    shape = dict(max_iters=100, lr_decay_iters=100, eval_interval=50)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    check_ok(run_train(flags(straight, data_dir, **shape)))
    process = subprocess.Popen(
        train_command(flags(stopped, data_dir, **shape)), env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while last_logged_iter(stopped) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    assert "stopped by SIGINT at iter" in out, out  # it stopped mid-run, not at the end
    stopped_at = int(out.split("stopped by SIGINT at iter ")[1].split(";")[0])
    assert 10 <= stopped_at < 100
    resume(stopped, 100)
    assert logged_losses(stopped) == logged_losses(straight)
    assert_same_weights(straight, stopped)
