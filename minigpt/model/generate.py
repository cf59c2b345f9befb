"""Autoregressive sampling with a KV cache.

Each step turns the last position's logits z into a distribution and draws the next token:

    p(v) = softmax(z / temperature)_v          temperature 0 -> argmax (greedy)
    top-k: keep the k largest z, set the rest to -inf
    top-p: keep the smallest set of tokens whose probability sums to >= p (nucleus sampling)

With a cache, the prompt is run once (prefill) and its keys/values stored; every later step feeds
only the newest token. Once the context fills `block_size`, the window slides: the cache is
rebuilt from the last `block_size` tokens each step, which is exactly what uncached generation
computes, so both give the same tokens.

A prefix model (attention="prefix") reads the prompt as its prefix: the n_prompt prompt tokens see
each other, every generated token sees the prompt and the tokens before it. Prompt positions never
see a generated token, so their cached keys stay exact. Once the window slides, the prefix is what
is left of the prompt in the window, P = max(0, n_prompt - (n_context - block_size)), in both the
cached and the uncached path. A bidirectional model has no next-token distribution (every
position sees the future) and refuses to generate.

With `compile=True` the one-token step runs under torch.compile over a StaticKVCache: its buffers
keep their shape and the write position is a tensor, so one compiled graph serves every token
(the prefill, and the re-prefill of a sliding window, run eagerly). Sampling itself stays eager,
so a seeded generator draws the same numbers; the compiled logits differ from the eager ones by
float rounding only, so greedy tokens agree unless two logits tie within that rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from minigpt.model.attention import KVCache, StaticKVCache
from minigpt.model.config import GPTConfig
from minigpt.model.errors import require


def _knob(default: object, help: str) -> object:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn: declared once for `generate`, sample.py and every other sampler."""

    max_new_tokens: int = _knob(100, "tokens to generate per sample")
    temperature: float = _knob(1.0, "softmax temperature; 0 = greedy (argmax)")
    top_k: int | None = _knob(None, "keep only the k most likely tokens; none = all")
    top_p: float | None = _knob(None, "nucleus sampling: smallest set with probability >= p")
    eos_id: int | None = _knob(None, "stop a row once it emits this token; none = never")
    use_cache: bool = _knob(True, "reuse keys/values of earlier tokens (KV cache)")
    compile: bool = _knob(False, "torch.compile the one-token step over a static KV cache")

    def __post_init__(self) -> None:
        checks = [
            (self.max_new_tokens >= 0, f"max_new_tokens={self.max_new_tokens} must be >= 0"),
            (self.temperature >= 0, f"temperature={self.temperature} must be >= 0 (0 = greedy)"),
            (self.top_k is None or self.top_k >= 1, f"top_k={self.top_k} must be >= 1"),
            (self.top_p is None or 0 < self.top_p <= 1, f"top_p={self.top_p} must be in (0, 1]"),
            (self.use_cache or not self.compile, "compile=True needs use_cache=True (a KV cache)"),
        ]  # fmt: skip
        for ok, message in checks:
            require(ok, message)


class Decoder(Protocol):
    """What sampling needs of a model: minigpt.model.gpt.GPT is one."""

    config: GPTConfig
    lm_head: nn.Module

    def hidden_states(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        prefix_len: torch.Tensor | None = None,
    ) -> torch.Tensor: ...

    def new_cache(self) -> KVCache: ...


Step = Callable[[Decoder, torch.Tensor, KVCache], torch.Tensor]  # (model, token, cache) -> logits


def filter_logits(
    logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Set logits (B, V) outside the top-k / top-p set to -inf."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the first always stays)
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one token per row from logits (B, V) -> (B, 1)."""
    logits = logits.float()
    if sampling.temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = filter_logits(logits / sampling.temperature, sampling.top_k, sampling.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def decode_step(model: Decoder, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits (B, V) for the token after `token` (B, 1), whose keys/values join `cache`."""
    return model.lm_head(model.hidden_states(token, cache)[:, -1, :])


@functools.cache
def compiled_decode_step() -> Step:
    """decode_step under torch.compile, built once per process. Over a StaticKVCache every
    input keeps its shape from token to token, so one graph serves them all."""
    return torch.compile(decode_step, fullgraph=True)


def _next_logits(
    model: Decoder, context: torch.Tensor, cache: KVCache | None, n_prompt: int, step: Step
) -> torch.Tensor:
    """Logits (B, V) for the token after `context`, feeding the cache only what it lacks."""
    block_size = model.config.block_size
    if cache is not None and n_prompt < context.size(1) <= block_size:
        # the cache holds every token but the newest. A compiled step guards on strides, and a
        # view of the growing context (or a clone of it, which keeps them) has new ones each step
        newest = context[:, -1:].clone(memory_format=torch.contiguous_format)  # (B, 1)
        return step(model, newest, cache)
    if cache is not None:
        cache.reset()
    window = context[:, -block_size:]  # slide once the context outgrows the model
    prefix_len = None
    if model.config.attention == "prefix":
        shift = context.size(1) - window.size(1)  # tokens that slid out of the window
        prefix_len = torch.full((len(window),), max(0, n_prompt - shift), device=window.device)
    hidden = model.hidden_states(window, cache, prefix_len)[:, -1, :]  # (B, C)
    return model.lm_head(hidden)


def _decode_cache(
    model: Decoder, idx: torch.Tensor, sampling: SamplingConfig, cache: KVCache | None
) -> KVCache | None:
    """The cache to decode with: the caller's, or a new one; a static one when compiling, sized
    to the tokens this call stores (fewer slots, less attention) and checked to hold them."""
    if not sampling.use_cache:
        return None
    n_stored = min(idx.size(1) + sampling.max_new_tokens - 1, model.config.block_size)
    if cache is None:
        if not sampling.compile:
            return model.new_cache()
        cache = StaticKVCache(model.config.n_layer, n_stored, idx.device)
    if sampling.compile and not isinstance(cache, StaticKVCache):
        raise ValueError(
            "compile=True needs a StaticKVCache (a growing cache changes shape every token);"
            " pass one or no cache"
        )
    if isinstance(cache, StaticKVCache) and cache.max_len - cache.n_prefix < n_stored:
        raise ValueError(
            f"the StaticKVCache holds {cache.max_len - cache.n_prefix} tokens after its prefixes;"
            f" this call stores {n_stored}"
        )
    return cache


@torch.inference_mode()
def stream_tokens(
    model: Decoder,
    idx: torch.Tensor,
    sampling: SamplingConfig,
    generator: torch.Generator | None = None,
    cache: KVCache | None = None,
) -> Iterator[torch.Tensor]:
    """Yield new tokens (B, 1) one step at a time. A row that emitted eos_id keeps emitting it;
    the stream stops early when every row has. `cache` may carry learned prefixes (a
    StaticKVCache when sampling.compile)."""
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"idx must be a non-empty (batch, time) tensor, got {tuple(idx.shape)}")
    if model.config.attention == "bidirectional":
        raise ValueError(
            "a bidirectional model cannot generate: every position sees the future, so it has no"
            " next-token distribution (fine-tune or score it instead)"
        )
    cache = _decode_cache(model, idx, sampling, cache)
    step = compiled_decode_step() if sampling.compile else decode_step
    n_vocab, eos_id = model.config.n_vocab, sampling.eos_id
    finished = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
    context = idx
    for _ in range(sampling.max_new_tokens):
        logits = _next_logits(model, context, cache, idx.size(1), step)
        if n_vocab is not None:
            logits[:, n_vocab:] = float("-inf")  # padded vocab rows are never sampled
        token = sample_next(logits, sampling, generator)
        if eos_id is not None:
            token = token.masked_fill(finished, eos_id)
            finished |= token == eos_id
        context = torch.cat([context, token], dim=1)
        yield token
        if eos_id is not None and bool(finished.all()):
            return


def generate(
    model: Decoder,
    idx: torch.Tensor,
    sampling: SamplingConfig,
    generator: torch.Generator | None = None,
    cache: KVCache | None = None,
) -> torch.Tensor:
    """Extend idx (B, T) by up to sampling.max_new_tokens tokens -> (B, T + n_new)."""
    return torch.cat([idx, *stream_tokens(model, idx, sampling, generator, cache)], dim=1)
