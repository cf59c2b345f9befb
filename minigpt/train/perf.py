"""Model FLOPs and MFU (model FLOPs utilisation), against the peak of the device in use.

FLOPs to train on one token of a sequence of length T (PaLM, appendix B):

    flops_per_token = 6 N + 12 L H Q T

- 6 N: every weight that multiplies an activation costs 2 FLOPs (multiply + add) in the forward
  pass and 4 in the backward pass (gradients for the input and for the weight). N counts those
  matmul weights: every parameter except the embedding *lookups*. A tied LM head is a real
  (C x V) matmul, so its matrix counts once, as the head (nanoGPT's convention); an untied
  token-embedding table and the position table are gathers, not matmuls, and do not count.
  `matmul_params(model)` gives this N.
- 12 L H Q T: attention scores q.k and the weighted sum of values, 2 matmuls of H heads of size Q
  against T keys, each 2 FLOPs per multiply-add, times 3 for forward + backward, in L layers.
  Causal masking makes half of that work unnecessary; like PaLM we count it all, so numbers
  compare with published MFUs. Local (banded) layers are counted as dense for the same reason.

MFU = tokens_per_s * flops_per_token / peak, where peak is the device's dense matmul peak for the
training dtype: a table for known GPUs, a measurement for everything else. The A100 figure is
never reported for other hardware.
"""

from __future__ import annotations

import torch
from torch import nn

from minigpt.device import measure_matmul_peak
from minigpt.model.config import GPTConfig

# Dense (no 2:4 sparsity) tensor-core peaks, FLOP/s. fp32 is the TF32 rate, which train.py turns
# on for CUDA. Matched against torch.cuda.get_device_name, most specific name first.
GPU_PEAK_FLOPS: dict[str, dict[torch.dtype, float]] = {
    "H100 PCIe": {torch.bfloat16: 756e12, torch.float16: 756e12, torch.float32: 378e12},
    "H100": {torch.bfloat16: 989e12, torch.float16: 989e12, torch.float32: 494.5e12},
    "H200": {torch.bfloat16: 989e12, torch.float16: 989e12, torch.float32: 494.5e12},
    "A100": {torch.bfloat16: 312e12, torch.float16: 312e12, torch.float32: 156e12},
}


def matmul_params(model: nn.Module) -> int:
    """N of `flops_per_token` for a minigpt.GPT: parameters that multiply activations."""
    n = model.num_params(non_embedding=True)  # drops the token and position tables
    if model.config.tie_word_embeddings:
        n += model.lm_head.weight.numel()  # ...but the tied table is also the LM head matmul
    return n


def flops_per_token(cfg: GPTConfig, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token, 6 N + 12 L H Q T, with N = `n_params` (see the module docstring
    for which parameters N counts) and T = `seq_len`."""
    L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, seq_len
    return 6.0 * n_params + 12.0 * L * H * Q * T


def mfu(tokens_per_s: float, flops_per_token: float, peak: float) -> float:
    """Fraction of the device's peak FLOP/s that the model's own arithmetic uses."""
    return tokens_per_s * flops_per_token / peak


def device_peak_flops(device: str | torch.device, dtype: torch.dtype) -> float:
    """Peak dense matmul FLOP/s of `device` in `dtype`: the table for a known GPU, otherwise
    (CPU, MPS, an unlisted GPU) a one-off measurement."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in GPU_PEAK_FLOPS.items():
            if key in name and dtype in peaks:
                return peaks[dtype]
        return measure_matmul_peak(device, dtype, size=8192, seconds=1.0)
    # 0.2 s: about 20 CPU matmuls of 1024^3, enough for the best of them; it delays every start
    return measure_matmul_peak(device, dtype, seconds=0.2)
