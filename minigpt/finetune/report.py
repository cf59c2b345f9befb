"""What a fine-tuning run reports: metrics.json, the printed summary, and its two plots.

metrics.json holds the method, the parameter counts, the data sizes, every epoch's validation
scores, the test split's full classification report (minigpt.finetune.metrics) and two baselines
that any classifier must beat: the majority class, and the untrained head on the same base.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minigpt.checkpoint import write_json
from minigpt.finetune.classifier import GPTClassifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.data import Splits
from minigpt.finetune.loop import EvalResult, Finetuner
from minigpt.finetune.metrics import classification_report, format_report, majority_baseline
from minigpt.finetune.peft import count_params
from minigpt.finetune.plot import CONFUSION_FILE, CURVES_FILE, plot_confusion, plot_learning_curves

METRICS_FILE = "metrics.json"


def build_report(
    cfg: FinetuneConfig,
    model: GPTClassifier,
    splits: Splits,
    finetuner: Finetuner,
    history: list[dict[str, Any]],
    untrained: EvalResult,
    test: EvalResult,
    wall_time_s: float,
) -> dict[str, Any]:
    """The contents of metrics.json."""
    trainable, total = count_params(model)
    labels, names = splits.labels, splits.label_names
    return {
        "method": dataclasses.asdict(model.method),
        "base": str(model.base_dir),
        "trainable_params": trainable,
        "total_params": total,
        "data": {
            name: {"texts": len(d), "truncated": d.n_truncated, "class_counts": d.class_counts()}
            for name, d in splits.items()
        },
        "label_names": list(names),
        "epochs": history,
        "best_epoch": finetuner.best_epoch,
        "baselines": {
            "majority": majority_baseline(splits.train.class_counts(), test.y_true, names),
            "untrained_head": summary(untrained, labels),
        },
        "test": {"loss": test.loss, **classification_report(test.y_true, test.y_pred, labels)},
        **({"adalora": finetuner.ranks} if finetuner.ranks else {}),
        "wall_time_s": wall_time_s,
        "config": dataclasses.asdict(cfg),
    }


def summary(result: EvalResult, labels: Sequence[str]) -> dict[str, float]:
    """Loss, accuracy and macro-F1 of one evaluation."""
    report = classification_report(result.y_true, result.y_pred, labels)
    return {"loss": result.loss, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def print_report(metrics: dict[str, Any], names: Sequence[str]) -> None:
    test, base = metrics["test"], metrics["baselines"]
    if "adalora" in metrics:
        ranks = metrics["adalora"]
        print(f"AdaLoRA total rank {ranks['initial_total_rank']} -> {ranks['final_total_rank']}")
    print(f"---- test set (best epoch {metrics['best_epoch']}) ----")
    print(f"loss {test['loss']:.4f}")
    print(format_report(test, names))
    majority, untrained = base["majority"], base["untrained_head"]
    print(
        f"baselines: majority class ({majority['label']}) accuracy {majority['accuracy']:.4f}"
        f" macro-F1 {majority['macro_f1']:.4f}; untrained head accuracy"
        f" {untrained['accuracy']:.4f} macro-F1 {untrained['macro_f1']:.4f}"
    )


def write_report(metrics: dict[str, Any], names: Sequence[str], out_dir: Path) -> None:
    """metrics.json, then confusion.png and learning_curves.png (or a note without matplotlib)."""
    write_json(out_dir / METRICS_FILE, metrics)
    print(f"saved the classifier and {METRICS_FILE} to {out_dir}")
    try:
        plot_confusion(metrics["test"]["confusion_matrix"], names, out_dir / CONFUSION_FILE)
        plot_learning_curves(metrics["epochs"], out_dir / CURVES_FILE)
    except ImportError as e:
        print(f"no plots: {e}")
        return
    print(f"plots: {out_dir / CONFUSION_FILE}, {out_dir / CURVES_FILE}")
