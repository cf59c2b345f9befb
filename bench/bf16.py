"""bf16 against fp32 for train.py's own step (default optimizer, Muon), and what dtype=auto picks.

    python bench/bf16.py [--configs quick,baby] [--steps 3] [--rounds 5] [--auto_trials 3]

For each config a float32 and a bfloat16 Trainer time whole optimizer steps in interleaved rounds
(bench/timing); `bf16_speedup` is the ratio of their median step times, and the Newton-Schulz
share is timed apart on the config's own hidden matrices in both dtypes. Then `auto_trials` fresh
`dtype=auto` decisions (minigpt.device.choose_dtype over the Trainer's probe) are taken, and each
is checked against the measured speedup: `picked_slower_by` is how much slower the dtype it kept
is than the other (0 when it kept the faster one). Only meaningful with native bf16; elsewhere
auto is float32 by rule and the JSON says so.

Configs: `quick` is train.py's default model (4 x 128, block 64, batch 12); `baby` is nanoGPT's
baby GPT (6 x 384, block 256) at batch 8, so a CPU step takes about a second.
"""

from __future__ import annotations

# first: minigpt picks how OpenMP threads wait (minigpt/threads.py) before torch loads
import minigpt  # noqa: F401

# isort: split

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Callable

import torch
from common import host
from timing import interleaved, median, wall

from minigpt.data.prepare import ensure_dataset
from minigpt.device import DeviceConfig, choose_dtype, dtype_name, native_bf16
from minigpt.paths import dataset_dir
from minigpt.train.config import TrainConfig
from minigpt.train.muon import hidden_matrices, orthogonalize
from minigpt.train.precision import training_probe
from minigpt.train.trainer import Trainer

CONFIGS = {
    "quick": {},  # train.py's defaults
    "baby": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=8, dropout=0.2),
}
DTYPES = ("float32", "bfloat16")


def trainer(name: str, dtype: str, out_dir: str) -> Trainer:
    config = TrainConfig(out_dir=out_dir, compute=DeviceConfig("cpu", dtype), progress=False,
                         sample_tokens=0, **CONFIGS[name])  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr):
        return Trainer(config)


def steps(run: Trainer, n: int) -> Callable[[], None]:
    return lambda: [run.step() for _ in range(n)][-1].item()


def newton_schulz_seconds(run: Trainer, rounds: int) -> dict[str, float]:
    """Median seconds of one step's orthogonalizations (matrices of one shape batched, as Muon
    runs them) in each dtype."""
    hidden, _ = hidden_matrices(run.model)
    by_shape: dict[torch.Size, list[torch.Tensor]] = {}
    for p in hidden:
        by_shape.setdefault(p.shape, []).append(torch.randn_like(p))
    batches = [torch.stack(same) for same in by_shape.values()]

    def orthogonalize_all(dtype: torch.dtype) -> Callable[[], object]:
        return lambda: [orthogonalize(b, 5, dtype) for b in batches]

    calls = {name: orthogonalize_all(getattr(torch, name)) for name in DTYPES}
    times = interleaved(calls, rounds)
    return {dtype: round(median(t), 5) for dtype, t in times.items()}


def auto_decisions(run: Trainer, trials: int, speedup: float) -> list[dict]:
    """Fresh dtype=auto decisions over the run's probe, each judged by the measured speedup."""
    cfg = run.cfg
    probe = training_probe(run.model, run.build_optimizer, cfg.batch_size, cfg.block_size,
                           run.device)  # fmt: skip
    faster = "bfloat16" if speedup > 1 else "float32"
    out = []
    for _ in range(trials):
        choice = choose_dtype("auto", run.device, probe)
        picked = dtype_name(choice.dtype)
        slower_by = 0.0 if picked == faster else abs(speedup - 1) / min(speedup, 1)
        out.append({"picked": picked, "reason": choice.reason,
                    "picked_slower_by": round(slower_by, 3)})  # fmt: skip
    return out


def bench(name: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runs = {dtype: trainer(name, dtype, f"{tmp}/{dtype}") for dtype in DTYPES}
        for run in runs.values():
            wall(steps(run, 1))  # warm up: allocator, kernel selection
        timed = interleaved({d: steps(r, args.steps) for d, r in runs.items()}, args.rounds)
        step_s = {d: median(t) / args.steps for d, t in timed.items()}
        speedup = step_s["float32"] / step_s["bfloat16"]
        result = {
            "config": {k: getattr(runs["float32"].cfg, k) for k in
                       ("n_layer", "n_embd", "block_size", "batch_size", "optimizer")},
            "step_ms": {d: round(1e3 * s, 1) for d, s in step_s.items()},
            "bf16_speedup": round(speedup, 3),
            "newton_schulz_s_per_step": newton_schulz_seconds(runs["float32"], args.rounds),
            "ns_dtype_when_training_bf16": str(runs["bfloat16"].optimizer.muon.ns_dtype),
        }  # fmt: skip
        result["auto"] = auto_decisions(runs["float32"], args.auto_trials, speedup)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="quick,baby")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per timed call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--auto_trials", type=int, default=3)
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON alone
        ensure_dataset(dataset_dir("shakespeare_char"))
    report = {"command": "python bench/bf16.py " + " ".join(sys.argv[1:]), "host": host(),
              "native_bf16": native_bf16(torch.device("cpu")), "configs": {}}  # fmt: skip
    for name in args.configs.split(","):
        report["configs"][name] = bench(name, args)
        print(json.dumps({name: report["configs"][name]}), file=sys.stderr, flush=True)
    report["host_after"] = host()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
