"""Training-step speed (forward + backward) and MFU: fused SDPA attention vs the explicit math.

MFU = tokens/s * (6 N + 12 L H Q T) / peak, with the peak measured in the same run for a CPU
(a square matmul in the same dtype) or taken from minigpt.train.perf's table for a known GPU.
Prints one JSON object.

    python bench/forward.py [--device cpu] [--steps 10] [--dtypes float32,bfloat16]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from common import host
from timing import median, wall

import minigpt
from minigpt.device import dtype_name
from minigpt.train.perf import device_peak_flops, flops_per_token, matmul_params, mfu

# nanoGPT's "baby GPT" for shakespeare_char: the small config this bench reports by default.
BABY = dict(vocab_size=128, block_size=256, n_layer=6, n_head=6, n_embd=384)


def step_time(model: minigpt.GPT, idx: torch.Tensor, dtype: torch.dtype, steps: int) -> float:
    """Median seconds of one forward + backward at `dtype` (autocast below fp32)."""
    autocast = torch.autocast(idx.device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step() -> None:
        with autocast:
            loss = model(idx, idx).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(2):  # warm up kernels and allocator
        step()
    return median([wall(step, idx.device) for _ in range(steps)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = minigpt.GPTConfig(**BABY)
    model = minigpt.GPT(cfg).to(device)
    idx = torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.block_size), device=device)
    fpt = flops_per_token(cfg, matmul_params(model), cfg.block_size)
    results = []
    for dtype in (getattr(torch, name) for name in args.dtypes.split(",")):
        peak = device_peak_flops(device, dtype)
        for impl in ("sdpa", "math"):
            for block in model.h:
                block.attn.impl = impl
            tokens_per_s = idx.numel() / step_time(model, idx, dtype, args.steps)
            results.append({
                "dtype": dtype_name(dtype), "attn_impl": impl,
                "tokens_per_s": round(tokens_per_s), "mfu": round(mfu(tokens_per_s, fpt, peak), 4),
                "peak_tflops": round(peak / 1e12, 3),
            })  # fmt: skip
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    summary = {
        "bench": "forward+backward", "config": BABY, "batch_size": args.batch_size,
        "device": str(device), "host": host(),
        "flops_per_token": fpt, "results": results,
    }  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
