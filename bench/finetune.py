"""Fine-tuning benchmark: movie_reviews 5-class, finetune.py's default against honest baselines.

    python bench/finetune.py [--methods=full,lora,adalora] [--seeds=1337,1338,1339]
                             [--inits=pretrained,scratch] [--set="--class_weight=balanced ..."]
                             [--markdown] [--out_dir=out-bench-finetune]

The pre-trained base is finetune.py's own (`--pretrain_out`, default out-finetune-mlm): reused if
it exists, else pre-trained first (that time is reported apart). The scratch base is
the same architecture with fresh random weights. Every (base, method, seed) runs finetune.py's
`run` with its defaults plus `--set`; each row reports the mean and SD over the seeds of test
accuracy and macro-F1. lora (r = 8) and adalora (12 -> 8 per weight) end at the same rank budget.

Baselines on the same fixed split, with scikit-learn (`pip install -e ".[bench]"`): the majority
class, and TF-IDF (uni+bigrams, min_df 2, sublinear tf) + logistic regression, unweighted and
with class_weight="balanced", C chosen on val macro-F1. JSON goes to stdout (the run logs to
stderr); `--markdown` prints the README's table instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from pathlib import Path

from baselines import majority, read_split, tfidf_logreg
from common import host, markdown_table, pm, random_twin, test_scores

from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.run import base_model, run
from minigpt.paths import dataset_dir
from minigpt.settings import parse_settings


def finetune_run(base: Path, method: str, out_dir: Path, seed: int, extra: list[str]) -> dict:
    flags = [f"--init_from={base}", f"--method={method}", f"--out_dir={out_dir}",
             f"--seed={seed}", "--progress=False", *extra]  # fmt: skip
    start = time.perf_counter()
    metrics = run(parse_settings(FinetuneConfig, flags))
    return {
        "seed": seed,
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
        "test_macro_f1": round(metrics["test"]["macro_f1"], 4),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "trainable_params": metrics["trainable_params"],
        "best_epoch": metrics["best_epoch"],
        "val_macro_f1_by_epoch": [round(r["val_macro_f1"], 4) for r in metrics["epochs"]],
        **({"total_rank": metrics["adalora"]["final_total_rank"]} if "adalora" in metrics else {}),
    }


def baselines(data_dir: Path) -> dict:
    train, val, test = (read_split(data_dir / f"{s}.jsonl") for s in ("train", "val", "test"))
    return {
        "majority": majority(train, test),
        "tfidf_logreg": tfidf_logreg(train, val, test, None),
        "tfidf_logreg_balanced": tfidf_logreg(train, val, test, "balanced"),
    }


def markdown(report: dict) -> str:
    rows = [(row["system"], pm(row["test_accuracy"]), pm(row["test_macro_f1"]))
            for row in report["rows"]]  # fmt: skip
    names = {"majority": "majority class", "tfidf_logreg": "TF-IDF + logistic regression",
             "tfidf_logreg_balanced": 'the same, class_weight="balanced"'}  # fmt: skip
    for key, name in names.items():
        b = report["baselines"][key]
        rows.append((name, f"{b['test_accuracy']:.3f}", f"{b['test_macro_f1']:.3f}"))
    return markdown_table(("system", "test accuracy", "test macro-F1"), rows, "lrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="full", help="comma-separated --method values")
    parser.add_argument("--seeds", default="1337,1338,1339")
    parser.add_argument("--inits", default="pretrained", help="pretrained and/or scratch")
    parser.add_argument("--set", default="", help="extra finetune.py flags for every run")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--out_dir", default="out-bench-finetune")
    args = parser.parse_args()
    out, extra = Path(args.out_dir), shlex.split(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    rows = []
    with contextlib.redirect_stdout(sys.stderr):  # run logs to stderr, the JSON alone to stdout
        pretrained = base_model(parse_settings(FinetuneConfig, extra))
        pretrain_s = time.perf_counter() - start
        for init in args.inits.split(","):
            base = pretrained if init == "pretrained" else random_twin(
                pretrained, out / "scratch-base", seeds[0]
            )  # fmt: skip
            for method in args.methods.split(","):
                runs = [finetune_run(base, method, out / f"{init}-{method}-{seed}", seed, extra)
                        for seed in seeds]  # fmt: skip
                system = f"{init} base, --method={method} {args.set}".strip()
                rows.append({"system": system, **test_scores(runs), "runs": runs})
        baseline_start = time.perf_counter()
        base_rows = baselines(dataset_dir("movie_reviews"))
    report = {
        "task": "movie_reviews label5 (5 classes), fixed test split",
        "command": "python bench/finetune.py " + shlex.join(sys.argv[1:]),
        "base": {"path": str(pretrained), "pretrain_or_reuse_s": round(pretrain_s, 1)},
        "rows": rows,
        "baselines": base_rows,
        "baselines_wall_time_s": round(time.perf_counter() - baseline_start, 1),
        "host": host(),
        "total_wall_time_s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    print(markdown(report) if args.markdown else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
