"""Decode speed of a GPT-2-124M-shaped model (random weights): KV cache vs none, fp32 vs bf16.

Batch-1 decoding streams every weight once per token, so it is bound by memory bandwidth, not
FLOPs. The bound is measured in the same run: a matrix-vector product over a matrix with as many
bytes as the model's weights. Prints one JSON object.

    python bench/generate.py [--device cpu] [--new_tokens 128] [--prompt 16] [--batches 1,8]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import minigpt


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_matvec(n_bytes: int, dtype: torch.dtype, device: torch.device):
    """y = W x over a W of n_bytes: a token's cost if it were one pass over the weights."""
    cols = 768
    rows = n_bytes // (cols * torch.finfo(dtype).bits // 8)
    W = torch.randn(rows, cols, dtype=dtype, device=device)
    x = torch.randn(cols, dtype=dtype, device=device)
    return lambda: W @ x


def seconds(fn, device: torch.device, repeats: int = 1) -> float:
    """Median wall time of `repeats` calls of fn."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def decode_vs_bound(
    model: minigpt.GPT, matvec, batch: int, args: argparse.Namespace, device: torch.device
) -> dict:
    """Cached, uncached and bound speeds. Memory bandwidth drifts on a shared host, so each
    cached run is paired with a bound measurement taken right before it; the fraction of the
    bound is the median over those pairs."""
    idx = torch.randint(0, 50257, (batch, args.prompt), device=device)

    def generate(n: int, use_cache: bool) -> None:
        model.generate(idx, n, temperature=0, use_cache=use_cache)

    generate(2, True)  # warm-up: kernels, allocator, thread pool
    matvec()
    bound, cached = [], []
    for _ in range(args.rounds):
        bound.append(1.0 / seconds(matvec, device, repeats=5))
        cached.append(args.new_tokens / seconds(lambda: generate(args.new_tokens, True), device))
    uncached = args.new_tokens / seconds(lambda: generate(args.new_tokens, False), device)
    fractions = sorted(c / b for c, b in zip(cached, bound, strict=True))
    cached_tok_s = sorted(cached)[len(cached) // 2]
    return {
        "bandwidth_bound_tok_s": round(sorted(bound)[len(bound) // 2], 2),
        "cache_tok_s": round(cached_tok_s, 2), "no_cache_tok_s": round(uncached, 2),
        "cache_speedup": round(cached_tok_s / uncached, 2),
        # batch rows share one weight pass, so only batch 1 is compared with the bound
        "fraction_of_bound": round(fractions[len(fractions) // 2], 3) if batch == 1 else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        model = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2")).to(device, dtype).eval()
        n_bytes = weight_bytes(model)
        matvec = make_matvec(n_bytes, dtype, device)
        for batch in (int(b) for b in args.batches.split(",")):
            row = {"dtype": str(dtype).removeprefix("torch."), "batch": batch,
                   "weight_MB": round(n_bytes / 1e6, 1)}  # fmt: skip
            results.append({**row, **decode_vs_bound(model, matvec, batch, args, device)})
            print(json.dumps(results[-1]), flush=True)
    summary = {
        "bench": "generate", "model": "gpt2 (124M, random weights)", "device": str(device),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "prompt": args.prompt, "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "results": results,
    }  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
