"""Decode speed of a GPT-2-124M-shaped model (random weights): KV cache vs none, fp32 vs bf16.

Batch-1 decoding streams every weight once per token, so it is bound by memory bandwidth, not
FLOPs. The bound is measured in the same run: a matrix-vector product over a matrix with as many
bytes as the model's weights. Prints one JSON object.

    python bench/generate.py [--device cpu] [--new_tokens 128] [--prompt 16]
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


def matvec_bound_tokens_per_s(n_bytes: int, dtype: torch.dtype, device: torch.device) -> float:
    """Tokens/s if a token cost exactly one pass over n_bytes of weights (y = W x)."""
    cols = 768
    rows = n_bytes // (cols * torch.finfo(dtype).bits // 8)
    W = torch.randn(rows, cols, dtype=dtype, device=device)
    x = torch.randn(cols, dtype=dtype, device=device)
    return 1.0 / _best_time(lambda: W @ x, device)


def _best_time(fn, device: torch.device, repeats: int = 7) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]  # median: robust to a noisy neighbour


def decode_tokens_per_s(
    model: minigpt.GPT, batch: int, prompt: int, new_tokens: int, use_cache: bool
) -> float:
    """Generated tokens per second per sequence (prefill included, as a user sees it)."""
    device = next(model.parameters()).device
    idx = torch.randint(0, 50257, (batch, prompt), device=device)

    def run():
        model.generate(idx, new_tokens, temperature=0, use_cache=use_cache)

    return new_tokens / _best_time(run, device, repeats=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        model = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2")).to(device, dtype).eval()
        n_bytes = weight_bytes(model)
        bound = matvec_bound_tokens_per_s(n_bytes, dtype, device)
        for batch in (int(b) for b in args.batches.split(",")):
            cached = decode_tokens_per_s(model, batch, args.prompt, args.new_tokens, True)
            uncached = decode_tokens_per_s(model, batch, args.prompt, args.new_tokens, False)
            results.append({
                "dtype": str(dtype).removeprefix("torch."), "batch": batch,
                "weight_MB": round(n_bytes / 1e6, 1),
                "bandwidth_bound_tok_s": round(bound, 2),
                "cache_tok_s": round(cached, 2), "no_cache_tok_s": round(uncached, 2),
                "cache_speedup": round(cached / uncached, 2),
                # batch rows share one weight pass, so only batch 1 is compared with the bound
                "fraction_of_bound": round(cached / bound, 3) if batch == 1 else None,
            })  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
    summary = {
        "bench": "generate", "model": "gpt2 (124M, random weights)", "device": str(device),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "prompt": args.prompt, "new_tokens": args.new_tokens,
        "results": results,
    }  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
