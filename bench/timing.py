"""The timing helper every bench shares: device-synchronised wall time and interleaved rounds
(the host line to print beside the numbers is bench/common.py's `host`).

On a shared machine other jobs come and go, so absolute times drift; benches compare candidates
by ratios measured in one run, each candidate timed once per round with the order reversed every
other round, so a burst of load hits all candidates alike. Each keeps its best round (the run
least disturbed) unless a bench says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def sync(device: torch.device | str | None) -> None:
    """Wait for queued device work (CUDA kernels run asynchronously); no-op on a CPU."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def wall(fn: Callable[[], object], device: torch.device | str | None = None) -> float:
    """Seconds one call of fn takes, including the device work it queued."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    device: torch.device | str | None = None,
) -> dict[str, list[float]]:
    """Seconds of every call: each candidate once per round, in reverse order every other round
    (so none always runs first, right after a warm cache or right after another's load)."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates.items())
    for r in range(rounds):
        for name, fn in order if r % 2 == 0 else order[::-1]:
            times[name].append(wall(fn, device))
    return times


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
