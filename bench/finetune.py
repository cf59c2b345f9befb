"""Fine-tuning benchmark: movie_reviews 5-class, finetune.py's default against honest baselines.

    python bench/finetune.py [--methods=full,lora,adalora] [--seeds=1337,1338,1339]
                             [--inits=pretrained,scratch] [--set="--class_weight=balanced ..."]
                             [--markdown] [--out_dir=out-bench-finetune]

The pre-trained base is finetune.py's own (`--pretrain_out`, default out-finetune-lm): reused if
it exists, else trained with train.py first (that time is reported apart). The scratch base is
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
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
except ImportError:
    sys.exit('bench/finetune.py needs scikit-learn: pip install -e ".[bench]"')

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's finetune.py and minigpt

import finetune  # noqa: E402
from minigpt.checkpoint import load_tokenizer  # noqa: E402
from minigpt.finetune.config import FinetuneConfig  # noqa: E402
from minigpt.finetune.metrics import classification_report  # noqa: E402
from minigpt.model.gpt import GPT  # noqa: E402
from minigpt.settings import parse_settings  # noqa: E402

LABEL_COLUMN = "label5"
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def scratch_base(pretrained: Path, out_dir: Path, seed: int) -> Path:
    """The pre-trained model's architecture and tokenizer with random weights."""
    config = GPT.from_pretrained(pretrained).config
    torch.manual_seed(seed)
    GPT(config).save_pretrained(out_dir, load_tokenizer(pretrained))
    return out_dir


def finetune_run(base: Path, method: str, out_dir: Path, seed: int, extra: list[str]) -> dict:
    flags = [f"--init_from={base}", f"--method={method}", f"--out_dir={out_dir}",
             f"--seed={seed}", "--progress=False", *extra]  # fmt: skip
    start = time.perf_counter()
    metrics = finetune.run(parse_settings(FinetuneConfig, flags))
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


def summary(runs: list[dict]) -> dict:
    """Mean and SD (n - 1) over the seeds of test accuracy and macro-F1."""
    out = {}
    for key in ("test_accuracy", "test_macro_f1"):
        values = [r[key] for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        out[key] = {"mean": round(statistics.fmean(values), 4), "sd": round(sd, 4)}
    return out


# ---- scikit-learn baselines --------------------------------------------------------------------


def _read(split: str, data_dir: Path) -> tuple[list[str], list[int]]:
    lines = (data_dir / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    return [r["text"] for r in rows], [int(r[LABEL_COLUMN]) for r in rows]


def tfidf_logreg(data_dir: Path, class_weight: str | None) -> dict:
    """TF-IDF (1-2-grams, min_df 2, sublinear tf) + logistic regression; C by val macro-F1."""
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        _read(s, data_dir) for s in ("train", "val", "test")
    )
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    X_train = vectorizer.fit_transform(train_x)
    X_val, X_test = vectorizer.transform(val_x), vectorizer.transform(test_x)
    labels = [str(k) for k in sorted(set(train_y))]
    best = None
    for C in C_GRID:
        model = LogisticRegression(C=C, class_weight=class_weight, max_iter=2000)
        model.fit(X_train, train_y)
        f1 = classification_report(val_y, model.predict(X_val).tolist(), labels)["macro_f1"]
        if best is None or f1 > best[0]:
            best = (f1, C, model)
    f1, C, model = best
    report = classification_report(test_y, model.predict(X_test).tolist(), labels)
    return {
        "test_accuracy": round(report["accuracy"], 4),
        "test_macro_f1": round(report["macro_f1"], 4),
        "C": C,
        "val_macro_f1": round(f1, 4),
        "features": len(vectorizer.vocabulary_),
    }


def baselines(data_dir: Path) -> dict:
    _, train_y = _read("train", data_dir)
    _, test_y = _read("test", data_dir)
    labels = [str(k) for k in sorted(set(train_y))]
    majority = max(set(train_y), key=train_y.count)
    report = classification_report(test_y, [majority] * len(test_y), labels)
    return {
        "majority": {
            "test_accuracy": round(report["accuracy"], 4),
            "test_macro_f1": round(report["macro_f1"], 4),
        },  # fmt: skip
        "tfidf_logreg": tfidf_logreg(data_dir, None),
        "tfidf_logreg_balanced": tfidf_logreg(data_dir, "balanced"),
    }


def markdown(report: dict) -> str:
    rows = ["| system | test accuracy | test macro-F1 |", "| --- | ---: | ---: |"]
    for row in report["rows"]:
        acc, f1 = row["test_accuracy"], row["test_macro_f1"]
        rows.append(f"| {row['system']} | {acc['mean']:.3f} ± {acc['sd']:.3f}"
                    f" | {f1['mean']:.3f} ± {f1['sd']:.3f} |")  # fmt: skip
    names = {"majority": "majority class", "tfidf_logreg": "TF-IDF + logistic regression",
             "tfidf_logreg_balanced": 'the same, class_weight="balanced"'}  # fmt: skip
    for key, name in names.items():
        b = report["baselines"][key]
        rows.append(f"| {name} | {b['test_accuracy']:.3f} | {b['test_macro_f1']:.3f} |")
    return "\n".join(rows)


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
        pretrained = finetune.base_model(parse_settings(FinetuneConfig, extra))
        pretrain_s = time.perf_counter() - start
        for init in args.inits.split(","):
            base = pretrained if init == "pretrained" else scratch_base(
                pretrained, out / "scratch-base", seeds[0]
            )  # fmt: skip
            for method in args.methods.split(","):
                runs = [finetune_run(base, method, out / f"{init}-{method}-{seed}", seed, extra)
                        for seed in seeds]  # fmt: skip
                system = f"{init} base, --method={method} {args.set}".strip()
                rows.append({"system": system, **summary(runs), "runs": runs})
        baseline_start = time.perf_counter()
        base_rows = baselines(ROOT / "data" / "movie_reviews")
    report = {
        "task": "movie_reviews label5 (5 classes), fixed test split",
        "command": "python bench/finetune.py " + shlex.join(sys.argv[1:]),
        "base": {"path": str(pretrained), "pretrain_or_reuse_s": round(pretrain_s, 1)},
        "rows": rows,
        "baselines": base_rows,
        "baselines_wall_time_s": round(time.perf_counter() - baseline_start, 1),
        "host": {"cpu_threads": torch.get_num_threads(), "load_avg": os.getloadavg(),
                 "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "total_wall_time_s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    print(markdown(report) if args.markdown else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
