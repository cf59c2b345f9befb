"""Device and numeric precision for training.

Mixed precision runs the matmuls in a 16-bit type under `torch.autocast` while the weights, the
optimizer state and the loss stay in fp32:

- bfloat16 has fp32's exponent range, so gradients neither overflow nor underflow: no scaling.
- float16 has 5 exponent bits, so small gradients flush to zero. GradScaler multiplies the loss by
  S before backward (gradients scale by S too), divides them by S before the step, and skips the
  step and lowers S whenever an inf/nan appears.
- float32 on CUDA uses TF32 tensor cores for matmuls (10-bit mantissa products, fp32 accumulate).

bf16 is only worth it where the hardware multiplies bf16 quickly: every recent GPU, and CPUs with
AVX512-BF16 or AMX. On a CPU without them bf16 matmul is emulated and far slower than fp32, so
`dtype="auto"` measures both and picks the faster.
"""

from __future__ import annotations

import contextlib

import torch

from minigpt.train.perf import measure_matmul_peak

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 where it is fast, float16 on GPUs without bf16, else float32."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        fp32 = measure_matmul_peak(device, torch.float32, size=256, seconds=0.1)
        bf16 = measure_matmul_peak(device, torch.bfloat16, size=256, seconds=0.1)
        return torch.bfloat16 if bf16 > 1.5 * fp32 else torch.float32
    return torch.float32


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
