"""Which weights a fine-tuning run trains: whole-model methods and parameter-efficient ones.

Seven methods, each named by `--method` (see `MethodConfig`):

- head: only the new classification head trains; the GPT is a frozen feature extractor.
- top: the last k blocks, the final LayerNorm and the head train.
- full: every weight trains.
- lora (Hu et al. 2021): a frozen weight W (out x in) gets a trainable low-rank update

      W' = W + (alpha / r) B A          A: (r x in),  B: (out x r),  r << min(in, out)

  A starts random and B at zero, so W' = W at step 0 and training starts from the pretrained
  function. After training, B A can be added into W once ("merged"): inference costs nothing extra.
- adalora (Zhang et al. 2023): LoRA in SVD form, W' = W + (alpha / init_r) P diag(lambda) Q,
  whose rank budget is re-allocated during training from init_r to target_r per weight on
  average (minigpt.finetune.adalora; the loop calls its RankAllocator every step).
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

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from minigpt.finetune.adalora import add_adalora
from minigpt.finetune.lora import (  # noqa: F401  (re-exported: the methods' one namespace)
    LORA_TARGETS,
    LoRALinear,
    add_lora,
    lora_layers,
    merge_lora,
    merged_copy,
    unmerge_lora,
)
from minigpt.model.attention import KVCache
from minigpt.model.gpt import GPT
from minigpt.settings import require, setting

METHODS = ("head", "top", "full", "lora", "adalora", "adapter", "prefix")
# `--method=prompt`: full fine-tuning read out through the LM head (FinetuneConfig turns it into
# --method=full --readout=prompt; --readout=prompt with another method combines the two)
PROMPT_METHOD = "prompt"
# Methods that leave every base weight untouched: they save only what they train.
FROZEN_BASE_METHODS = ("head", "lora", "adalora", "adapter", "prefix")


@dataclass
class MethodConfig:
    """A fine-tuning method and its knobs: the `--method` family of finetune.py flags."""

    method: str = setting(
        "full", "which weights train; prompt = full through the prompt readout (--readout=prompt"
        " with another method combines them)", (*METHODS, PROMPT_METHOD),
    )  # fmt: skip
    trainable_blocks: int = setting(1, "top: how many of the last blocks train")
    lora_r: int = setting(8, "LoRA rank r")
    lora_alpha: float = setting(16.0, "LoRA alpha: the update is (alpha / r) B A")
    lora_dropout: float = setting(0.0, "dropout on the LoRA branch input")
    lora_targets: tuple[str, ...] = setting(
        ("q", "v"), f"comma-separated LoRA targets among {','.join(LORA_TARGETS)}"
    )
    adalora_init_r: int = setting(12, "AdaLoRA: starting rank of every adapted weight")
    adalora_target_r: int = setting(8, "AdaLoRA: final rank budget per adapted weight (average)")
    adalora_tinit: int = setting(20, "AdaLoRA: warm-up steps before any rank is pruned")
    adalora_tfinal: int = setting(50, "AdaLoRA: final steps at the target budget, pattern fixed")
    adalora_delta_t: int = setting(10, "AdaLoRA: re-allocate the ranks every this many steps")
    adalora_orth_reg: float = setting(0.1, "AdaLoRA: weight of the orthogonality penalty R(P, Q)")
    adapter_size: int = setting(32, "adapter bottleneck width m")
    n_prefix: int = setting(8, "prefix tuning: learned key/value slots per layer P")
    seed: int = 0  # for the random parts of the new modules (LoRA A, adapters, prefix init)
    # AdaLoRA's final ranks {"h.0.attn.c_attn.q": 5, ...}, written after training, read on load
    adalora_rank_pattern: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        require(
            self.method in (*METHODS, PROMPT_METHOD),
            f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}, {PROMPT_METHOD}",
        )
        bad = sorted(set(self.lora_targets) - set(LORA_TARGETS))
        require(
            not bad and bool(self.lora_targets),
            f"LoRA targets {list(self.lora_targets)} must be a non-empty subset of"
            f" {', '.join(LORA_TARGETS)}",
        )
        for name in ("trainable_blocks", "lora_r", "adapter_size", "n_prefix", "adalora_target_r",
                     "adalora_delta_t"):  # fmt: skip
            require(getattr(self, name) > 0, f"{name}={getattr(self, name)} must be positive")
        require(
            self.adalora_target_r <= self.adalora_init_r,
            f"adalora_target_r={self.adalora_target_r} must be <= adalora_init_r"
            f"={self.adalora_init_r}: AdaLoRA only prunes",
        )

    @property
    def frozen_base(self) -> bool:
        return self.method in FROZEN_BASE_METHODS


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
        add_lora(gpt, cfg.lora_targets, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, generator)
    elif cfg.method == "adalora":
        add_adalora(gpt, cfg.lora_targets, cfg.adalora_init_r, cfg.lora_alpha, cfg.lora_dropout,
                    cfg.adalora_rank_pattern, generator)  # fmt: skip
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
