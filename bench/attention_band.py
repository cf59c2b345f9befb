"""Banded ("local") attention: SDPA with a dense band mask vs FlexAttention's block-sparse window.

A local layer lets query i see keys j with i - window < j <= i. With a dense boolean mask SDPA
still computes all T x T scores (and on CUDA cannot use the flash kernel); FlexAttention skips
the 128 x 128 blocks that lie wholly outside the band, so its work grows as T * window instead of
T^2. This measures forward + backward of both at GPT-Neo's window (256) over several lengths and
prints JSON, so minigpt keeps whichever is faster on the device at hand. FlexAttention has no
backward on CPU (torch 2.13), so there the two are compared on the forward pass only.

    python bench/attention_band.py [--device cuda] [--dtype bfloat16] [--lengths 1024,2048,4096]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F
from common import host
from timing import wall

from minigpt.model.attention import visible_keys


def timed(fn, device: torch.device, steps: int) -> float:
    """Seconds per call of fn, over `steps` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    return wall(lambda: [fn() for _ in range(steps)], device) / steps


def make_flex(T: int, window: int, device: torch.device):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def band(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (q_idx - kv_idx < window)

    block_mask = create_block_mask(band, B=None, H=None, Q_LEN=T, KV_LEN=T, device=device)
    compiled = torch.compile(flex_attention)
    return lambda q, k, v: compiled(q, k, v, block_mask=block_mask)


def measure(T: int, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    train = device.type != "cpu"
    shape = (args.batch, args.heads, T, 64)
    q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=train) for _ in "qkv")
    mask = visible_keys(T, T, args.window, device=device)
    flex = make_flex(T, args.window, device)

    def dense(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def step(attend) -> None:
        out = attend(q, k, v)
        if train:
            out.sum().backward()

    with torch.no_grad():
        gap = (flex(q, k, v) - dense(q, k, v)).abs().max().item()
    dense_s = timed(lambda: step(dense), device, args.steps)
    flex_s = timed(lambda: step(flex), device, args.steps)
    return {
        "T": T, "dense_mask_ms": round(dense_s * 1e3, 3), "flex_ms": round(flex_s * 1e3, 3),
        "flex_speedup": round(dense_s / flex_s, 2), "max_abs_diff": gap,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--lengths", default="1024,2048,4096")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    results = []
    for T in (int(t) for t in args.lengths.split(",")):
        results.append(measure(T, args, device, dtype))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    summary = {
        "bench": "attention_band", "device": str(device), "dtype": args.dtype,
        "window": args.window, "batch": args.batch, "heads": args.heads, "head_dim": 64,
        "backward": device.type != "cpu", "host": host(), "results": results,
    }  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
