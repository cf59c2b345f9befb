"""Training throughput: minigpt's Trainer vs a plain PyTorch loop of the same model. Prints JSON.

For each config and each (dtype, compile) variant both loops train the same minigpt.GPT on the
same data with AdamW and gradient clipping; the timed work is whole optimizer steps (batch
sampling, forward, backward, clip, update). The two loops alternate in rounds and each keeps its
best round, so a burst of load from other processes on a shared machine hits both alike.
tokens/s counts B x T tokens per step; MFU = tokens/s x (6N + 12 L H Q T) / peak
(minigpt.train.perf: table peak for known GPUs, measured matmul peak otherwise).

Configs: `quick` (nanoGPT's documented CPU run), `baby` (nanoGPT's baby GPT; on a CPU its batch
is cut to --baby_cpu_batch so a step takes seconds, not minutes), `gpt2` (GPT-2 124M, GPU only).
bf16 runs only where bf16 matmul is fast (minigpt.train.precision's "auto" test); elsewhere the JSON
says why it was skipped, with both measured peaks.

`--quality_iters N` also trains both loops for N steps at the quick config (the cosine schedule
over N) and reports their val loss on the same held-out batches.

    python bench/train.py [--configs quick,baby] [--compile both|off|on] [--quality_iters 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train.py; see the comment there

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's minigpt, wherever the bench is run from

from minigpt.data import TokenSampler  # noqa: E402
from minigpt.data.prepare import ensure_dataset  # noqa: E402
from minigpt.train.config import TrainConfig  # noqa: E402
from minigpt.train.optim import lr_at  # noqa: E402
from minigpt.train.perf import (  # noqa: E402
    device_peak_flops,
    flops_per_token,
    matmul_params,
    measure_matmul_peak,
)
from minigpt.train.precision import autocast, resolve_device, resolve_dtype  # noqa: E402
from minigpt.train.trainer import Trainer  # noqa: E402

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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """The baseline: what a careful user writes in a notebook. One AdamW over all parameters,
    nanoGPT-style random windows from a memmap, autocast, backward, clip, step."""

    def __init__(self, trainer: Trainer, compile: bool) -> None:
        cfg = trainer.cfg
        torch.manual_seed(cfg.seed)
        self.model = type(trainer.model)(trainer.model.config).to(trainer.device)
        self.runner = torch.compile(self.model) if compile else self.model
        self.cfg, self.device, self.dtype = cfg, trainer.device, trainer.dtype
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
            weight_decay=cfg.weight_decay, fused=self.device.type == "cuda",
        )  # fmt: skip
        self.data = np.memmap(trainer.data_dir / "train.bin", dtype=trainer.meta["dtype"], mode="r")
        self.iter_num = 0

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = self.cfg.batch_size, self.cfg.block_size
        ix = torch.randint(len(self.data) - T, (B,)).tolist()
        x = torch.stack([torch.from_numpy(self.data[i : i + T].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(self.data[i + 1 : i + 1 + T].astype(np.int64)) for i in ix]
        )
        return x.to(self.device), y.to(self.device)

    def step(self) -> torch.Tensor:
        cfg = self.cfg
        lr = lr_at(self.iter_num, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters,
                   cfg.lr_decay_iters)  # fmt: skip
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self.batch()
        with autocast(self.device, self.dtype):
            loss = self.runner(x, y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.iter_num += 1
        return loss.detach()


def timed(step, steps: int, device: torch.device) -> float:
    """Seconds for `steps` optimizer steps, waiting for the device at the end."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    sync(device)
    return time.perf_counter() - start


def make_config(
    name: str, args: argparse.Namespace, dtype: str, compile: bool, iters: int
) -> TrainConfig:
    overrides = dict(CONFIGS[name])
    if name == "baby" and args.device_type == "cpu":
        overrides["batch_size"] = args.baby_cpu_batch
    return TrainConfig(
        out_dir=str(Path(args.out_dir) / name), data_dir=str(ROOT / "data" / overrides["dataset"]),
        device=args.device, dtype=dtype, compile=compile, max_iters=iters, lr_decay_iters=iters,
        progress=False, sample_tokens=0, **overrides,
    )  # fmt: skip


def bench_variant(name: str, args: argparse.Namespace, dtype: str, compile: bool) -> dict:
    cfg = make_config(name, args, dtype, compile, iters=1000)
    torch.manual_seed(0)
    ours = Trainer(cfg)
    plain = PlainLoop(ours, compile)
    device = ours.device
    for step in (ours.step, plain.step):  # warm up: compile, allocator, thread pools
        timed(step, args.warmup, device)
    best = {"minigpt": float("inf"), "baseline": float("inf")}
    peak = device_peak_flops(device, ours.dtype)
    loops = [("minigpt", ours.step), ("baseline", plain.step)]
    for r in range(args.rounds):
        for impl, step in loops if r % 2 == 0 else loops[::-1]:  # neither always goes first
            best[impl] = min(best[impl], timed(step, args.steps, device))
        if device.type != "cuda":  # a measured peak: keep the best of every round, like the loops
            peak = max(peak, measure_matmul_peak.__wrapped__(device, ours.dtype))
    tokens = cfg.batch_size * cfg.block_size * args.steps
    fpt = flops_per_token(ours.model.config, matmul_params(ours.model), cfg.block_size)
    result = {"dtype": str(ours.dtype).removeprefix("torch."), "compile": compile,
              "batch_size": cfg.batch_size, "block_size": cfg.block_size}  # fmt: skip
    for impl, seconds in best.items():
        tok_s = tokens / seconds
        result[impl] = {"tokens_per_s": round(tok_s, 1), "mfu": round(tok_s * fpt / peak, 4)}
    result["minigpt_vs_baseline"] = round(best["baseline"] / best["minigpt"], 3)
    return result


def val_loss(model: torch.nn.Module, trainer: Trainer, batches: int) -> float:
    sampler = TokenSampler(
        trainer.data_dir / "val.bin", trainer.cfg.block_size, 32,
        dtype=trainer.meta["dtype"], seed=1234, device=trainer.device,
    )  # fmt: skip
    model.eval()
    with torch.no_grad():
        losses = [model(*sampler.get_batch()).loss.item() for _ in range(batches)]
    return float(np.mean(losses))


def quality(args: argparse.Namespace) -> dict:
    """Both loops trained for quality_iters steps at the quick config, fp32, same schedule."""
    cfg = make_config("quick", args, "float32", False, iters=args.quality_iters)
    torch.manual_seed(0)
    ours = Trainer(cfg)
    plain = PlainLoop(ours, compile=False)
    out = {"iters": args.quality_iters}
    for impl, loop in (("minigpt", ours), ("baseline", plain)):
        start = time.perf_counter()
        timed(loop.step, args.quality_iters, ours.device)
        out[impl] = {"val_loss": round(val_loss(loop.model, ours, 50), 4),
                     "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="quick,baby", help="comma list of quick, baby, gpt2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", default="both", choices=("both", "off", "on"))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--baby_cpu_batch", type=int, default=8)
    parser.add_argument("--quality_iters", type=int, default=0)
    parser.add_argument("--out_dir", default="/tmp/minigpt-bench-train")
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.device_type = device.type
    for dataset in {CONFIGS[n]["dataset"] for n in args.configs.split(",")}:
        ensure_dataset(ROOT / "data" / dataset)
    fast_bf16 = resolve_dtype("auto", device) == torch.bfloat16
    dtypes = ["float32", "bfloat16"] if fast_bf16 else ["float32"]
    compiles = {"both": [False, True], "off": [False], "on": [True]}[args.compile]
    report = {
        "command": " ".join(["python", *sys.argv]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "configs": {},
    }
    if not fast_bf16:
        report["bfloat16_skipped"] = (
            "bf16 matmul is emulated here: measured peak "
            f"{measure_matmul_peak(device, torch.bfloat16, size=256, seconds=0.2) / 1e9:.1f} "
            f"GFLOP/s bf16 vs {measure_matmul_peak(device, torch.float32) / 1e9:.1f} fp32"
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
    if args.quality_iters:
        report["quality_quick"] = quality(args)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
