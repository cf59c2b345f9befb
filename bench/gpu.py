"""Everything that needs a CUDA GPU, in one run: the CUDA-only tests, then the GPU benches.

Sized for one H100/H200-class GPU in under 8 minutes. Each step runs as its own process and
writes its JSON (stdout) to OUT_DIR/<step>.json and its log (stderr) to OUT_DIR/<step>.log:

    tests             pytest -m cuda: math vs SDPA attention on CUDA, cached decode, measured
                      peak; a skipped test counts as a failure
    train_gpt2        GPT-2 124M training, bf16, torch.compile, fused AdamW: tokens/s and MFU
                      against the plain PyTorch loop (bench/train.py)
    attention_band    FlexAttention vs the dense band mask, forward + backward, max abs diff
    decode            batch-1 cached decode tok/s against the HBM bandwidth bound

Every step runs even if an earlier one failed (a GPU day is short); at the end a failed step is
named and the script exits 1. Without a CUDA GPU it prints one line and exits 2.

    python bench/gpu.py --out_dir DIR [--steps tests,decode] [--list]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PY = sys.executable

# name -> (command, time limit in seconds); the limits add up to under 8 minutes
STEPS: dict[str, tuple[list[str], int]] = {
    "tests": ([PY, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider"], 90),
    "train_gpt2": ([PY, "bench/train.py", "--configs", "gpt2", "--compile", "on",
                    "--dtypes", "bfloat16", "--steps", "10", "--rounds", "3"], 210),
    "attention_band": ([PY, "bench/attention_band.py", "--device", "cuda",
                        "--dtype", "bfloat16", "--lengths", "1024,2048,4096,8192"], 60),
    "decode": ([PY, "bench/generate.py", "--device", "cuda", "--batches", "1",
                "--new_tokens", "256"], 90),
}  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", help="folder for <step>.json and <step>.log (created)")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma list of steps to run")
    parser.add_argument("--list", action="store_true", help="print the steps' commands and exit")
    args = parser.parse_args(argv)
    args.steps = args.steps.split(",")
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step {unknown[0]!r}; choose from {', '.join(STEPS)}")
    if not args.list and not args.out_dir:
        parser.error("--out_dir is required: the folder where each step's JSON goes")
    return args


def run_step(name: str, out_dir: Path) -> str:
    """Run one step; return '' on success, else why it failed."""
    command, limit = STEPS[name]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return f"took longer than {limit} s"
    log, json_path = out_dir / f"{name}.log", out_dir / f"{name}.json"
    if name == "tests":  # pytest reports in text: keep it, and write the verdict as JSON
        log.write_text(done.stdout + done.stderr)
        lines = done.stdout.strip().splitlines()
        summary = lines[-1] if lines else ""
        json_path.write_text(json.dumps({"passed": done.returncode == 0, "summary": summary}))
        if "skipped" in summary or "no tests ran" in summary:
            return f"CUDA tests were skipped or missing: {summary}"
    else:
        log.write_text(done.stderr)
        json_path.write_text(done.stdout)
    if done.returncode != 0:
        return f"exit status {done.returncode} (see {log})"
    if name != "tests":
        try:
            json.loads(done.stdout)
        except json.JSONDecodeError:
            return f"printed no JSON object (see {json_path})"
    print(f"{name}: ok in {time.perf_counter() - start:.0f} s", flush=True)
    return ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name in args.steps:
            command, limit = STEPS[name]
            print(f"{name} (limit {limit} s): {' '.join(command[1:])}")
        return 0
    import torch  # after argument checks, so --help and --list stay instant

    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA GPU here (torch.cuda.is_available() is False); nothing run")
        return 2
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"{torch.cuda.get_device_name()}; writing to {out_dir}", flush=True)
    failures = {name: why for name in args.steps if (why := run_step(name, out_dir))}
    for name, why in failures.items():
        print(f"FAILED {name}: {why}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
