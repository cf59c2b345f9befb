"""Decode speed of a GPT-2-124M-shaped model (random weights): minigpt's cached greedy decode
against Hugging Face `generate` on the same weights and against the weight-streaming bound.
minigpt runs eagerly over its growing KV cache, eagerly over a static cache, and with the decode
step compiled over the static cache (`compile=True`); the compile time is the first compiled
call's wall time less a warm call's.

Batch-1 decoding streams every weight once per token, so it is bound by memory bandwidth, not
FLOPs. The bound is measured in the same run: a matrix-vector product over a matrix with as many
bytes as the model's weights. Bound, minigpt and HF are timed in interleaved rounds (bench/timing)
and each ratio is the median over rounds of that round's pair, so load drifting on a shared host
hits both sides of a ratio alike. HF runs where `transformers` is installed (the `test` extra).
Prints one JSON object on stdout (progress on stderr).

    python bench/generate.py [--device cpu] [--new_tokens 128] [--prompt 16] [--batches 1,8]
                             [--dtypes float32,bfloat16] [--rounds 3]
"""

from __future__ import annotations

# first: minigpt picks how OpenMP threads wait (minigpt/threads.py) before torch loads
import minigpt

# isort: split

import argparse
import json
import sys
import tempfile
from collections.abc import Callable

import torch
from common import host, native_bf16
from timing import interleaved, median, wall
from torch._dynamo.utils import counters

from minigpt.checkpoint import export_hf_gpt2
from minigpt.device import dtype_name
from minigpt.model.attention import StaticKVCache
from minigpt.model.generate import SamplingConfig, generate

BOUND_REPEATS = 5  # weight passes per timed bound call: one pass is too short to time alone


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def make_matvec(n_bytes: int, dtype: torch.dtype, device: torch.device) -> Callable[[], None]:
    """y = W x over a W of n_bytes, BOUND_REPEATS times: the cost of that many tokens if a
    token were one pass over the weights."""
    cols = 768
    rows = n_bytes // (cols * torch.finfo(dtype).bits // 8)
    W = torch.randn(rows, cols, dtype=dtype, device=device)
    x = torch.randn(cols, dtype=dtype, device=device)

    def passes() -> None:
        for _ in range(BOUND_REPEATS):
            W @ x

    return passes


def hf_twin(model: minigpt.GPT, dtype: torch.dtype, device: torch.device):
    """The same weights as a transformers GPT2LMHeadModel, or None without transformers."""
    try:
        from transformers import GPT2LMHeadModel
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        export_hf_gpt2(model, tmp)
        return GPT2LMHeadModel.from_pretrained(tmp, torch_dtype=dtype).to(device).eval()


def decode_vs_bound(
    model: minigpt.GPT, hf, matvec, batch: int, args: argparse.Namespace, device: torch.device
) -> dict:
    """Tokens/s of the bound, minigpt (cached eager, static-cache eager, compiled, uncached) and
    HF, and their ratios."""
    n = args.new_tokens
    idx = torch.randint(0, 50257, (batch, args.prompt), device=device)

    def ours(use_cache: bool = True) -> torch.Tensor:
        return model.generate(idx, n, temperature=0, use_cache=use_cache)

    def static_eager() -> torch.Tensor:
        cache = StaticKVCache(model.config.n_layer, args.prompt + n - 1, device)
        return generate(model, idx, SamplingConfig(n, temperature=0), cache=cache)

    def compiled() -> torch.Tensor:
        return model.generate(idx, n, temperature=0, compile=True)

    def theirs() -> torch.Tensor:
        with torch.inference_mode():
            return hf.generate(idx, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               pad_token_id=0, attention_mask=torch.ones_like(idx))  # fmt: skip

    graphs_before = counters["stats"]["unique_graphs"]
    first_compiled_s = wall(compiled, device)
    candidates = {"bound": matvec, "minigpt": ours, "static_eager": static_eager,
                  "compiled": compiled}  # fmt: skip
    if hf is not None:
        candidates["hf"] = theirs
    for fn in candidates.values():
        fn()  # warm up: kernels, allocator, thread pool
    times = interleaved(candidates, args.rounds, device)
    tok_s = {k: [(BOUND_REPEATS if k == "bound" else n) / t for t in v] for k, v in times.items()}
    row = {
        "bandwidth_bound_tok_s": round(median(tok_s["bound"]), 2),
        "cache_tok_s": round(median(tok_s["minigpt"]), 2),
        "static_cache_eager_tok_s": round(median(tok_s["static_eager"]), 2),
        "compiled_tok_s": round(median(tok_s["compiled"]), 2),
        "no_cache_tok_s": round(n / wall(lambda: ours(use_cache=False), device), 2),
    }
    row["cache_speedup"] = round(row["cache_tok_s"] / row["no_cache_tok_s"], 2)
    for name in ("static_eager", "compiled"):
        pairs = zip(tok_s[name], tok_s["minigpt"], strict=True)
        row[f"{name}_vs_eager"] = round(median([s / e for s, e in pairs]), 3)
    row["compile_s"] = round(first_compiled_s - median(times["compiled"]), 1)
    row["graphs_compiled"] = counters["stats"]["unique_graphs"] - graphs_before  # 1: no recompiles
    row["compiled_same_tokens"] = bool(torch.equal(compiled(), ours()))
    if batch == 1:  # batch rows share one weight pass, so only batch 1 is compared with the bound
        pairs = zip(tok_s["minigpt"], tok_s["bound"], strict=True)
        row["fraction_of_bound"] = round(median([c / b for c, b in pairs]), 3)
    if hf is not None:
        row["hf_tok_s"] = round(median(tok_s["hf"]), 2)
        pairs = zip(tok_s["minigpt"], tok_s["hf"], strict=True)
        row["minigpt_vs_hf"] = round(median([c / h for c, h in pairs]), 3)
        row["same_tokens_as_hf"] = bool(torch.equal(ours(), theirs()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results = []
    for dtype in (getattr(torch, name) for name in args.dtypes.split(",")):
        model = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2")).to(device).eval()
        hf = hf_twin(model, dtype, device)
        model.to(dtype)
        n_bytes = weight_bytes(model)
        matvec = make_matvec(n_bytes, dtype, device)
        for batch in (int(b) for b in args.batches.split(",")):
            row = {"dtype": dtype_name(dtype), "batch": batch,
                   "weight_MB": round(n_bytes / 1e6, 1)}  # fmt: skip
            results.append({**row, **decode_vs_bound(model, hf, matvec, batch, args, device)})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    summary = {
        "bench": "generate", "model": "gpt2 (124M, random weights)", "device": str(device),
        "native_bf16": device.type == "cuda" or native_bf16(), "host": host(),
        "prompt": args.prompt, "new_tokens": args.new_tokens, "rounds": args.rounds,
        "results": results,
    }  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
