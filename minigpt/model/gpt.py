"""GPT: token (+ position) embeddings -> n_layer blocks -> final LayerNorm -> LM head.

    h_0 = W_e[x] + W_p[t]                       (W_p only with learned positions)
    h_l = Block_l(h_{l-1})                      l = 1..n_layer
    logits = LayerNorm(h_L) W_e^T (+ b)         (W_e^T when the head is tied)

A block is pre-norm. Sequential (GPT-2, GPT-3, GPT-Neo):

    a = h + Attn(LN_1(h));   h' = a + MLP(LN_2(a))

Parallel (GPT-J), both branches read one LayerNorm output:

    h' = h + Attn(LN_1(h)) + MLP(LN_1(h))

with MLP(u) = GELU_tanh(u W_fc + b_fc) W_proj + b_proj. Which tokens Attn lets each position see
(causal, bidirectional, or a per-row prefix) is config.attention: see attention.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from minigpt.model.attention import KVCache, Rotary, SelfAttention
from minigpt.model.config import GPTConfig
from minigpt.model.generate import SamplingConfig, generate, stream_tokens
from minigpt.model.loss import lm_loss


class GPTOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, vocab_size)
    loss: torch.Tensor | None  # scalar mean NLL when targets are given


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.d_ff, bias=config.bias)
        self.c_proj = nn.Linear(config.d_ff, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        eps, bias = config.layer_norm_eps, config.bias
        self.parallel = config.parallel_residual
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=eps, bias=bias)
        self.attn = SelfAttention(config, layer)
        self.ln_2 = None if self.parallel else nn.LayerNorm(config.n_embd, eps=eps, bias=bias)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        rotary: Rotary | None = None,
        cache: KVCache | None = None,
        prefix_len: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.parallel:
            h = self.ln_1(x)
            return x + self.attn(h, rotary, cache, prefix_len, lengths) + self.mlp(h)
        x = x + self.attn(self.ln_1(x), rotary, cache, prefix_len, lengths)
        return x + self.mlp(self.ln_2(x))


# The model computes; it reads and writes no files, so this package needs torch alone. The layer
# that owns the checkpoint formats, minigpt.checkpoint, sits above it and plugs its loader and
# saver in here (`use_checkpoint_format`) when it is imported. Importing any part of minigpt runs
# minigpt/__init__.py, which imports minigpt.checkpoint, so the two methods below always work.
Loader = Callable[..., "GPT"]  # (source, dtype, **overrides) -> GPT
Saver = Callable[["GPT", str | Path, Any], None]  # (model, directory, tokenizer or None)
_checkpoint_format: tuple[Loader, Saver] | None = None


def use_checkpoint_format(load: Loader, save: Saver) -> None:
    """Route GPT.from_pretrained / GPT.save_pretrained to these functions."""
    global _checkpoint_format
    _checkpoint_format = (load, save)


def _format() -> tuple[Loader, Saver]:
    if _checkpoint_format is None:
        raise RuntimeError("no checkpoint format is registered: import minigpt.checkpoint first")
    return _checkpoint_format


class GPT(nn.Module):
    """A decoder-only transformer language model of the GPT family (see GPTConfig)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = nn.Embedding(config.block_size, C) if config.position == "learned" else None
        self.rotary = (
            Rotary(config.rotary_channels, config.block_size, config.rotary_base)
            if config.position == "rotary"
            else None
        )
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config, layer) for layer in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=config.lm_head_bias)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight  # one matrix both embeds and un-embeds tokens
        self.apply(self._init_weights)
        # GPT-2: scale the init of layers that write into the residual stream by 1/sqrt(2 L),
        # since each of the 2 L residual branches adds its variance to the stream.
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=residual_std)

    def materialize_buffers(self, device: torch.device) -> None:
        """Finish a model built on the meta device and loaded with `assign=True`: recompute the
        rotary tables (not stored in checkpoints) and re-tie the LM head to the new embedding."""
        if self.rotary is not None:
            cfg = self.config
            with device:
                self.rotary = Rotary(cfg.rotary_channels, cfg.block_size, cfg.rotary_base)
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # ---- sizes --------------------------------------------------------------------------------

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count, tied matrices counted once. non_embedding=True drops the token and
        position tables (Kaplan et al.'s N); an untied LM head still counts, it is a matmul."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel()
            if self.wpe is not None:
                n -= self.wpe.weight.numel()
        return n

    # ---- checkpoints --------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, source: str | Path, dtype: torch.dtype = torch.float32, **overrides: Any
    ) -> GPT:
        """Load a checkpoint: a minigpt directory (config.json + model.safetensors), a Hugging
        Face gpt2 / gpt_neo / gptj directory, or a hub name (online, `hub` extra). `overrides`
        replace config fields that keep tensor shapes (dropout, attn_impl, ...). Read by
        minigpt.checkpoint.pretrained.load_pretrained."""
        load, _ = _format()
        return load(source, dtype, **overrides)

    def save_pretrained(self, path: str | Path, tokenizer: Any = None) -> None:
        """Write config.json + model.safetensors (+ the tokenizer's tokenizer_spec.json) into the
        directory `path`, atomically file by file (minigpt.checkpoint.pretrained)."""
        _, save = _format()
        save(self, path, tokenizer)

    # ---- forward ------------------------------------------------------------------------------

    def hidden_states(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        prefix_len: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-norm hidden states (B, T, C) for token ids idx (B, T). A prefix model takes
        prefix_len (B,): row b's first prefix_len[b] tokens of idx form its prefix (None: no
        prefix, causal). lengths (B,): real tokens of right-padded rows, so that the padding
        stays invisible in the non-causal modes."""
        start = cache.position if cache is not None else 0
        self._check_input(idx, start)
        self._check_visibility(idx, prefix_len, lengths)
        T = idx.size(1)
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(start + torch.arange(T, device=idx.device))
        x = self.drop(x)
        for block in self.h:
            x = block(x, self.rotary, cache, prefix_len, lengths)
        if cache is not None:
            cache.advance(T)
        return self.ln_f(x)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        prefix_len: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> GPTOutput:
        """idx (B, T) token ids; targets (B, T) the ids to predict at each position (the next
        token for causal LM) or -100 -> GPTOutput. prefix_len, lengths: see hidden_states."""
        logits = self.lm_head(self.hidden_states(idx, cache, prefix_len, lengths))  # (B, T, V)
        loss = None if targets is None else lm_loss(logits, targets)
        return GPTOutput(logits, loss)

    def _check_input(self, idx: torch.Tensor, start: int | torch.Tensor) -> None:
        if idx.dim() != 2:
            raise ValueError(
                f"idx must be a 2-D (batch, time) tensor of token ids, got shape {tuple(idx.shape)}"
            )
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise TypeError(f"idx must hold integer token ids (torch.long), got {idx.dtype}")
        T, limit = idx.size(1), self.config.block_size
        # a static cache's position is a device tensor: its caller counts the tokens instead
        if isinstance(start, int) and start + T > limit:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds block_size={limit}; "
                f"crop the input to its last {limit} tokens"
            )
        # A device-wide min/max would sync a GPU every step (CUDA's embedding asserts instead),
        # and would break the graph under torch.compile.
        checkable = idx.device.type == "cpu" and not torch.compiler.is_compiling()
        if checkable and idx.numel():
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= self.config.vocab_size:
                bad = hi if hi >= self.config.vocab_size else lo
                raise ValueError(
                    f"token id {bad} is outside the vocabulary [0, {self.config.vocab_size}); "
                    "check that the tokenizer matches the model"
                )

    def _check_visibility(
        self, idx: torch.Tensor, prefix_len: torch.Tensor | None, lengths: torch.Tensor | None
    ) -> None:
        mode = self.config.attention
        if prefix_len is not None and mode != "prefix":
            raise ValueError(
                f"prefix_len was given but this model's attention is {mode!r}; "
                "only a model built with attention='prefix' takes a prefix"
            )
        B, T = idx.shape
        for name, value, low in (("prefix_len", prefix_len, 0), ("lengths", lengths, 1)):
            if value is None:
                continue
            if value.shape != (B,):
                shape = tuple(value.shape)
                raise ValueError(f"{name} must have shape (batch,) = ({B},), got {shape}")
            # as for the token ids: checked on CPU only, a GPU check would sync every step
            if value.device.type == "cpu" and value.numel():
                lo, hi = int(value.min()), int(value.max())
                if lo < low or hi > T:
                    raise ValueError(f"{name} values must be in [{low}, {T}], got [{lo}, {hi}]")

    # ---- generation ---------------------------------------------------------------------------

    def new_cache(self, n_prefix: int = 0) -> KVCache:
        """An empty cache for block_size tokens after n_prefix learned prefix slots."""
        return KVCache(self.config.n_layer, self.config.block_size + n_prefix, n_prefix)

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        generator: torch.Generator | None = None,
        **sampling: object,
    ) -> torch.Tensor:
        """Extend idx (B, T) by up to max_new_tokens sampled tokens -> (B, T + n_new).
        `sampling`: the other fields of SamplingConfig (temperature, top_k, top_p, eos_id...)."""
        return generate(self, idx, SamplingConfig(max_new_tokens, **sampling), generator)

    def generate_stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        generator: torch.Generator | None = None,
        **sampling: object,
    ) -> Iterator[torch.Tensor]:
        """Yield each new token column (B, 1) as soon as it is sampled (minigpt.model.generate)."""
        return stream_tokens(self, idx, SamplingConfig(max_new_tokens, **sampling), generator)
