"""How idle OpenMP threads wait, decided per run: spin when the run has the cores to itself,
sleep when it shares them.

Every op of a CPU step is a parallel region; between two of them libgomp's idle threads either
spin (OMP_WAIT_POLICY=ACTIVE: woken within a microsecond) or sleep on a futex (PASSIVE: each
wake costs a system call, but a sleeping thread leaves its core to whoever else needs it). A
small model runs thousands of short regions a second, so on an idle machine spinning is about
1.5x faster; on a shared one (other jobs, or more ranks x threads than cores) a spinning thread
burns the time slice that a working thread, ours or another program's, was waiting for, and a
step gets many times slower (bench/nanogpt.py measures both cases).

So the demand is counted before torch loads (libgomp reads the policy once, when it loads):

    demand = local ranks x threads per rank + cores other programs keep busy now
    ACTIVE if demand <= cores, else PASSIVE

"Busy now" is measured from /proc/stat over a 50 ms window, minus this run's own sibling ranks
(which are starting up at the same moment). A policy set in the environment is left alone.
minigpt/__init__.py calls `choose_wait_policy` first, before anything imports torch.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.05
SLACK = 0.5  # cores of other load tolerated before sharing counts (a shell, a monitor)


@dataclass(frozen=True)
class WaitPolicy:
    policy: str  # "ACTIVE" or "PASSIVE"
    reason: str

    def __str__(self) -> str:
        return f"OMP_WAIT_POLICY={self.policy} ({self.reason})"


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, or None where /proc/stat is missing."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """How many cores are busy right now (this process sleeps meanwhile), from /proc/stat; the
    1-minute load average where that is missing."""
    before = _cpu_times()
    if before is None:
        return os.getloadavg()[0]
    time.sleep(seconds)
    after = _cpu_times()
    busy, total = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * busy / max(total, 1)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def decide(cores: int, threads: int, ranks: int, others_busy: float) -> WaitPolicy:
    """The policy for `ranks` processes of `threads` threads on `cores` cores, beside
    `others_busy` cores of other programs."""
    demand = ranks * threads
    shared = demand + max(others_busy - SLACK, 0.0) > cores
    policy = "PASSIVE" if shared else "ACTIVE"
    load = f"{others_busy:.1f} other cores busy"
    return WaitPolicy(policy, f"{ranks} x {threads} threads on {cores} cores, {load}")


def _choose() -> WaitPolicy:
    """Set OMP_WAIT_POLICY for this process unless it is set already or torch (and with it
    libgomp) has loaded, and say what holds."""
    if "OMP_WAIT_POLICY" in os.environ:
        return WaitPolicy(os.environ["OMP_WAIT_POLICY"].upper(), "set in the environment")
    if "torch" in sys.modules:
        return WaitPolicy("default", "torch loaded before minigpt chose one")
    cores = _cores()
    threads = int(os.environ.get("OMP_NUM_THREADS") or cores)
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    siblings = ranks - 1  # the other ranks of this launch, busy importing as we measure
    decision = decide(cores, threads, ranks, max(busy_cores() - siblings, 0.0))
    os.environ["OMP_WAIT_POLICY"] = decision.policy
    return decision


WAIT_POLICY: WaitPolicy | None = None  # what this process runs with, for the run's header


def choose_wait_policy() -> WaitPolicy:
    """Decide once per process (minigpt/__init__.py calls it first) and remember it."""
    global WAIT_POLICY
    if WAIT_POLICY is None:
        WAIT_POLICY = _choose()
    return WAIT_POLICY
