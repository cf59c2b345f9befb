"""Numeric precision for training, on top of minigpt.device's dtype choice.

- float16 has 5 exponent bits, so small gradients flush to zero. GradScaler multiplies the loss by
  S before backward (gradients scale by S too), divides them by S before the step, and skips the
  step and lowers S whenever an inf/nan appears. bfloat16 has fp32's range and needs no scaling.
- float32 on CUDA uses TF32 tensor cores for matmuls (10-bit mantissa products, fp32 accumulate).
- `dtype="auto"` on a CPU with native bf16 times the model's own training step in both dtypes,
  optimizer included (`training_probe`, handed to minigpt.device.choose_dtype): with Muon the
  Newton-Schulz iteration follows the training dtype, and can cost as much as the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from minigpt.device import DtypeChoice, autocast, choose_dtype
from minigpt.train.config import TrainConfig


def training_probe(
    model: nn.Module,
    make_optimizer: Callable[[nn.Module, torch.dtype], torch.optim.Optimizer],
    batch_size: int,
    block_size: int,
    device: torch.device,
) -> Callable[[torch.dtype], None]:
    """One training step on random tokens of the run's shape (B, T) under autocast to the given
    dtype: forward, backward, and a step of the optimizer `make_optimizer(model, dtype)` builds.
    It leaves no trace: it steps a copy of `model` (made at the first call) and restores the RNG."""
    vocab = model.config.vocab_size
    twin: list[nn.Module] = []  # the copy, made only if the probe runs
    optimizers: dict[torch.dtype, torch.optim.Optimizer] = {}

    def probe(dtype: torch.dtype) -> None:
        if not twin:
            twin.append(copy.deepcopy(model))
        if dtype not in optimizers:
            optimizers[dtype] = make_optimizer(twin[0], dtype)
        with torch.random.fork_rng(devices=[]):
            idx = torch.randint(vocab, (batch_size, block_size), device=device)
            with autocast(device, dtype):
                loss = twin[0](idx, idx).loss
            loss.backward()
        optimizers[dtype].step()
        optimizers[dtype].zero_grad(set_to_none=True)

    return probe


def training_dtype(
    cfg: TrainConfig,
    model: nn.Module,
    make_optimizer: Callable[[nn.Module, torch.dtype], torch.optim.Optimizer],
    device: torch.device,
    decide: bool = True,
) -> DtypeChoice:
    """The run's `--dtype`; 'auto' on a CPU with native bf16 times `training_probe` in both
    dtypes when `decide` (rank 0 decides for all ranks: the others pass False)."""
    probe = training_probe(model, make_optimizer, cfg.batch_size, cfg.block_size, device)
    return choose_dtype(cfg.compute.dtype, device, probe if decide else None)


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A GradScaler that is active only for float16 (a no-op pass-through otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def enable_tf32() -> None:
    """Let fp32 matmuls and convolutions use TF32 tensor cores (CUDA only; harmless elsewhere)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
