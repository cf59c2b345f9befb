"""torchrun as the README types it, FSDP against one process, and errors reported once.

Each test starts real processes (2 gloo ranks on CPU) through `python -m torch.distributed.run`,
which is what the `torchrun` command runs."""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

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
# Muon on 3 blocks of odd width: 3 matrices of each shape dealt over 2 ranks, rows split 50/49
FSDP_OPTIMIZERS = {"adamw": {}, "muon": dict(optimizer="muon", n_layer=3, n_head=3, n_embd=33)}


def fsdp_flags(out: Path, data_dir: Path, optimizer: str, **overrides) -> list[str]:
    """2 ranks x 4 rows, one micro-batch each (8 rows per step)."""
    run = {**FSDP_RUN, **FSDP_OPTIMIZERS[optimizer], **overrides}
    return [*tiny_flags(out, data_dir, **run, gradient_accumulation_steps=2), "--strategy=fsdp"]


@pytest.fixture(scope="module", params=sorted(FSDP_OPTIMIZERS))
def optimizer(request):
    return request.param


@pytest.fixture(scope="module")
def fsdp_straight(tmp_path_factory, data_dir, optimizer):
    """12 steps sharded over 2 ranks."""
    out = tmp_path_factory.mktemp(f"fsdp-{optimizer}") / "straight"
    check_ok(run_train(fsdp_flags(out, data_dir, optimizer), nproc=2))
    return out


@pytest.fixture(scope="module")
def fsdp_halfway(tmp_path_factory, data_dir, optimizer):
    """The first 6 of fsdp_straight's steps, checkpointed (tests resume copies of it)."""
    out = tmp_path_factory.mktemp(f"fsdp-{optimizer}") / "halfway"
    check_ok(run_train(fsdp_flags(out, data_dir, optimizer, max_iters=6), nproc=2))
    return out


def assert_close_runs(got: Path, want: Path) -> None:
    """The same logged steps, losses within 1e-5, and final weights within 1e-5."""
    logged, expected = logged_losses(got), logged_losses(want)
    assert [r[:2] for r in logged] == [r[:2] for r in expected]
    for a, b in zip(logged, expected, strict=True):
        assert a[2] == pytest.approx(b[2], abs=1e-5)  # train loss
        assert (a[3] or 0) == pytest.approx(b[3] or 0, abs=1e-5)  # val loss
    reference = weights(want)
    for name, tensor in weights(got).items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-5, atol=1e-5, msg=name)


def test_fsdp_matches_one_process_with_the_global_batch(
    tmp_path, data_dir, optimizer, fsdp_straight
):
    single = tmp_path / "single"
    run = {**FSDP_RUN, **FSDP_OPTIMIZERS[optimizer]}
    check_ok(run_train(tiny_flags(single, data_dir, **run, batch_size=8)))
    assert_close_runs(fsdp_straight, single)  # its weights gathered into one full file
    model = GPT.from_pretrained(fsdp_straight)  # a plain single-process model
    assert model.config.n_layer == run.get("n_layer", 1)
    assert not any(p.is_meta for p in model.parameters())


def test_fsdp_resume_is_exact(tmp_path, fsdp_halfway, fsdp_straight):
    out = shutil.copytree(fsdp_halfway, tmp_path / "split")
    check_ok(run_train(["--init_from=resume", f"--out_dir={out}", "--max_iters=12"], nproc=2))
    assert logged_losses(out) == logged_losses(fsdp_straight)
    assert_same_weights(out, fsdp_straight)


def test_fsdp_checkpoint_resumes_in_one_process(tmp_path, fsdp_halfway, fsdp_straight):
    """The optimizer state gathered under FSDP (Muon's momentum, AdamW's moments) carries on in
    one process with the same global batch as if the run had never stopped."""
    out = shutil.copytree(fsdp_halfway, tmp_path / "single")
    resume = ["--init_from=resume", f"--out_dir={out}", "--max_iters=12", "--batch_size=8",
              "--gradient_accumulation_steps=1"]  # fmt: skip
    check_ok(run_train(resume))
    assert_close_runs(out, fsdp_straight)
