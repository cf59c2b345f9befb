"""Where a program runs and in which precision: the `--device` and `--dtype` of every CLI.

Mixed precision runs the matmuls in a 16-bit type under `torch.autocast` while the weights (and,
when training, the optimizer state and the loss) stay in fp32:

- bfloat16 has fp32's exponent range, so values neither overflow nor underflow.
- float16 has 5 exponent bits; training in it needs loss scaling (minigpt.train.precision).

bf16 is only worth it where the hardware multiplies bf16 quickly: every recent GPU, and CPUs with
AVX512-BF16 or AMX (`native_bf16`). On a CPU without them bf16 matmul is emulated and far slower
than fp32. Even where it is native, a small model may lose more to the casts around its small
matmuls than it gains inside them. So on a CPU `dtype="auto"` decides in two stages:

1. no native bf16 (read from the CPU's feature flags, so every run decides alike): float32;
2. otherwise, given a probe (one step of the program's own work, e.g. a training step), time it in
   both dtypes in interleaved rounds and keep bf16 if the median of the per-round ratios
   t_fp32 / t_bf16 exceeds `BF16_MARGIN` (a tie goes to fp32, which keeps more precision).
   Without a probe (sampling, evaluation), bf16 must win a square matmul by 1.5x.

Pairing the two timings of a round cancels load that comes and goes (it slows both alike), and
the median ignores a round that a burst hit in the middle. The margin is small so that the dtype
kept is never the slower one by more than a few percent.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from minigpt.settings import ConfigError, setting

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BF16_MARGIN = 1.02  # bf16 must make the probed step this much faster to be picked
PROBE_ROUNDS = 3  # interleaved (fp32, bf16) rounds timed after one warm-up call of each


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


def native_bf16(device: torch.device) -> bool:
    """Does the hardware multiply bf16: a CUDA GPU that supports it, or a CPU with AVX512-BF16
    or AMX tiles (the instructions oneDNN's bf16 kernels use)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


@dataclass(frozen=True)
class DtypeChoice:
    """A dtype and why: the setting, the hardware, or the two timings it was decided on."""

    dtype: torch.dtype
    reason: str

    def __str__(self) -> str:
        return f"{dtype_name(self.dtype)} ({self.reason})"


def dtype_name(dtype: torch.dtype) -> str:
    """The `--dtype` spelling of a torch dtype: torch.bfloat16 -> 'bfloat16'."""
    return str(dtype).removeprefix("torch.")


def choose_dtype(
    name: str, device: torch.device, probe: Callable[[torch.dtype], object] | None = None
) -> DtypeChoice:
    """'auto' -> bfloat16 where it is fast, float16 on GPUs without bf16, else float32.

    `probe(dtype)` runs one step of the program's work in `dtype`; on a CPU with native bf16 it
    decides between the two (see the module docstring)."""
    if name != "auto":
        return DtypeChoice(DTYPES[name], "set")
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return DtypeChoice(torch.bfloat16 if bf16 else torch.float16, "auto: the GPU's 16-bit type")
    if device.type != "cpu" or not native_bf16(device):
        return DtypeChoice(torch.float32, "auto: no native bf16 here")
    if probe is None:
        fp32 = measure_matmul_peak(device, torch.float32, size=256, seconds=0.1)
        bf16 = measure_matmul_peak(device, torch.bfloat16, size=256, seconds=0.1)
        dtype = torch.bfloat16 if bf16 > 1.5 * fp32 else torch.float32
        return DtypeChoice(dtype, f"auto: matmul bf16 {bf16 / 1e9:.0f} vs fp32 {fp32 / 1e9:.0f} "
                                  "GFLOP/s")  # fmt: skip
    return fastest_dtype(probe)


def resolve_dtype(
    name: str, device: torch.device, probe: Callable[[torch.dtype], object] | None = None
) -> torch.dtype:
    """The dtype of `choose_dtype`, for callers that need no reason."""
    return choose_dtype(name, device, probe).dtype


def fastest_dtype(
    probe: Callable[[torch.dtype], object],
    rounds: int = PROBE_ROUNDS,
    clock: Callable[[], float] = time.perf_counter,
) -> DtypeChoice:
    """bfloat16 if the median over `rounds` interleaved rounds of t_fp32 / t_bf16 exceeds
    BF16_MARGIN, else float32; the reason gives the median step time of each."""
    seconds: dict[torch.dtype, list[float]] = {torch.float32: [], torch.bfloat16: []}
    for dtype in seconds:
        probe(dtype)  # warm up: kernel selection, allocator
    for _ in range(rounds):
        for dtype, times in seconds.items():
            start = clock()
            probe(dtype)
            times.append(clock() - start)
    ratio = statistics.median(a / b for a, b in zip(*seconds.values(), strict=True))
    dtype = torch.bfloat16 if ratio > BF16_MARGIN else torch.float32
    fp32, bf16 = (1e3 * statistics.median(t) for t in seconds.values())
    reason = (f"auto: a step took {fp32:.1f} ms in float32, {bf16:.1f} ms in bfloat16; median of "
              f"{rounds} interleaved rounds")  # fmt: skip
    return DtypeChoice(dtype, reason)


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
