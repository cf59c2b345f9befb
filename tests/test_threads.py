"""OpenMP's wait policy, decided per run: spin only when the run has the cores to itself."""

import os
import subprocess
import sys

import pytest

from minigpt.threads import decide

PROBE = "import minigpt.threads as t; print(t.WAIT_POLICY)"


@pytest.mark.parametrize(
    ("cores", "threads", "ranks", "others", "policy"),
    [
        (2, 2, 1, 0.0, "ACTIVE"),  # alone on the machine
        (2, 2, 1, 0.3, "ACTIVE"),  # a shell or a monitor is not sharing
        (2, 2, 1, 1.0, "PASSIVE"),  # one core busy elsewhere
        (2, 1, 2, 0.0, "ACTIVE"),  # torchrun: 2 ranks x 1 thread
        (2, 2, 2, 0.0, "PASSIVE"),  # 2 ranks x 2 threads on 2 cores
        (16, 4, 2, 4.0, "ACTIVE"),
    ],
)
def test_spin_only_when_ranks_times_threads_plus_other_load_fit_the_cores(
    cores, threads, ranks, others, policy
):
    decision = decide(cores, threads, ranks, others)
    assert decision.policy == policy
    assert f"{ranks} x {threads} threads on {cores} cores" in decision.reason


def _probe(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


def test_a_loaded_machine_gets_sleeping_threads():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    cores = len(os.sched_getaffinity(0))
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        assert _probe(env).startswith("OMP_WAIT_POLICY=PASSIVE")
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def test_a_policy_in_the_environment_is_kept():
    assert _probe({**os.environ, "OMP_WAIT_POLICY": "active"}) == (
        "OMP_WAIT_POLICY=ACTIVE (set in the environment)"
    )
