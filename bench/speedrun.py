"""Speedrun: wall time of `python train.py`'s default recipe against the plain nanoGPT-recipe loop,
each to its val loss on shakespeare_char. Prints one JSON object.

- baseline: bench/plain_loop.py's loop at nanoGPT's CPU quick config (4 layers, 4 heads, 128
  wide, block 64, batch 12, AdamW lr 1e-3, warmup + cosine, 2000 iters, fp32). It reaches its
  own final val loss at its last step, so its time to target is the whole run.
- minigpt: `Trainer(TrainConfig())`, every default of `python train.py` (only out_dir and the
  closing sample changed), timed from construction to the end of `train()`: startup, the dtype
  probe, every periodic eval and checkpoint included.

Both finished models are then scored on the same held-out val batches (not timed). The target is
`--target` (1.88); `speedup` = baseline seconds / minigpt seconds. With --rounds > 1 the two
alternate order each round and each keeps its fastest round.

A whole run takes minutes, and on a shared host the load can drift between the two. So the bench
also times single optimizer steps of both recipes in interleaved rounds (bench/timing) and reports
`speedup_at_equal_load` = (baseline iters x its step time) / (minigpt iters x its step time):
the same race with the load drift taken out (and minigpt's startup and evals left out).

    python bench/speedrun.py [--rounds 1] [--target 1.88]
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
from pathlib import Path

from common import host
from plain_loop import PlainLoop, val_loss
from timing import interleaved

from minigpt.data.prepare import ensure_dataset
from minigpt.device import DeviceConfig, dtype_name
from minigpt.paths import dataset_dir
from minigpt.train.config import TrainConfig
from minigpt.train.trainer import Trainer

DATA = dataset_dir("shakespeare_char")
# nanoGPT's documented CPU run (config/cpu_quick.toml), in fp32
QUICK = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
             optimizer="adamw", learning_rate=1e-3, min_lr=1e-4, beta1=0.9, beta2=0.99,
             warmup_iters=100, max_iters=2000, lr_decay_iters=2000,
             compute=DeviceConfig("cpu", "float32"))  # fmt: skip
VAL_BATCHES = 50  # of 32 x block_size tokens, fixed seed: the same text scores both models


def baseline_run(host_trainer: Trainer, models: dict) -> None:
    """The plain loop's 2000 steps; `host_trainer` (built untimed) only lends it the data."""
    plain = PlainLoop(host_trainer, compile=False)
    for _ in range(host_trainer.cfg.max_iters):
        plain.step()
    models["baseline"] = (plain.model, host_trainer)


def minigpt_run(out_dir: Path, models: dict) -> None:
    config = TrainConfig(out_dir=str(out_dir), data_dir=str(DATA), sample_tokens=0,
                         progress=False)  # fmt: skip
    trainer = Trainer(config)
    trainer.train()
    models["minigpt"] = (trainer.model, trainer)


def step_times(host_trainer: Trainer, args: argparse.Namespace) -> dict[str, float]:
    """Best seconds per optimizer step of each recipe, timed in interleaved rounds."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        ours = Trainer(TrainConfig(out_dir=tmp, data_dir=str(DATA), progress=False))
        plain = PlainLoop(host_trainer, compile=False)

        def steps(step) -> Callable[[], None]:
            return lambda: [step() for _ in range(args.steps)][-1].item()

        loops = {"baseline": steps(plain.step), "minigpt": steps(ours.step)}
        for loop in loops.values():
            loop()  # warm up
        times = interleaved(loops, args.step_rounds)
    return {name: min(t) / args.steps for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--target", type=float, default=1.88)
    parser.add_argument("--steps", type=int, default=20, help="steps per round of step timing")
    parser.add_argument("--step_rounds", type=int, default=4)
    args = parser.parse_args()
    ensure_dataset(DATA)
    models: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        quick = TrainConfig(out_dir=tmp, data_dir=str(DATA), **QUICK)
        host_trainer = Trainer(quick)
        runs = {
            "baseline": lambda: baseline_run(host_trainer, models),
            "minigpt": lambda: minigpt_run(Path(tmp) / "minigpt", models),
        }
        load_before = host()["load_avg_1_5_15m"]
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's log lines
            times = interleaved(runs, args.rounds)
        per_step = step_times(host_trainer, args)
    report = {"command": " ".join(["python", *sys.argv]), "host": host(),
              "load_avg_at_start": load_before, "target_val_loss": args.target}  # fmt: skip
    for name, (model, trainer) in models.items():
        config = trainer.cfg
        report[name] = {
            "seconds": round(min(times[name]), 1),
            "val_loss": round(val_loss(model, trainer, VAL_BATCHES), 4),
            "iters": config.max_iters, "batch_size": config.batch_size,
            "optimizer": config.optimizer, "dtype": dtype_name(trainer.dtype),
        }  # fmt: skip
    report["minigpt"]["reached_target"] = report["minigpt"]["val_loss"] <= args.target
    report["speedup"] = round(report["baseline"]["seconds"] / report["minigpt"]["seconds"], 3)
    for name, seconds in per_step.items():
        report[name]["step_ms_interleaved"] = round(seconds * 1e3, 2)
    work = {name: report[name]["iters"] * per_step[name] for name in per_step}
    report["speedup_at_equal_load"] = round(work["baseline"] / work["minigpt"], 3)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
