"""Device and numeric precision for training.

Mixed precision runs the matmuls in a 16-bit type under `torch.autocast` while the weights, the
optimizer state and the loss stay in fp32:

- bfloat16 has fp32's exponent range, so gradients neither overflow nor underflow: no scaling.
- float16 has 5 exponent bits, so small gradients flush to zero. GradScaler multiplies the loss by
  S before backward (gradients scale by S too), divides them by S before the step, and skips the
  step and lowers S whenever an inf/nan appears.
- float32 on CUDA uses TF32 tensor cores for matmuls (10-bit mantissa products, fp32 accumulate).

bf16 is only worth it where the hardware multiplies bf16 quickly: every recent GPU, and CPUs with
AVX512-BF16 or AMX. On a CPU without them bf16 matmul is emulated and far slower than fp32. Even
where it is native, a small model may lose more to the casts around its small matmuls than it
gains inside them (a 0.8M-parameter model was slower in bf16 on an AVX512-BF16 CPU). So on a CPU
`dtype="auto"` decides in two measured stages:

1. a square bf16 matmul no faster than fp32 means bf16 is emulated: float32, nothing more to try;
2. otherwise, given the model, time its own forward + backward at the run's batch shape in both
   dtypes and keep bf16 only if it beats fp32 by `BF16_MARGIN` (it costs precision, so a tie
   goes to fp32). Without a model (sampling), bf16 must win the matmul by 1.5x.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch
from torch import nn

from minigpt.train.perf import measure_matmul_peak

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BF16_MARGIN = 1.1  # bf16 must make a training step this much faster to be picked


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this process's GPU if there is one, else the CPU; others as torch reads them."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device={name} but no CUDA GPU is available; use --device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def resolve_dtype(
    name: str, device: torch.device, probe: Callable[[torch.dtype], object] | None = None
) -> torch.dtype:
    """'auto' -> bfloat16 where it is fast, float16 on GPUs without bf16, else float32.

    `probe(dtype)` runs one training step of the model in `dtype` (see `training_probe`); on a
    CPU with fast bf16 matmuls it decides between the two (see the module docstring)."""
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


def training_probe(
    model: nn.Module, batch_size: int, block_size: int, device: torch.device
) -> Callable[[torch.dtype], None]:
    """One forward + backward of `model` on random tokens of the run's shape (B, T), under
    autocast to the given dtype. It leaves no trace: the RNG is restored, gradients cleared."""
    vocab = model.config.vocab_size

    def probe(dtype: torch.dtype) -> None:
        with torch.random.fork_rng(devices=[]):
            idx = torch.randint(vocab, (batch_size, block_size), device=device)
            with autocast(device, dtype):
                loss = model(idx, idx).loss
            loss.backward()
        model.zero_grad(set_to_none=True)

    return probe


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """The forward-pass context: autocast to `dtype`, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A GradScaler that is active only for float16 (a no-op pass-through otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def enable_tf32() -> None:
    """Let fp32 matmuls and convolutions use TF32 tensor cores (CUDA only; harmless elsewhere)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
