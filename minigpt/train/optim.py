"""AdamW with GPT-3's settings, and the warmup + cosine learning-rate schedule.

Weight decay shrinks weights towards zero at every step, w <- w - lr * wd * w, on top of the Adam
update. It is applied only to parameters of two or more dimensions (Linear weights, embeddings):
those are the ones that multiply activations, where decay regularises. Biases and LayerNorm gains
(1-D) set offsets and scales, and decaying them only fights the model.

Schedule (step s = optimizer steps done, peak lr_max = learning_rate):

    lr(s) = lr_max * (s + 1) / (warmup + 1)                      s <  warmup
    lr(s) = lr_min + 0.5 * (1 + cos(pi * r)) * (lr_max - lr_min)  warmup <= s < decay
    lr(s) = lr_min                                                s >= decay

    with r = (s - warmup) / (decay - warmup) going from 0 to 1.

It depends on `lr_decay_iters`, not on `max_iters`, so a run stopped early and resumed, or one
extended with a larger `max_iters`, follows the same curve.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minigpt.device import native_bf16
from minigpt.train.muon import MuonAdamW


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: parameters with dim >= 2 decay, the rest (biases, norms) do not.
    `model.parameters()` yields a tied matrix once, so it is never updated twice."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def adamw_kernel(device_type: str) -> dict[str, bool]:
    """AdamW's implementation: on CPUs and CUDA the fused kernel updates every tensor in one
    vectorized, parallel pass (on a CPU 3-4x faster than the foreach one for the default model,
    which torch would otherwise pick), elsewhere the foreach one updates them as lists."""
    fused = device_type in ("cpu", "cuda")
    return {"fused": fused, "foreach": not fused}


def make_adamw(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    device_type: str = "cpu",
) -> torch.optim.AdamW:
    """AdamW over `param_groups`, with the fastest kernel for the device (`adamw_kernel`)."""
    return torch.optim.AdamW(
        param_groups(model, weight_decay), lr=learning_rate, betas=betas,
        **adamw_kernel(device_type),
    )  # fmt: skip


def newton_schulz_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype of Muon's Newton-Schulz iteration: bf16 on GPUs (tensor cores) and on CPUs
    that train in bf16 with native bf16 matmuls; fp32 elsewhere, where bf16 would be emulated.
    The iteration only needs a direction (its own error is larger than bf16's rounding)."""
    if device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if dtype == torch.bfloat16 and native_bf16(device) else torch.float32


def make_optimizer(
    name: str,
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    betas: tuple[float, float],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.optim.Optimizer | MuonAdamW:
    """'adamw' (`make_adamw`) or 'muon' (minigpt.train.muon.MuonAdamW: Muon for the hidden
    matrices, AdamW for embeddings, head and gains) for a run that trains in `dtype`."""
    if name == "muon":
        ns_dtype = newton_schulz_dtype(device, dtype)
        kernel = adamw_kernel(device.type)
        return MuonAdamW(model, learning_rate, weight_decay, betas, ns_dtype, kernel)
    return make_adamw(model, learning_rate, weight_decay, betas, device.type)


def lr_at(
    step: int,
    learning_rate: float,
    min_lr: float,
    warmup_iters: int,
    lr_decay_iters: int,
    decay_lr: bool = True,
) -> float:
    """The learning rate for optimizer step `step` (see the module docstring)."""
    if not decay_lr:
        return learning_rate
    if step < warmup_iters:
        return learning_rate * (step + 1) / (warmup_iters + 1)
    if step >= lr_decay_iters:
        return min_lr
    ratio = (step - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    lr: float,
    grad_clip: float,
) -> None:
    """End one optimizer step once its gradients are accumulated: set the learning rate, clip
    the global gradient norm to `grad_clip` (0 = no clipping), step, and zero the gradients.

    With fp16 the gradients are scaled; they are unscaled first so the clip sees the true norm,
    and `scaler.step` skips the update when they overflowed. Elsewhere the scaler is a no-op."""
    set_lr(optimizer, lr)
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
