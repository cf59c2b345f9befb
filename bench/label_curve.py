"""Label efficiency: test macro-F1 against the number of labelled reviews, for the default's
pre-trained base (head swap and prompt), the same model from random weights, and TF-IDF.

    python bench/label_curve.py [--budgets=100,300,1000,3000,8480] [--seeds=3] [--json]
                                [--quick] [--ensemble] [--set="--class_weight=balanced ..."]
                                [--out_dir=out-bench-label-curve]

1. One base: finetune.py's default pre-training (a masked LM over gpt2:4096,
   config/movie_reviews_mlm.toml), reused from --pretrain_out when it is there. `--quick`
   pre-trains a tiny one instead and runs budgets 100 and 300 with one seed.
2. For each budget n and seed s, n reviews drawn at random from the train split (seeded by s;
   the whole split when n >= 8,480). Every system sees that subset; val and test are whole:
       pretrained      finetune.py's default fine-tuning of the base (head swap, mean pooling,
                       the epoch with the best val macro-F1 kept)
       prompt          the same with --readout=prompt (label words through the LM head)
       scratch         pretrained's recipe on the base's architecture with random weights
       tfidf           TF-IDF + logistic regression, C on val macro-F1 (bench/baselines.py)
       tfidf_balanced  the same with class_weight="balanced"
   Fewer labels get more epochs, so that every run takes at least MIN_STEPS optimizer steps:
   epochs = clamp(ceil(MIN_STEPS * batch_size / n), EPOCHS, MAX_EPOCHS). `--set` adds
   finetune.py flags to the three fine-tuned systems (a lever; give it its own --out_dir).
   `--ensemble` adds a row per fine-tuned system and budget that averages the test logits of its
   seeds' classifiers, z = (1/S) sum_s z_s (one classifier's worth of labels, S times the compute).
3. Each run's result is kept in out_dir/runs/<n>-<system>-<s>.json and reused, so an interrupted
   curve continues and budgets run as separate commands can be put together by a last one.

Prints a Markdown table of macro-F1 (accuracy) per budget and system, or with `--json` the
report {"rows": [{"budget", "system", "test_accuracy": {"mean", "sd", "runs"},
"test_macro_f1": {...}}], "host", "command", ...}; writes out_dir/label_curve.png (plot extra).
Run logs go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from baselines import read_split, tfidf_logreg
from common import host, markdown_table, pm, random_twin, test_scores

from minigpt.data import LabelledTextDataset
from minigpt.finetune.classifier import load_classifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.metrics import classification_report
from minigpt.finetune.run import base_model, run
from minigpt.paths import dataset_dir
from minigpt.settings import parse_settings

REVIEWS = dataset_dir("movie_reviews")
SYSTEMS = ("pretrained", "prompt", "scratch", "tfidf", "tfidf_balanced")
FINE_TUNED = SYSTEMS[:3]
FIRST_SEED = 1337
EPOCHS, MAX_EPOCHS, MIN_STEPS, BATCH = 3, 32, 100, 32
# --quick: a 1-layer, 32-wide masked LM pre-trained for 30 steps
QUICK_PRETRAIN = (
    "--n_layer=1 --n_head=2 --n_embd=32 --batch_size=8 --max_iters=30 --lr_decay_iters=30"
    " --warmup_iters=3 --eval_iters=2 --progress=False"
)


def subset(n: int, seed: int, out_dir: Path) -> Path:
    """A file of n train-split reviews drawn with `seed` (the split itself when n covers it)."""
    rows = (REVIEWS / "train.jsonl").read_text(encoding="utf-8").splitlines()
    if n >= len(rows):
        return REVIEWS / "train.jsonl"
    path = out_dir / "subsets" / f"train-{n}-{seed}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(random.Random(seed).sample(rows, n)) + "\n", encoding="utf-8")
    return path


def epochs_for(n: int, max_epochs: int) -> int:
    return min(max(math.ceil(MIN_STEPS * BATCH / n), EPOCHS), max_epochs)


def fine_tune(base: Path, train: Path, out_dir: Path, seed: int, flags: list[str]) -> dict:
    cfg = parse_settings(FinetuneConfig, [
        f"--init_from={base}", f"--train_file={train}", f"--out_dir={out_dir}", f"--seed={seed}",
        f"--batch_size={BATCH}", "--progress=False", *flags,
    ])  # fmt: skip
    test = run(cfg)["test"]
    return {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"]}


def run_system(
    system: str, n: int, seed: int, base: Path, out_dir: Path, max_epochs: int, extra: list[str]
) -> dict:
    """One (system, budget, seed) run, from out_dir/runs when it was done before."""
    record = out_dir / "runs" / f"{n}-{system}-{seed}.json"
    if record.is_file():
        return json.loads(record.read_text())
    train, start = subset(n, seed, out_dir), time.perf_counter()
    if system.startswith("tfidf"):
        splits = [read_split(p) for p in (train, REVIEWS / "val.jsonl", REVIEWS / "test.jsonl")]
        result = tfidf_logreg(*splits, "balanced" if system == "tfidf_balanced" else None)
    else:
        flags = [f"--epochs={epochs_for(n, max_epochs)}", *extra]
        flags += ["--readout=prompt"] if system == "prompt" else []
        if system == "scratch":
            base = random_twin(base, out_dir / "scratch-bases" / str(seed), seed)
        classifier = out_dir / "classifiers" / f"{n}-{system}-{seed}"
        result = fine_tune(base, train, classifier, seed, flags)
    result = {**result, "wall_time_s": round(time.perf_counter() - start, 1)}
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(result, indent=1))
    return result


@torch.no_grad()
def test_logits(classifier_dir: Path) -> tuple[torch.Tensor, list[int]]:
    """(N, K) test-split logits of a saved classifier, and the true class indices."""
    model, tokenizer = load_classifier(classifier_dir)
    model.eval()
    test = LabelledTextDataset(
        REVIEWS / "test.jsonl", tokenizer, label_column="label5", labels=model.labels,
        max_len=model.gpt.config.block_size,
    )  # fmt: skip
    batches = torch.utils.data.DataLoader(test, 64, collate_fn=test.collate)
    logits = torch.cat([model(b.input_ids, b.lengths).logits for b in batches])
    return logits, [label for _, label in test]


def seed_ensemble(system: str, n: int, seeds: list[int], out_dir: Path) -> dict[str, Any]:
    """Test scores of the mean logits of `system`'s classifiers over `seeds` at budget n."""
    runs = [test_logits(out_dir / "classifiers" / f"{n}-{system}-{s}") for s in seeds]
    mean = torch.stack([logits for logits, _ in runs]).mean(0)  # (N, K)
    labels = [str(k) for k in range(mean.size(1))]
    report = classification_report(runs[0][1], mean.argmax(-1).tolist(), labels)
    return {"budget": n, "system": f"{system}, mean logits of {len(seeds)} seeds",
            **test_scores([{"test_accuracy": report["accuracy"],
                        "test_macro_f1": report["macro_f1"]}])}  # fmt: skip


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Macro-F1 against labels (log x), one line per system with a band of one SD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for system in SYSTEMS:
        own = [r for r in rows if r["system"] == system]
        x = [r["budget"] for r in own]
        mean = [r["test_macro_f1"]["mean"] for r in own]
        sd = [r["test_macro_f1"]["sd"] for r in own]
        ax.plot(x, mean, marker="o", label=system)
        ax.fill_between(x, [m - s for m, s in zip(mean, sd, strict=True)],
                        [m + s for m, s in zip(mean, sd, strict=True)], alpha=0.2)  # fmt: skip
    ax.set(xscale="log", xlabel="labelled training reviews", ylabel="test macro-F1",
           title="movie_reviews, 5 classes: macro-F1 against labels")  # fmt: skip
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(rows: list[dict[str, Any]]) -> str:
    """Budgets down, systems across: 'macro-F1 mean ± SD (accuracy mean)'."""
    budgets = sorted({r["budget"] for r in rows})
    systems = list(dict.fromkeys(r["system"] for r in rows))
    cell = {(r["budget"], r["system"]): r for r in rows}

    def text(r: dict[str, Any]) -> str:
        return f"{pm(r['test_macro_f1'])} ({r['test_accuracy']['mean']:.3f})"

    table = [(f"{n:,}", *(text(cell[n, s]) for s in systems)) for n in budgets]
    return markdown_table(("labels", *systems), table, "r")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="100,300,1000,3000,8480")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per point (quick: 1)")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument("--quick", action="store_true", help="tiny base, budgets 100 and 300")
    parser.add_argument("--ensemble", action="store_true", help="rows of seed-averaged logits")
    parser.add_argument("--set", default="", help="extra finetune.py flags (fine-tuned systems)")
    parser.add_argument("--pretrain_out", default=FinetuneConfig.pretrain_out)
    parser.add_argument("--out_dir", default="out-bench-label-curve")
    args = parser.parse_args()
    out, extra = Path(args.out_dir), shlex.split(args.set)
    budgets = [100, 300] if args.quick else [int(n) for n in args.budgets.split(",")]
    seeds = [FIRST_SEED + i for i in range(1 if args.quick else args.seeds)]
    pretrain = [f"--pretrain_out={out / 'quick-base' if args.quick else args.pretrain_out}"]
    pretrain += [f"--pretrain_args={QUICK_PRETRAIN}"] if args.quick else []
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # run logs to stderr, the report alone to stdout
        base = base_model(parse_settings(FinetuneConfig, pretrain))
        max_epochs = 2 if args.quick else MAX_EPOCHS
        rows = []
        for n in budgets:
            for system in SYSTEMS:
                runs = [run_system(system, n, s, base, out, max_epochs, extra) for s in seeds]
                rows.append({"budget": n, "system": system, **test_scores(runs)})
        if args.ensemble:
            rows += [seed_ensemble(s, n, seeds, out) for n in budgets for s in FINE_TUNED]
    report = {
        "rows": rows,
        "host": host(),
        "command": "python bench/label_curve.py " + shlex.join(sys.argv[1:]),
        "base": str(base),
        "seeds": seeds,
        "epochs": {n: epochs_for(n, max_epochs) for n in budgets},
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    try:
        plot(rows, out / "label_curve.png")
    except ImportError as e:
        print(f"no plot: {e}", file=sys.stderr)
    print(json.dumps(report, indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
