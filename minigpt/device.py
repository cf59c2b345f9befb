"""Where a program runs and in which precision: the `--device` and `--dtype` of every CLI.

Mixed precision runs the matmuls in a 16-bit type under `torch.autocast` while the weights (and,
when training, the optimizer state and the loss) stay in fp32:

- bfloat16 has fp32's exponent range, so values neither overflow nor underflow.
- float16 has 5 exponent bits; training in it needs loss scaling (minigpt.train.precision).

bf16 is only worth it where the hardware multiplies bf16 quickly: every recent GPU, and CPUs with
AVX512-BF16 or AMX. On a CPU without them bf16 matmul is emulated and far slower than fp32. Even
where it is native, a small model may lose more to the casts around its small matmuls than it
gains inside them. So on a CPU `dtype="auto"` decides in two measured stages:

1. a square bf16 matmul no faster than fp32 means bf16 is emulated: float32, nothing more to try;
2. otherwise, given a probe (one step of the program's own work, e.g. a training step), time it in
   both dtypes and keep bf16 only if it beats fp32 by `BF16_MARGIN` (it costs precision, so a tie
   goes to fp32). Without a probe (sampling, evaluation), bf16 must win the matmul by 1.5x.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from minigpt.settings import ConfigError, setting

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BF16_MARGIN = 1.1  # bf16 must make the probed step this much faster to be picked


@dataclass
class DeviceConfig:
    """The settings group every CLI shares (`--device`, `--dtype`); each CLI picks its defaults."""

    device: str = setting(
        "auto", "'auto' (this process's GPU if there is one, else the CPU), 'cpu', 'cuda:1', 'mps'"
    )
    dtype: str = setting(
        "auto",
        "autocast dtype; 'auto' = bfloat16 where it is measured faster, float16 on GPUs without"
        " bf16, else float32",
        ("auto", *DTYPES),
    )


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this process's GPU if there is one, else the CPU; others as torch reads them."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device={name} but no CUDA GPU is available; use --device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def resolve_dtype(
    name: str, device: torch.device, probe: Callable[[torch.dtype], object] | None = None
) -> torch.dtype:
    """'auto' -> bfloat16 where it is fast, float16 on GPUs without bf16, else float32.

    `probe(dtype)` runs one step of the program's work in `dtype`; on a CPU with fast bf16
    matmuls it decides between the two (see the module docstring)."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cpu":
        return torch.float32
    fp32 = measure_matmul_peak(device, torch.float32, size=256, seconds=0.1)
    bf16 = measure_matmul_peak(device, torch.bfloat16, size=256, seconds=0.1)
    if bf16 <= fp32:  # emulated: no model gets faster
        return torch.float32
    if probe is None:
        return torch.bfloat16 if bf16 > 1.5 * fp32 else torch.float32
    return fastest_dtype(probe)


def fastest_dtype(
    probe: Callable[[torch.dtype], object],
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> torch.dtype:
    """bfloat16 if its best of `repeats` timed probe calls (after one warm-up call each) beats
    float32's by BF16_MARGIN, else float32. The dtypes alternate so load hits both alike."""
    best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
    for dtype in best:
        probe(dtype)  # warm up: kernel selection, allocator
    for _ in range(repeats):
        for dtype in best:
            start = clock()
            probe(dtype)
            best[dtype] = min(best[dtype], clock() - start)
    faster = best[torch.bfloat16] * BF16_MARGIN < best[torch.float32]
    return torch.bfloat16 if faster else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """The forward-pass context: autocast to `dtype`, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it measures the work (no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def measure_matmul_peak(
    device: str | torch.device, dtype: torch.dtype, size: int = 1024, seconds: float = 0.5
) -> float:
    """Best FLOP/s of repeated (size x size) @ (size x size) matmuls over about `seconds`.

    A square matmul is the best case a device has, so this is the ceiling that a model's
    matmuls can reach; it is measured once per (device, dtype) and cached.
    """
    device = torch.device(device)
    # operands from a private generator: a draw from the global one would shift the dropout
    # masks of the run being measured, so a resumed run would not repeat the straight one
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    a @ b  # warm up: kernel selection, thread pool start
    synchronize(device)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = max(best, 2.0 * size**3 / (time.perf_counter() - start))
    return best
