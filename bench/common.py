"""What the benches share besides timing (bench/timing.py): mean ± SD over seeds, the host line,
a random-weights base, and Markdown tables.

Benches are the package's users: they run from a checkout installed with `pip install -e .` and
import `minigpt` like any program, and each other as `python bench/NAME.py` puts bench/ first on
the path.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from minigpt.checkpoint import load_model
from minigpt.data.tokenizer import Tokenizer
from minigpt.model.config import GPTConfig
from minigpt.model.gpt import GPT

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def mean_sd(values: Iterable[float], digits: int = 4) -> dict[str, Any]:
    """{"mean", "sd" (sample, n - 1; 0 for one run), "runs"} of a metric over seeds."""
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), digits), "sd": round(sd, digits),
            "runs": [round(v, digits) for v in values]}  # fmt: skip


def test_scores(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`mean_sd` over the seeds' runs of test accuracy and macro-F1."""
    runs = list(runs)
    return {key: mean_sd(r[key] for r in runs) for key in ("test_accuracy", "test_macro_f1")}


def cpu_flags() -> list[str]:
    """Which of CPU_FLAGS this CPU has (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            words = set(f.read().split())
    except OSError:
        return []
    return [flag for flag in CPU_FLAGS if flag in words]


def native_bf16() -> bool:
    """True on a CPU that multiplies bf16 in hardware (AVX512-BF16 or AMX)."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


def cpu_model() -> str:
    """The CPU's marketing name ('model name' in /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host() -> dict[str, Any]:
    """What a reader needs to judge the numbers: CPU kind and flags, threads, torch, load."""
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg_1_5_15m": [round(x, 2) for x in os.getloadavg()],
    }


def random_base(config: GPTConfig, tokenizer: Tokenizer, out_dir: Path, seed: int) -> GPT:
    """A model of `config` with random weights (seeded), saved with `tokenizer` to out_dir: the
    no-pre-training baseline of a fine-tuning comparison."""
    torch.manual_seed(seed)
    model = GPT(config)
    model.save_pretrained(out_dir, tokenizer)
    return model


def random_twin(like: str | Path, out_dir: Path, seed: int) -> Path:
    """`random_base` with the architecture and tokenizer of the checkpoint `like`."""
    model, tokenizer = load_model(like)
    random_base(model.config, tokenizer, out_dir, seed)
    return out_dir


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; `align` gives one character per column, 'r' for right-aligned."""
    rules = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = [header, rules, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def pm(metric: dict[str, Any], fmt: str = ".3f") -> str:
    """'mean ± sd' of a mean_sd dict."""
    return f"{metric['mean']:{fmt}} ± {metric['sd']:{fmt}}"


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[None]:
    """`n` processes that each keep one core busy (a Python busy loop) while the block runs:
    the "loaded host" of a speed measurement."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
