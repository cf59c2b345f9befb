"""minigpt's train.py against nanoGPT's own train.py, side by side on the same data and host.

    python bench/nanogpt.py --nanogpt=DIR [--runs=nanogpt,adamw,speedrun] [--load=0,1]
                            [--rounds=1] [--out_dir=out-bench-nanogpt]

DIR is a checkout of github.com/karpathy/nanoGPT. Every run is a fresh process, timed whole
(start-up, data, evaluations and checkpoints included), on this checkout's shakespeare_char
(nanoGPT gets the same token ids as its train.bin / val.bin / meta.pkl, in a scratch folder):

    nanogpt    nanoGPT's README CPU command (config/train_shakespeare_char.py, 4 x 128, block 64,
               batch 12, AdamW lr 1e-3, 2000 iterations, eval_iters 20)
    adamw      the same command line given to minigpt's train.py, plus --optimizer=adamw (its
               default is Muon) and --sample_tokens=0 (nanoGPT prints no sample)
    speedrun   `python train.py --sample_tokens=0`: minigpt's default recipe

Each --load value N runs the candidates beside N busy-loop processes (bench/common.busy_loops),
alternating their order every round. Prints JSON: per load and run, the wall seconds of every
round, the last val loss each printed, and ratios to nanogpt.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import busy_loops, host

from minigpt.data.bins import load_meta
from minigpt.data.prepare import ensure_dataset
from minigpt.paths import CHECKOUT, dataset_dir

README_FLAGS = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1",
                "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000",
                "--dropout=0.0"]  # fmt: skip
NANOGPT_FILES = ("train.py", "model.py", "configurator.py")
VAL_LOSS = re.compile(r"val loss (\d+\.\d+)")


def nanogpt_workdir(nanogpt: Path, out_dir: Path) -> Path:
    """A folder where nanoGPT's train.py runs as in its checkout (it reads configurator.py and
    data/<dataset> from the working directory), with our shakespeare_char as its data."""
    work = out_dir / "nanogpt-run"
    data = work / "data" / "shakespeare_char"
    data.mkdir(parents=True, exist_ok=True)
    for name in NANOGPT_FILES:
        shutil.copy(nanogpt / name, work / name)
    ours = dataset_dir("shakespeare_char")
    meta = load_meta(ours)
    for split in ("train", "val"):  # nanoGPT reads uint16 token ids
        ids = np.fromfile(ours / f"{split}.bin", dtype=np.dtype(meta["dtype"]))
        ids.astype(np.uint16).tofile(data / f"{split}.bin")
    # nanoGPT reads its vocabulary size from a pickle; written here, never read by minigpt
    with open(data / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": meta["vocab_size"]}, f)
    return work


def commands(nanogpt: Path, work: Path, out_dir: Path) -> dict[str, tuple[list[str], Path]]:
    config = str(nanogpt / "config" / "train_shakespeare_char.py")
    train = str(CHECKOUT / "train.py")
    ours = ["--progress=False", "--sample_tokens=0"]
    return {
        "nanogpt": ([sys.executable, "train.py", config, *README_FLAGS,
                     f"--out_dir={out_dir / 'nanogpt'}"], work),
        "adamw": ([sys.executable, train, config, *README_FLAGS, "--optimizer=adamw", *ours,
                   f"--out_dir={out_dir / 'adamw'}"], CHECKOUT),
        "speedrun": ([sys.executable, train, *ours, f"--out_dir={out_dir / 'speedrun'}"],
                     CHECKOUT),
    }  # fmt: skip


def timed_run(command: list[str], cwd: Path, log: Path) -> dict:
    out_dir = next(Path(a.split("=", 1)[1]) for a in command if a.startswith("--out_dir="))
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run each time: nanoGPT would resume
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{command[1]} failed (exit {done.returncode}); see {log}")
    losses = VAL_LOSS.findall(done.stdout)
    header = next((ln for ln in done.stdout.splitlines() if ln.startswith("model ")), "")
    return {"wall_s": round(seconds, 2), "val_loss": float(losses[-1]) if losses else None,
            "header": header}  # fmt: skip


def measure(runs: dict, load: int, rounds: int, out_dir: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {name: [] for name in runs}
    order = list(runs)
    with busy_loops(load):
        for r in range(rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                command, cwd = runs[name]
                log = out_dir / f"{name}-load{load}-round{r}.log"
                results[name].append(timed_run(command, cwd, log))
                print(f"load {load} round {r} {name}: {results[name][-1]}", file=sys.stderr)
    return results


def summary(results: dict[str, list[dict]]) -> dict:
    best = {name: min(r["wall_s"] for r in rows) for name, rows in results.items()}
    out = {name: {"runs": rows, "best_wall_s": best[name]} for name, rows in results.items()}
    if "nanogpt" in best:
        for name in best:
            out[name]["speedup_vs_nanogpt"] = round(best["nanogpt"] / best[name], 3)
            out[name]["time_fraction_of_nanogpt"] = round(best[name] / best["nanogpt"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nanogpt", required=True, type=Path, help="a nanoGPT checkout")
    parser.add_argument("--runs", default="nanogpt,adamw,speedrun")
    parser.add_argument("--load", default="0,1", help="busy-loop processes beside, per pass")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out_dir", type=Path, default=Path("out-bench-nanogpt"))
    args = parser.parse_args()
    if not (args.nanogpt / "train.py").is_file():
        parser.error(f"--nanogpt={args.nanogpt}: no train.py there; pass a nanoGPT checkout")
    args.out_dir = args.out_dir.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ensure_dataset(dataset_dir("shakespeare_char"))
    work = nanogpt_workdir(args.nanogpt.resolve(), args.out_dir)
    every = commands(args.nanogpt.resolve(), work, args.out_dir)
    runs = {name: every[name] for name in args.runs.split(",")}
    report = {"command": "python bench/nanogpt.py " + " ".join(sys.argv[1:]), "host": host()}
    for load in (int(n) for n in args.load.split(",")):
        report[f"load_{load}"] = summary(measure(runs, load, args.rounds, args.out_dir))
    report["host_after"] = host()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
