"""GPTConfig: one dataclass that describes every model of the GPT family.

A GPT is ``n_layer`` transformer blocks of width ``n_embd`` (d_model) with ``n_head`` attention
heads of size ``n_embd / n_head``. The family differs in a handful of switches, all fields here:

- position encoding: learned absolute embeddings (GPT-2, GPT-3, GPT-Neo) or rotary embeddings on
  the first ``rotary_dim`` channels of every head (GPT-J);
- block wiring: sequential residual ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``, or GPT-J's
  parallel residual ``x + attn(ln(x)) + mlp(ln(x))``;
- attention layout per layer: ``"global"`` (dense) or ``"local"`` (banded: a causal query sees
  only the last ``window_size`` keys). GPT-3 alternates the two; GPT-Neo does so with a window of
  256;
- attention scale 1/sqrt(d_head), or none (GPT-Neo);
- attention visibility (T5 paper, section 3.2): ``"causal"`` (GPT: token i sees tokens j <= i),
  ``"bidirectional"`` (BERT: every token sees every token) or ``"prefix"`` (prefix LM: the first
  P tokens of a row see each other, later ones see the prefix and the past; P is given per row to
  ``forward``). A ``"local"`` layer bands every mode to ``|i - j| < window_size``;
- LM head tied to the token embedding or separate, optionally with a bias (GPT-J).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from minigpt.model.errors import ConfigError, require

ATTENTION_MODES = ("causal", "bidirectional", "prefix")
ATTN_IMPLS = ("sdpa", "math")
LAYER_TYPES = ("global", "local")
POSITION_TYPES = ("learned", "rotary")


@dataclass
class GPTConfig:
    """Shape and wiring of a GPT. Defaults give GPT-2 small with a vocab padded to 50304."""

    vocab_size: int = 50304  # rows of the embedding table, often padded to a multiple of 64
    n_vocab: int | None = None  # ids the tokenizer makes; ids >= n_vocab are padding, never sampled
    block_size: int = 1024  # maximum context length T
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_inner: int | None = None  # MLP hidden width d_ff; None means 4 * n_embd
    dropout: float = 0.0
    bias: bool = True  # bias in LayerNorms and MLP Linears (and attention, unless overridden)
    qkv_bias: bool | None = None  # None: follow `bias` (GPT-Neo and GPT-J have no q/k/v bias)
    attn_proj_bias: bool | None = None  # None: follow `bias` (GPT-J has none on the out proj)
    position: str = "learned"  # "learned" absolute embeddings or "rotary"
    rotary_dim: int | None = None  # rotated channels per head; None means the whole head
    rotary_base: float = 10000.0
    parallel_residual: bool = False
    layer_types: tuple[str, ...] | None = None  # per layer "global"/"local"; None: all global
    window_size: int = 256  # keys a "local" layer's query sees, itself included
    scale_attn: bool = True  # scores = q.k^T / sqrt(d_head); False: scores = q.k^T (GPT-Neo)
    tie_word_embeddings: bool = True
    lm_head_bias: bool = False
    layer_norm_eps: float = 1e-5
    attn_impl: str = "sdpa"  # "sdpa" (fused kernel) or "math" (explicit, for reading)
    attention: str = "causal"  # visibility: "causal", "bidirectional" or "prefix"

    def __post_init__(self) -> None:
        if self.layer_types is not None:
            self.layer_types = tuple(self.layer_types)
        self.validate()

    # ---- derived quantities -------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_ff(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def rotary_channels(self) -> int:
        """Channels of each head that rotary embeddings rotate (0 with learned positions)."""
        if self.position != "rotary":
            return 0
        return self.rotary_dim if self.rotary_dim is not None else self.head_dim

    def layer_type(self, layer: int) -> str:
        return "global" if self.layer_types is None else self.layer_types[layer]

    # ---- validation ---------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise a one-line ConfigError (a ValueError) naming the first inconsistent field."""
        require(
            self.n_embd % self.n_head == 0,
            f"GPTConfig: n_embd={self.n_embd} must be divisible by n_head={self.n_head}",
        )
        require(
            min(self.vocab_size, self.block_size, self.n_layer, self.n_head) > 0,
            "GPTConfig: vocab_size, block_size, n_layer and n_head must be positive",
        )
        require(0.0 <= self.dropout < 1.0, f"GPTConfig: dropout={self.dropout} must be in [0, 1)")
        require(
            self.attn_impl in ATTN_IMPLS,
            f"GPTConfig: attn_impl={self.attn_impl!r} must be one of {ATTN_IMPLS}",
        )
        require(
            self.attention in ATTENTION_MODES,
            f"GPTConfig: attention={self.attention!r} must be one of {ATTENTION_MODES}",
        )
        require(
            self.position in POSITION_TYPES,
            f"GPTConfig: position={self.position!r} must be one of {POSITION_TYPES}",
        )
        require(self.window_size > 0, f"GPTConfig: window_size={self.window_size} must be positive")
        require(
            self.n_vocab is None or 0 < self.n_vocab <= self.vocab_size,
            f"GPTConfig: n_vocab={self.n_vocab} must be in [1, vocab_size={self.vocab_size}]",
        )
        if self.layer_types is not None:
            require(
                len(self.layer_types) == self.n_layer,
                f"GPTConfig: layer_types has {len(self.layer_types)} entries "
                f"but n_layer={self.n_layer}; give one of {LAYER_TYPES} per layer",
            )
            bad = sorted(set(self.layer_types) - set(LAYER_TYPES))
            require(not bad, f"GPTConfig: unknown layer type {', '.join(bad)}; use {LAYER_TYPES}")
        rot = self.rotary_channels
        require(
            rot % 2 == 0 and rot <= self.head_dim,
            f"GPTConfig: rotary_dim={rot} must be even and at most head_dim={self.head_dim}",
        )

    # ---- (de)serialisation --------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            hint = difflib.get_close_matches(unknown[0], known, n=1)
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"GPTConfig: unknown field {unknown[0]!r}{tip}")
        return cls(**d)

    # ---- presets ------------------------------------------------------------------------------

    @classmethod
    def preset_names(cls) -> list[str]:
        return list(PRESETS)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """Config of a published model, e.g. ``GPTConfig.from_preset("gpt2", dropout=0.1)``."""
        if name not in PRESETS:
            hint = difflib.get_close_matches(name, PRESETS, n=1)
            tip = f"did you mean {hint[0]!r}? " if hint else ""
            raise ConfigError(f"unknown preset {name!r}: {tip}choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


GPT2_VOCAB = 50257  # published models keep the unpadded BPE vocab so counts match the papers


def _gpt2(n_layer: int, n_embd: int, n_head: int) -> dict[str, Any]:
    return dict(
        vocab_size=GPT2_VOCAB, block_size=1024, n_layer=n_layer, n_head=n_head, n_embd=n_embd
    )


def _gpt3(n_layer: int, d_model: int, n_heads: int) -> dict[str, Any]:
    """GPT-3 paper, Table 2.1: context 2048, d_ff = 4 d_model, alternating dense/banded layers.

    The paper does not print the window of its "locally banded sparse attention"; we use GPT-Neo's
    256, the open replication of that design.
    """
    layer_types = tuple("global" if i % 2 == 0 else "local" for i in range(n_layer))
    return dict(
        vocab_size=GPT2_VOCAB, block_size=2048, n_layer=n_layer, n_head=n_heads, n_embd=d_model,
        layer_types=layer_types, window_size=256,
    )  # fmt: skip


def _gpt_neo(n_layer: int, n_embd: int, n_head: int) -> dict[str, Any]:
    layer_types = tuple("global" if i % 2 == 0 else "local" for i in range(n_layer))
    return dict(
        vocab_size=GPT2_VOCAB, block_size=2048, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
        qkv_bias=False, layer_types=layer_types, window_size=256, scale_attn=False,
    )  # fmt: skip


PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": _gpt2(12, 768, 12),
    "gpt2-medium": _gpt2(24, 1024, 16),
    "gpt2-large": _gpt2(36, 1280, 20),
    "gpt2-xl": _gpt2(48, 1600, 25),
    # GPT-3 Table 2.1 rows as (n_layers, d_model, n_heads). Two printed rows are not
    # self-consistent (d_model != n_heads * d_head); we keep d_model, which fixes the parameter
    # count, and d_head = 128, which fixes the attention shape, and derive n_heads:
    #   XL:  printed 24 heads of 128 in d_model 2048 -> 16 heads of 128 (as GPT-Neo 1.3B).
    #   13B: printed d_model 5140 with 40 heads of 128 -> d_model 5120 = 40 x 128; 5140 is not
    #        divisible by 40 and 5120 is the width the count 13B implies.
    "gpt3-small": _gpt3(12, 768, 12),
    "gpt3-medium": _gpt3(24, 1024, 16),
    "gpt3-large": _gpt3(24, 1536, 16),
    "gpt3-xl": _gpt3(24, 2048, 16),
    "gpt3-2.7b": _gpt3(32, 2560, 32),
    "gpt3-6.7b": _gpt3(32, 4096, 32),
    "gpt3-13b": _gpt3(40, 5120, 40),
    "gpt3-175b": _gpt3(96, 12288, 96),
    "gptj-6b": dict(
        vocab_size=50400,
        block_size=2048,
        n_layer=28,
        n_head=16,
        n_embd=4096,
        qkv_bias=False,
        attn_proj_bias=False,
        position="rotary",
        rotary_dim=64,
        parallel_residual=True,
        tie_word_embeddings=False,
        lm_head_bias=True,
    ),  # fmt: skip
    "gpt-neo-125m": _gpt_neo(12, 768, 12),
    "gpt-neo-1.3b": _gpt_neo(24, 2048, 16),
    "gpt-neo-2.7b": _gpt_neo(32, 2560, 20),
}

# Parameter counts as published (GPT-2 and GPT-J: the released checkpoints; GPT-3: Table 2.1;
# GPT-Neo: the model names). Tests check each preset's num_params() lands within 2% of these.
PUBLISHED_PARAMS: dict[str, int] = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "gpt3-small": 125_000_000,
    "gpt3-medium": 350_000_000,
    "gpt3-large": 760_000_000,
    "gpt3-xl": 1_300_000_000,
    "gpt3-2.7b": 2_700_000_000,
    "gpt3-6.7b": 6_700_000_000,
    "gpt3-13b": 13_000_000_000,
    "gpt3-175b": 175_000_000_000,
    "gptj-6b": 6_053_381_344,
    "gpt-neo-125m": 125_000_000,
    "gpt-neo-1.3b": 1_300_000_000,
    "gpt-neo-2.7b": 2_700_000_000,
}
