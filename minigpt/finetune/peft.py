"""Which weights a fine-tuning run trains: whole-model methods and parameter-efficient ones.

Six methods, each named by `--method` (see `MethodConfig`):

- head: only the new classification head trains; the GPT is a frozen feature extractor.
- top: the last k blocks, the final LayerNorm and the head train.
- full: every weight trains.
- lora (Hu et al. 2021): a frozen weight W (out x in) gets a trainable low-rank update

      W' = W + (alpha / r) B A          A: (r x in),  B: (out x r),  r << min(in, out)

  A starts random and B at zero, so W' = W at step 0 and training starts from the pretrained
  function. After training, B A can be added into W once ("merged"): inference costs nothing extra.
- adapter (Houlsby et al. 2019): a bottleneck after the attention and after the MLP of every block,

      h' = h + W_up f(W_down h)        W_down: (m x C),  W_up: (C x m),  f = GELU,  m << C

  W_up starts at zero, so each adapter starts as the identity h' = h.
- prefix (Li & Liang 2021): every layer l gets P learned key/value vectors K_l^P, V_l^P per head,
  and each token attends over [K_l^P; K_l] and [V_l^P; V_l]. They are written into a `KVCache`
  before the tokens, the same path that incremental decoding uses, so no attention code changes.

Only the base model's frozen tensors are shared between tasks; what trains is small enough to
store per task (see minigpt.finetune.classifier for saving "only the trainable tensors").
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minigpt.model.attention import KVCache
from minigpt.model.gpt import GPT
from minigpt.settings import require, setting

METHODS = ("head", "top", "full", "lora", "adapter", "prefix")
# Methods that leave every base weight untouched: they save only what they train.
FROZEN_BASE_METHODS = ("head", "lora", "adapter", "prefix")
LORA_TARGETS = ("q", "k", "v", "proj", "mlp")


@dataclass
class MethodConfig:
    """A fine-tuning method and its knobs: the `--method` family of finetune.py flags."""

    method: str = setting("full", "which weights train", METHODS)
    trainable_blocks: int = setting(1, "top: how many of the last blocks train")
    lora_r: int = setting(8, "LoRA rank r")
    lora_alpha: float = setting(16.0, "LoRA alpha: the update is (alpha / r) B A")
    lora_dropout: float = setting(0.0, "dropout on the LoRA branch input")
    lora_targets: tuple[str, ...] = setting(
        ("q", "v"), f"comma-separated LoRA targets among {','.join(LORA_TARGETS)}"
    )
    adapter_size: int = setting(32, "adapter bottleneck width m")
    n_prefix: int = setting(8, "prefix tuning: learned key/value slots per layer P")
    seed: int = 0  # for the random parts of the new modules (LoRA A, adapters, prefix init)

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        require(
            self.method in METHODS,
            f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}",
        )
        bad = sorted(set(self.lora_targets) - set(LORA_TARGETS))
        require(
            not bad and bool(self.lora_targets),
            f"LoRA targets {list(self.lora_targets)} must be a non-empty subset of"
            f" {', '.join(LORA_TARGETS)}",
        )
        for name in ("trainable_blocks", "lora_r", "adapter_size", "n_prefix"):
            require(getattr(self, name) > 0, f"{name}={getattr(self, name)} must be positive")

    @property
    def frozen_base(self) -> bool:
        return self.method in FROZEN_BASE_METHODS


# ---- LoRA ---------------------------------------------------------------------------------------


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
            # two thin matmuls, never the (out x in) product: (.., in) -> (.., r) -> (.., out_s)
            pieces.append(self.scale * F.linear(F.linear(x, self.lora_A[name]), self.lora_B[name]))
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


def _lora_sites(gpt: GPT, targets: tuple[str, ...]) -> list[tuple[nn.Module, str, dict]]:
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


def add_lora(gpt: GPT, cfg: MethodConfig, generator: torch.Generator | None = None) -> None:
    """Wrap every targeted Linear of `gpt` in a LoRALinear (in place)."""
    for parent, attr, parts in _lora_sites(gpt, cfg.lora_targets):
        base = getattr(parent, attr)
        wrapped = LoRALinear(base, parts, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, generator)
        setattr(parent, attr, wrapped)


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


# ---- adapters -----------------------------------------------------------------------------------


class Adapter(nn.Module):
    """Houlsby bottleneck h' = h + W_up f(W_down h), f = GELU.

    W_down starts like the GPT's other weights, N(0, 0.02); W_up starts at zero, so h' = h at
    step 0 (the pretrained function is kept) while W_up still receives a gradient.
    """

    def __init__(
        self, n_embd: int, size: int, like: torch.Tensor, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.down = nn.Linear(n_embd, size, device=like.device, dtype=like.dtype)
        self.up = nn.Linear(size, n_embd, device=like.device, dtype=like.dtype)
        with torch.no_grad():
            w = torch.randn(size, n_embd, generator=generator) * 0.02
            self.down.weight.copy_(w)
            self.down.bias.zero_()
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(F.gelu(self.down(h)))


class WithAdapter(nn.Module):
    """A sublayer (attention or MLP) followed by an adapter on its output, before the residual
    add: Block computes x + Adapter(Attn(LN(x))), as in Houlsby et al.'s figure 2."""

    def __init__(self, sublayer: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.sublayer = sublayer
        self.adapter = adapter

    def forward(self, *args: object) -> torch.Tensor:
        return self.adapter(self.sublayer(*args))


def add_adapters(gpt: GPT, size: int, generator: torch.Generator | None = None) -> None:
    """Put an adapter after the attention and after the MLP of every block (in place)."""
    C, like = gpt.config.n_embd, gpt.ln_f.weight
    for block in gpt.h:
        block.attn = WithAdapter(block.attn, Adapter(C, size, like, generator))
        block.mlp = WithAdapter(block.mlp, Adapter(C, size, like, generator))


# ---- prefix tuning ------------------------------------------------------------------------------


class PrefixTuning(nn.Module):
    """Learned keys/values K^P, V^P of shape (n_layer, H, P, D), written into a KVCache.

    With the prefixes stored first, a token at position i attends over the P prefix slots and
    tokens 0..i (the cache's mask is bottom-right aligned); prefixes take no position index, so
    token positions still start at 0. In banded (local) layers the prefixes leave the window
    like any cached token would.

    Init: the keys/values the frozen model itself computes for P random tokens (Li & Liang found
    initialising from real activations much more stable than random vectors).
    """

    def __init__(self, gpt: GPT, n_prefix: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_prefix = n_prefix
        key, value = _activations_of_random_tokens(gpt, n_prefix, generator)
        self.key = nn.Parameter(key)  # (L, H, P, D)
        self.value = nn.Parameter(value)

    def new_cache(self, gpt: GPT, batch_size: int) -> KVCache:
        """A cache holding the prefixes for a batch, ready for the tokens to be appended."""
        cache = gpt.new_cache(n_prefix=self.n_prefix)
        dtype = _cache_dtype(self.key)
        for layer in range(self.key.size(0)):
            k = self.key[layer].to(dtype).expand(batch_size, -1, -1, -1)  # (B, H, P, D)
            v = self.value[layer].to(dtype).expand(batch_size, -1, -1, -1)
            cache.update(layer, k, v)
        cache.advance(self.n_prefix)
        return cache


def _cache_dtype(param: torch.Tensor) -> torch.dtype:
    """The dtype the tokens' keys will have: KVCache reallocates (dropping the prefixes) when a
    write's dtype differs from its buffer, and under autocast the keys come out in bf16/fp16."""
    device_type = param.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return param.dtype


@torch.no_grad()
def _activations_of_random_tokens(
    gpt: GPT, n_prefix: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    device = gpt.ln_f.weight.device
    ids = torch.randint(gpt.config.vocab_size, (1, n_prefix), generator=generator).to(device)
    cache = gpt.new_cache()
    was_training = gpt.training
    gpt.eval()  # no dropout noise in the initial values
    gpt.hidden_states(ids, cache)
    gpt.train(was_training)
    key = torch.stack([k[0, :, :n_prefix] for k in cache.k])  # (L, H, P, D)
    value = torch.stack([v[0, :, :n_prefix] for v in cache.v])
    return key.clone(), value.clone()


# ---- applying a method --------------------------------------------------------------------------


def apply_method(gpt: GPT, cfg: MethodConfig) -> PrefixTuning | None:
    """Freeze `gpt` as `cfg.method` asks and add its new modules (in place). Returns the prefix
    module for "prefix" (the classifier owns it), else None. The classification head is not
    part of `gpt` and always trains."""
    generator = torch.Generator().manual_seed(cfg.seed)
    gpt.requires_grad_(cfg.method == "full")
    if cfg.method == "top":
        k = min(cfg.trainable_blocks, len(gpt.h))
        for block in gpt.h[len(gpt.h) - k :]:
            block.requires_grad_(True)
        gpt.ln_f.requires_grad_(True)  # it sits between the top block and the head
    elif cfg.method == "lora":
        add_lora(gpt, cfg, generator)
    elif cfg.method == "adapter":
        add_adapters(gpt, cfg.adapter_size, generator)
    elif cfg.method == "prefix":
        return PrefixTuning(gpt, cfg.n_prefix, generator)
    return None


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a tied matrix counts once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def describe_params(model: nn.Module, method: str) -> str:
    trainable, total = count_params(model)
    return (
        f"method {method}: trainable params {trainable:,} / total {total:,}"
        f" ({100 * trainable / max(total, 1):.2f}%)"
    )
