"""Training throughput: minigpt's Trainer vs a plain PyTorch loop of the same model. Prints JSON.

For each config and each (dtype, compile) variant both loops train the same minigpt.GPT on the
same data with AdamW and gradient clipping; the timed work is whole optimizer steps (batch
sampling, forward, backward, clip, update). The two loops alternate in rounds and each keeps its
best round, so a burst of load from other processes on a shared machine hits both alike.
tokens/s counts B x T tokens per step; MFU = tokens/s x (6N + 12 L H Q T) / peak
(minigpt.train.perf: table peak for known GPUs, measured matmul peak otherwise).

Configs: `quick` (nanoGPT's documented CPU run), `baby` (nanoGPT's baby GPT; on a CPU its batch
is cut to --baby_cpu_batch so a step takes seconds, not minutes), `gpt2` (GPT-2 124M, GPU only).
bf16 runs only on a CPU with native bf16 (AVX512-BF16 or AMX) or a GPU; elsewhere the JSON says why
it was skipped, with both measured matmul peaks. Where it runs, `bf16_speedup` is each loop's fp32
step time over its bf16 step time.

`--quality_iters N` also trains both loops for N steps at the quick config (the cosine schedule
over N) and reports their val loss on the same held-out batches.

    python bench/train.py [--configs quick,baby] [--compile both|off|on] [--dtypes float32]
                          [--quality_iters 2000] [--load N]

`--load N` measures on a loaded host: N busy-loop processes start first, then the bench runs in a
fresh process beside them, so it chooses its OpenMP wait policy (minigpt/threads.py) as a
user's run on that host would. The JSON's `load` says how many ran.
"""

from __future__ import annotations

# first: minigpt picks how OpenMP threads wait (minigpt/threads.py) before torch loads
import minigpt  # noqa: F401

# isort: split

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from common import busy_loops, host, native_bf16
from plain_loop import PlainLoop, val_loss
from timing import interleaved, wall

from minigpt.data.prepare import ensure_dataset
from minigpt.device import DeviceConfig, dtype_name, measure_matmul_peak, resolve_device
from minigpt.paths import dataset_dir
from minigpt.train.config import TrainConfig
from minigpt.train.perf import device_peak_flops, flops_per_token, matmul_params
from minigpt.train.trainer import Trainer

CONFIGS = {
    "quick": dict(dataset="shakespeare_char", n_layer=4, n_head=4, n_embd=128, block_size=64,
                  batch_size=12, dropout=0.0, learning_rate=1e-3, min_lr=1e-4, beta2=0.99,
                  warmup_iters=100),
    "baby": dict(dataset="shakespeare_char", n_layer=6, n_head=6, n_embd=384, block_size=256,
                 batch_size=64, dropout=0.2, learning_rate=1e-3, min_lr=1e-4, beta2=0.99,
                 warmup_iters=100),
    "gpt2": dict(dataset="shakespeare", n_layer=12, n_head=12, n_embd=768, block_size=1024,
                 batch_size=12, dropout=0.0, bias=True, learning_rate=6e-4, min_lr=6e-5,
                 warmup_iters=100),
}  # fmt: skip


def timed(step, steps: int) -> Callable[[], None]:
    """`steps` optimizer steps, reading the last loss (which waits for them all)."""

    def run() -> None:
        for _ in range(steps):
            loss = step()
        loss.item()

    return run


def make_config(
    name: str, args: argparse.Namespace, dtype: str, compile: bool, iters: int
) -> TrainConfig:
    overrides = dict(CONFIGS[name])
    if name == "baby" and args.device_type == "cpu":
        overrides["batch_size"] = args.baby_cpu_batch
    # AdamW, not the Muon default: the plain loop's optimizer, so both run one recipe
    return TrainConfig(
        out_dir=str(Path(args.out_dir) / name), data_dir=str(dataset_dir(overrides["dataset"])),
        compute=DeviceConfig(args.device, dtype), compile=compile, max_iters=iters,
        lr_decay_iters=iters, progress=False, sample_tokens=0, optimizer="adamw", **overrides,
    )  # fmt: skip


def bench_variant(name: str, args: argparse.Namespace, dtype: str, compile: bool) -> dict:
    cfg = make_config(name, args, dtype, compile, iters=1000)
    torch.manual_seed(0)
    ours = Trainer(cfg)
    plain = PlainLoop(ours, compile)
    device = ours.device
    for step in (ours.step, plain.step):  # warm up: compile, allocator, thread pools
        wall(timed(step, args.warmup), device)
    loops = {"minigpt": timed(ours.step, args.steps), "baseline": timed(plain.step, args.steps)}
    best = {impl: min(times) for impl, times in interleaved(loops, args.rounds, device).items()}
    peak = device_peak_flops(device, ours.dtype)
    if device.type != "cuda":  # a measured peak: the best of a few, like the loops
        peak = max(measure_matmul_peak.__wrapped__(device, ours.dtype) for _ in range(3))
    tokens = cfg.batch_size * cfg.block_size * args.steps
    fpt = flops_per_token(ours.model.config, matmul_params(ours.model), cfg.block_size)
    result = {"dtype_setting": dtype, "dtype": dtype_name(ours.dtype),
              "compile": compile,
              "batch_size": cfg.batch_size, "block_size": cfg.block_size}  # fmt: skip
    for impl, seconds in best.items():
        tok_s = tokens / seconds
        result[impl] = {"tokens_per_s": round(tok_s, 1), "mfu": round(tok_s * fpt / peak, 4)}
    result["minigpt_vs_baseline"] = round(best["baseline"] / best["minigpt"], 3)
    return result


def quality(args: argparse.Namespace) -> dict:
    """Both loops trained for quality_iters steps at the quick config, fp32, same schedule."""
    cfg = make_config("quick", args, "float32", False, iters=args.quality_iters)
    torch.manual_seed(0)
    ours = Trainer(cfg)
    plain = PlainLoop(ours, compile=False)
    out = {"iters": args.quality_iters}
    for impl, loop in (("minigpt", ours), ("baseline", plain)):
        seconds = wall(timed(loop.step, args.quality_iters), ours.device)
        out[impl] = {"val_loss": round(val_loss(loop.model, ours, 50), 4),
                     "seconds": round(seconds, 1)}  # fmt: skip
    return out


def add_bf16_speedup(runs: list[dict]) -> None:
    """Each bf16 run's speed over the fp32 run with the same compile setting, per loop."""
    fp32 = {r["compile"]: r for r in runs if r["dtype"] == "float32"}
    for run in runs:
        base = fp32.get(run["compile"])
        if run["dtype"] == "bfloat16" and base:
            run["bf16_speedup"] = {
                impl: round(run[impl]["tokens_per_s"] / base[impl]["tokens_per_s"], 3)
                for impl in ("minigpt", "baseline")
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="quick,baby", help="comma list of quick, baby, gpt2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", default="both", choices=("both", "off", "on"))
    parser.add_argument(
        "--dtypes", default="", help="comma list; default float32 (+ bfloat16 where native)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--baby_cpu_batch", type=int, default=8)
    parser.add_argument("--quality_iters", type=int, default=0)
    parser.add_argument("--out_dir", default="/tmp/minigpt-bench-train")
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes beside")
    parser.add_argument("--beside_load", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load and not args.beside_load:  # start the load, then the bench in a new process
        with busy_loops(args.load):
            command = [sys.executable, __file__, *sys.argv[1:], "--beside_load"]
            sys.exit(subprocess.run(command).returncode)
    device = resolve_device(args.device)
    args.device_type = device.type
    for dataset in {CONFIGS[n]["dataset"] for n in args.configs.split(",")}:
        ensure_dataset(dataset_dir(dataset))
    fast_bf16 = device.type == "cuda" or (device.type == "cpu" and native_bf16())
    dtypes = args.dtypes.split(",") if args.dtypes else ["float32"] + ["bfloat16"] * fast_bf16
    compiles = {"both": [False, True], "off": [False], "on": [True]}[args.compile]
    report = {
        "command": " ".join(["python", *sys.argv]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "host": host(),
        "load": args.load,
        "configs": {},
    }
    if not fast_bf16:
        report["bfloat16_skipped"] = (
            "this CPU has no native bf16 (no avx512_bf16 or amx_bf16): bf16 matmul runs at "
            f"{measure_matmul_peak(device, torch.bfloat16, size=256, seconds=0.2) / 1e9:.1f} "
            f"GFLOP/s vs {measure_matmul_peak(device, torch.float32) / 1e9:.1f} fp32"
        )
    for name in args.configs.split(","):
        if name == "gpt2" and device.type != "cuda":
            report["configs"][name] = "skipped: GPT-2 124M is benchmarked on a GPU only"
            continue
        runs = []
        for dtype in dtypes:
            for compile in compiles:
                runs.append(bench_variant(name, args, dtype, compile))
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)  # progress
        report["configs"][name] = runs
        add_bf16_speedup(runs)
    if args.quality_iters:
        report["quality_quick"] = quality(args)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
