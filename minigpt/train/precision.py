"""Numeric precision for training, on top of minigpt.device's dtype choice.

- float16 has 5 exponent bits, so small gradients flush to zero. GradScaler multiplies the loss by
  S before backward (gradients scale by S too), divides them by S before the step, and skips the
  step and lowers S whenever an inf/nan appears. bfloat16 has fp32's range and needs no scaling.
- float32 on CUDA uses TF32 tensor cores for matmuls (10-bit mantissa products, fp32 accumulate).
- `dtype="auto"` on a CPU with native bf16 times the model's own training step in both dtypes
  (`training_probe`, handed to minigpt.device.resolve_dtype).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from minigpt.device import autocast


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


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A GradScaler that is active only for float16 (a no-op pass-through otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def enable_tf32() -> None:
    """Let fp32 matmuls and convolutions use TF32 tensor cores (CUDA only; harmless elsewhere)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
