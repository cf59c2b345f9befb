"""LoRA (Hu et al. 2021): a frozen weight W (out x in) gets a trainable low-rank update

    W' = W + (alpha / r) B A          A: (r x in),  B: (out x r),  r << min(in, out)

A starts random and B at zero, so W' = W at step 0 and training starts from the pretrained
function. After training, B A can be added into W once ("merged"): inference costs nothing extra.
The fused attention projection is adapted per slice (q, k, v), so adapting q and v leaves k as
it was. minigpt.finetune.adalora builds on the same wrapper.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from minigpt.model.gpt import GPT

LORA_TARGETS = ("q", "k", "v", "proj", "mlp")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus low-rank updates on chosen slices of its output features.

    `parts` maps a name to an output range [start, stop). Each part s has its own A_s (r x in) and
    B_s ((stop - start) x r), and only that range of the output moves:

        y[..., start:stop] = x W[start:stop]^T + b[start:stop] + (alpha / r) x A_s^T B_s^T

    A plain Linear has one part covering every output. The fused attention projection c_attn
    (C -> 3C, rows q | k | v) has up to three, so adapting "q" and "v" leaves k exactly as it was:
    the same as LoRA on separate q_proj / v_proj matrices in other GPT codebases.
    """

    def __init__(
        self,
        base: nn.Linear,
        parts: dict[str, tuple[int, int]],
        r: int,
        alpha: float,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        self.parts = dict(sorted(parts.items(), key=lambda item: item[1]))  # by output range
        self.r, self.scale = r, alpha / r
        self.dropout = nn.Dropout(dropout)
        like = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name, (start, stop) in self.parts.items():
            # A as nn.Linear inits its weight (Kaiming-uniform); B = 0 so W' = W at step 0
            bound = 1.0 / math.sqrt(base.in_features)
            a = torch.rand(r, base.in_features, generator=generator) * 2 * bound - bound
            self.lora_A[name] = nn.Parameter(a.to(**like))
            self.lora_B[name] = nn.Parameter(torch.zeros(stop - start, r, **like))
        self.merged = False
        self._original: dict[str, torch.Tensor] = {}  # W slices saved by merge(), for unmerge()

    def delta_weight(self, name: str) -> torch.Tensor:
        """(alpha / r) B_s A_s, the update to rows [start, stop) of W."""
        return self.scale * (self.lora_B[name] @ self.lora_A[name])

    def update(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """x (.., in) -> the update (.., out_s) of part `name`: two thin matmuls, never the
        (out x in) product."""
        return self.scale * F.linear(F.linear(x, self.lora_A[name]), self.lora_B[name])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            if self.training:
                raise RuntimeError("LoRA weights are merged into the base; unmerge() to train")
            return y
        x = self.dropout(x)
        pieces, end = [], 0  # the update for every output feature, zeros outside the parts
        for name, (start, stop) in self.parts.items():
            if start > end:
                pieces.append(y.new_zeros(*y.shape[:-1], start - end))
            pieces.append(self.update(name, x))
            end = stop
        if end < y.size(-1):
            pieces.append(y.new_zeros(*y.shape[:-1], y.size(-1) - end))
        return y + torch.cat(pieces, dim=-1)

    @torch.no_grad()
    def merge(self) -> None:
        """W[start:stop] += (alpha / r) B A for every part; forward then skips the LoRA branch.
        The original slices are kept, so unmerge() restores W bit for bit (subtracting the
        update back would be off by rounding)."""
        if self.merged:
            return
        W = self.base.weight
        for name, (start, stop) in self.parts.items():
            self._original[name] = W[start:stop].clone()
            W[start:stop] += self.delta_weight(name).to(W.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            return
        for name, (start, stop) in self.parts.items():
            self.base.weight[start:stop] = self._original.pop(name)
        self.merged = False


def lora_sites(gpt: GPT, targets: tuple[str, ...]) -> list[tuple[nn.Module, str, dict]]:
    """(parent module, attribute name, parts) of every Linear the targets touch."""
    C = gpt.config.n_embd
    qkv = {name: (i * C, (i + 1) * C) for i, name in enumerate("qkv") if name in targets}
    sites = []
    for block in gpt.h:
        if qkv:
            sites.append((block.attn, "c_attn", qkv))
        if "proj" in targets:
            sites.append((block.attn, "c_proj", {"proj": (0, C)}))
        if "mlp" in targets:
            d_ff = block.mlp.c_fc.out_features
            sites.append((block.mlp, "c_fc", {"fc": (0, d_ff)}))
            sites.append((block.mlp, "c_proj", {"proj": (0, C)}))
    return sites


def add_lora(
    gpt: GPT,
    targets: tuple[str, ...],
    r: int,
    alpha: float,
    dropout: float = 0.0,
    generator: torch.Generator | None = None,
) -> None:
    """Wrap every targeted Linear of `gpt` in a LoRALinear (in place)."""
    for parent, attr, parts in lora_sites(gpt, targets):
        setattr(
            parent, attr, LoRALinear(getattr(parent, attr), parts, r, alpha, dropout, generator)
        )


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.unmerge()


def merged_copy(gpt: GPT) -> GPT:
    """A plain GPT whose weights are W + (alpha/r) B A: every LoRALinear merged and replaced by
    its base Linear, so the result loads and runs with no PEFT code. `gpt` is left as it was."""
    plain = copy.deepcopy(gpt)
    for module in list(plain.modules()):
        for attr, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                child.merge()
                setattr(module, attr, child.base)
    return plain
