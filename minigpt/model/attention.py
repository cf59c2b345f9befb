"""Self-attention, written out: causal, bidirectional or prefix visibility, rotary embeddings,
banded layers, padding and a KV cache.

For one head with queries Q (T x D), keys K (S x D) and values V (S x D):

    scores = Q K^T * scale                      scale = 1/sqrt(D), or 1 for GPT-Neo
    scores[i, j] = -inf  where key j is not visible to query i
    A = softmax(scores, dim=-1)                 (computed in fp32)
    Y = A V

Query i sits at absolute position p_i = i + o, o the number of keys stored before it: with a KV
cache the keys include the o earlier tokens, and o = S - T unless the keys are a static cache's
every slot (then o is the cache's length and the empty slots j >= o + T are never visible, since
every clause below needs j <= p_i or j < o + P_b with P_b <= T). Key j is visible to query i of
batch row b when

    visible[b, i, j] = (j <= p_i  or  j < o + P_b)          causal part, or inside the prefix
                       and |p_i - j| < W                     banded ("local") layers only
                       and (j < o + L_b  or  j == p_i)       padding hidden (non-causal modes)

with P_b = prefix_len[b] the row's prefix (the attention modes of GPTConfig):

    causal         P_b = 0       each token sees itself and the past (GPT)
    bidirectional  P_b = T       every token sees every token (BERT)
    prefix         P_b given     the first P_b tokens see each other; later ones see the prefix
                                 and the earlier tokens (T5's prefix LM)

W = window_size, and L_b = lengths[b] the real tokens of a right-padded row. Causal attention
needs no padding mask (no real token sees a later one); in the other modes a real query must not
see the padding, and a padding query keeps its own key so no row of A is empty.

Heads run in parallel as a batch dimension: tensors are (B, H, T, D); the output of all heads is
concatenated back to (B, T, C) and mixed by the output projection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minigpt.model.config import GPTConfig


def visible_keys(
    n_query: int,
    n_key: int,
    window: int | None = None,
    prefix_len: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    device: torch.device | None = None,
    offset: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Boolean mask of the module docstring, True where query i sees key j: (T, S), or
    (B, 1, T, S) when prefix_len P or lengths L (each (B,) or (1,)) are given. None for P means
    P_b = 0 (causal); None for L means no padding. offset o (an int or a 0-d tensor): keys stored
    before the first query; None means S - T."""
    if offset is None:
        offset = n_key - n_query  # o: keys already in the cache
    query_pos = offset + torch.arange(n_query, device=device)[:, None]  # p_i, (T, 1)
    key_pos = torch.arange(n_key, device=device)[None, :]  # j, (1, S)
    visible = key_pos <= query_pos  # (T, S)
    if prefix_len is not None:
        visible = visible | (key_pos < offset + prefix_len.view(-1, 1, 1, 1))  # (B, 1, T, S)
    if window is not None:
        visible = visible & ((query_pos - key_pos).abs() < window)
    if lengths is not None:
        real = key_pos < offset + lengths.view(-1, 1, 1, 1)
        visible = visible & (real | (key_pos == query_pos))
    return visible


class Rotary(nn.Module):
    """Rotary position embedding, GPT-J style: rotate interleaved channel pairs.

    Channels (2j, 2j+1) of the first R = rotary_dim channels of a head at position t are turned by
    the angle  theta_{t,j} = t * base^(-2j / R):

        x'_{2j}   = x_{2j} cos(theta) - x_{2j+1} sin(theta)
        x'_{2j+1} = x_{2j+1} cos(theta) + x_{2j} sin(theta)

    so q.k depends on positions only through their difference. Channels past R pass through.
    """

    def __init__(self, rotary_dim: int, max_len: int, base: float) -> None:
        super().__init__()
        self.rotary_dim = rotary_dim
        inv_freq = base ** (-torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim)
        theta = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (max_len, R/2)
        self.register_buffer("cos", theta.cos(), persistent=False)
        self.register_buffer("sin", theta.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int | torch.Tensor) -> torch.Tensor:
        """x: (B, H, T, D) at positions start..start+T-1 -> same shape, rotated. start may be a
        0-d tensor (a static cache's position), so it is an index, not a slice bound."""
        T, R = x.size(2), self.rotary_dim
        positions = start + torch.arange(T, device=x.device)  # (T,)
        cos = self.cos[positions].to(x.dtype)  # (T, R/2)
        sin = self.sin[positions].to(x.dtype)
        pairs = x[..., :R].unflatten(-1, (R // 2, 2))  # (B, H, T, R/2, 2)
        x_even, x_odd = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((x_even * cos - x_odd * sin, x_odd * cos + x_even * sin), dim=-1)
        return torch.cat((rotated.flatten(-2), x[..., R:]), dim=-1)


class KVCache:
    """Key/value buffers for incremental decoding (prefill, then a token a step).

    Each layer gets its own (B, H, max_len, D) buffers, allocated on its first write with the
    dtype of the keys (so bf16 under autocast). Writes are differentiable, so learned prefixes
    (prefix tuning) can be written first and trained through. `length` counts the stored tokens;
    the first `n_prefix` are prefixes that take no position, so token positions start after them.
    `update` hands attention the stored slots only, so its shapes grow a token a step.
    """

    def __init__(self, n_layer: int, max_len: int, n_prefix: int = 0) -> None:
        self.max_len = max_len
        self.n_prefix = n_prefix
        self.length: int | torch.Tensor = 0
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    @property
    def position(self) -> int | torch.Tensor:
        """Position index (learned or rotary) of the next token to be written."""
        return self.length - self.n_prefix

    def reset(self) -> None:
        """Forget the tokens but keep the prefixes."""
        self.length = self.n_prefix

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, T, D) after the stored tokens; return all keys/values (B, H, S, D)."""
        end = self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} tokens > max_len={self.max_len}")
        self._allocate(layer, k)
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n_tokens: int) -> None:
        """Mark n_tokens more as stored; the model calls this once all layers have written."""
        self.length += n_tokens

    def _allocate(self, layer: int, k: torch.Tensor) -> None:
        """Give `layer` buffers for the batch size and dtype of k (B, H, T, D)."""
        B, H, _, D = k.shape
        buf = self.k[layer]
        if buf is not None and (buf.shape[0], buf.dtype) == (B, k.dtype):
            return
        if buf is not None and self.length:  # reallocating would drop the stored tokens
            raise ValueError(
                f"KV cache holds {int(self.length)} tokens of batch {buf.shape[0]} in {buf.dtype};"
                f" cannot append batch {B} in {k.dtype} (cast the prefixes, or use a new cache)"
            )
        shape = (B, H, self.max_len, D)
        self.k[layer] = self._new_buffer(shape, k)
        self.v[layer] = self._new_buffer(shape, k)

    @staticmethod
    def _new_buffer(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        # uninitialised: attention reads only the slots written so far
        return torch.empty(shape, dtype=like.dtype, device=like.device)


class StaticKVCache(KVCache):
    """A KV cache whose shapes never change, so that a compiled decode step runs for every token.

    `length` is a 0-d tensor on the model's device; `update` writes the new keys at slots
    length..length+T-1 in place and returns every slot (B, H, max_len, D). Attention hides the
    empty slots with its mask (visible_keys with offset = length), and they hold zeros, so the
    exactly-zero weights on them meet zeros, never uninitialised NaNs. A position read on the
    host would sync the device each step, so the cache checks no overflow: its caller counts
    the tokens (the sampling loop of minigpt.model.generate does).
    """

    def __init__(
        self, n_layer: int, max_len: int, device: torch.device | str, n_prefix: int = 0
    ) -> None:
        super().__init__(n_layer, max_len, n_prefix)
        self.length = torch.tensor(0, device=device)  # the prefixes are written like tokens

    def reset(self) -> None:
        self.length.fill_(self.n_prefix)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, T, D) at the next T slots; return every slot (B, H, max_len, D)."""
        self._allocate(layer, k)
        slots = self.length + torch.arange(k.size(2), device=k.device)  # (T,)
        self.k[layer].index_copy_(2, slots, k)
        self.v[layer].index_copy_(2, slots, v)
        return self.k[layer], self.v[layer]

    @staticmethod
    def _new_buffer(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)


class SelfAttention(nn.Module):
    """Multi-head self-attention with the config's visibility (causal, bidirectional or prefix)
    and a choice of implementation ("math" or "sdpa")."""

    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        C = config.n_embd
        qkv_bias = config.bias if config.qkv_bias is None else config.qkv_bias
        proj_bias = config.bias if config.attn_proj_bias is None else config.attn_proj_bias
        self.c_attn = nn.Linear(C, 3 * C, bias=qkv_bias)  # q, k, v projections in one matmul
        self.c_proj = nn.Linear(C, C, bias=proj_bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout
        self.layer = layer
        self.n_head = config.n_head
        self.scale = 1.0 / math.sqrt(config.head_dim) if config.scale_attn else 1.0
        self.window = config.window_size if config.layer_type(layer) == "local" else None
        self.mode = config.attention
        self.impl = config.attn_impl

    def forward(
        self,
        x: torch.Tensor,
        rotary: Rotary | None = None,
        cache: KVCache | None = None,
        prefix_len: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, C); prefix_len (B,) only for prefix models; lengths (B,) real tokens of
        right-padded rows (used by the non-causal modes) -> (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, H, T, D): each head attends independently
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        start = cache.position if cache is not None else 0
        if rotary is not None:
            q, k = rotary(q, start), rotary(k, start)
        offset = 0  # o: keys stored before these queries
        if cache is not None:
            offset = cache.length
            k, v = cache.update(self.layer, k, v)  # (B, H, S, D), S = o + T or a static max_len
        if self.mode == "bidirectional":
            prefix_len = torch.full((1,), T, device=x.device)  # P_b = T: the whole call
        if self.mode == "causal":
            lengths = None  # no real token sees the padding after it anyway
        attend = self._attend_math if self.impl == "math" else self._attend_sdpa
        y = attend(q, k, v, offset, prefix_len, lengths)  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))

    def _attend_math(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        offset: int | torch.Tensor,
        prefix_len: torch.Tensor | None,
        lengths: torch.Tensor | None,
    ) -> torch.Tensor:
        """The equations of the module docstring, one line each."""
        T, S = q.size(2), k.size(2)
        scores = (q @ k.transpose(-2, -1)).float() * self.scale  # (B, H, T, S), fp32
        mask = visible_keys(T, S, self.window, prefix_len, lengths, q.device, offset)
        scores = scores.masked_fill(~mask, float("-inf"))
        att = F.softmax(scores, dim=-1).to(v.dtype)
        att = F.dropout(att, p=self.dropout, training=self.training)
        return att @ v

    def _attend_sdpa(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        offset: int | torch.Tensor,
        prefix_len: torch.Tensor | None,
        lengths: torch.Tensor | None,
    ) -> torch.Tensor:
        """Fused kernel, given no mask where none is needed (the fastest kernels need none).
        `is_causal=True` aligns the mask top-left, which is right only when the queries are all
        the keys (T == S); otherwise pass the bottom-right aligned mask. A static cache's keys
        include empty slots (its offset is a tensor), which only the mask hides."""
        T, S = q.size(2), k.size(2)
        dropout = self.dropout if self.training else 0.0
        banded = self.window is not None and self.window < S
        plain = not banded and lengths is None and isinstance(offset, int)
        if plain and prefix_len is None and T == S:  # causal (a prefix model without a prefix)
            return F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout, is_causal=True, scale=self.scale
            )
        sees_all = self.mode == "bidirectional" or T == 1  # one new token sees every stored key
        mask = None
        if not (plain and sees_all):
            mask = visible_keys(T, S, self.window, prefix_len, lengths, q.device, offset)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, scale=self.scale
        )
