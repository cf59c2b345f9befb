"""torchrun as the README types it, FSDP against one process, and errors reported once.

Each test starts real processes (2 gloo ranks on CPU) through `python -m torch.distributed.run`,
which is what the `torchrun` command runs."""

import shlex
import subprocess
import sys

import pytest
import torch

from minigpt import GPT
from tests.train.cli import (
    ROOT,
    TRAIN,
    assert_same_weights,
    check_ok,
    environment,
    free_port,
    logged_losses,
    run_train,
    tiny_flags,
    weights,
)

NOTICE = "note: --gradient_accumulation_steps=1 rounded up to 2 to split evenly over 2 processes"


def readme_torchrun_commands() -> list[list[str]]:
    """Every `torchrun ...` line of the README's code blocks, comments stripped, as argv."""
    readme = (ROOT / "README.md").read_text()
    lines = [line.split("#")[0] for line in readme.splitlines() if line.startswith("torchrun ")]
    return [shlex.split(line) for line in lines]


def test_readme_torchrun_commands_run_as_typed(tmp_path, data_dir):
    commands = readme_torchrun_commands()
    assert len(commands) >= 2 and any("--strategy=fsdp" in c for c in commands)
    for k, command in enumerate(commands):
        nproc = int(next(a for a in command if a.startswith("--nproc_per_node=")).split("=")[1])
        args = command[command.index("train.py") + 1 :]
        # the README's settings, then a tiny model and dataset so it takes seconds
        tiny = tiny_flags(tmp_path / f"out{k}", data_dir, max_iters=4, eval_interval=4,
                          sample_tokens=10)  # fmt: skip
        result = check_ok(run_train([*args, *tiny], nproc=nproc))
        assert result.stdout.count(NOTICE) == 1, result.stdout  # rank 0 alone says it
        assert result.stdout.count("---- sample (10 tokens) ----") == 1
        assert "error" not in result.stderr.lower()


def test_a_bad_setting_is_reported_once_and_torchrun_fails(tmp_path, data_dir):
    result = run_train([*tiny_flags(tmp_path, data_dir), "--n_embd=33"], nproc=2)
    assert result.returncode != 0
    message = "error: --n_embd=33 must be divisible by --n_head=2"
    assert (result.stdout + result.stderr).count(message) == 1


def launch_ranks(args: list[str], world_size: int = 2) -> list[subprocess.CompletedProcess]:
    """Start the ranks by hand with the environment torchrun gives them, so each rank's exit
    status can be seen (torchrun stops the others as soon as one fails)."""
    port = str(free_port())
    processes = []
    for rank in range(world_size):
        env = {**environment(), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port}  # fmt: skip
        command = [sys.executable, TRAIN, *args]
        processes.append(subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))  # fmt: skip
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def test_when_rank_0_cannot_start_every_rank_exits_non_zero_and_only_rank_0_says_why(
    tmp_path, data_dir
):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    rank0, rank1 = launch_ranks(tiny_flags(blocker / "out", data_dir))  # out_dir under a file
    assert rank0.returncode != 0 and rank1.returncode != 0
    assert rank0.stderr.strip() == (
        f"error: --out_dir={blocker / 'out'} is not writable (Not a directory); "
        "choose another --out_dir"
    )
    assert rank1.stderr.strip() == ""


# ---- FSDP ---------------------------------------------------------------------------------------

FSDP_RUN = dict(dropout=0.0, max_iters=12, lr_decay_iters=12, eval_interval=6, log_interval=2)


@pytest.fixture(scope="module")
def fsdp_straight(tmp_path_factory, data_dir):
    """12 steps sharded over 2 ranks: 4 rows each, one micro-batch each (8 rows per step)."""
    out = tmp_path_factory.mktemp("fsdp") / "straight"
    flags = tiny_flags(out, data_dir, **FSDP_RUN, gradient_accumulation_steps=2)
    check_ok(run_train([*flags, "--strategy=fsdp"], nproc=2))
    return out


def test_fsdp_matches_one_process_with_the_global_batch(tmp_path, data_dir, fsdp_straight):
    single = tmp_path / "single"
    check_ok(run_train(tiny_flags(single, data_dir, **FSDP_RUN, batch_size=8)))
    sharded, reference = logged_losses(fsdp_straight), logged_losses(single)
    assert [r[:2] for r in sharded] == [r[:2] for r in reference]
    for got, want in zip(sharded, reference, strict=True):
        assert got[2] == pytest.approx(want[2], abs=1e-5)  # train loss
        assert (got[3] or 0) == pytest.approx(want[3] or 0, abs=1e-5)  # val loss
    expected = weights(single)
    for name, tensor in weights(fsdp_straight).items():  # gathered into one full file
        torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-5, msg=name)
    model = GPT.from_pretrained(fsdp_straight)  # a plain single-process model
    assert model.config.n_layer == 1 and not any(p.is_meta for p in model.parameters())


def test_fsdp_resume_is_exact(tmp_path, data_dir, fsdp_straight):
    out = tmp_path / "split"
    flags = tiny_flags(out, data_dir, **{**FSDP_RUN, "max_iters": 6}, gradient_accumulation_steps=2)
    check_ok(run_train([*flags, "--strategy=fsdp"], nproc=2))
    check_ok(run_train(["--init_from=resume", f"--out_dir={out}", "--max_iters=12"], nproc=2))
    assert logged_losses(out) == logged_losses(fsdp_straight)
    assert_same_weights(out, fsdp_straight)
