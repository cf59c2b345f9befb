"""Classification metrics, all read off one confusion matrix.

M[i, j] counts the examples of true class i that were predicted as class j. Then

    accuracy    = sum_k M[k, k] / sum_ij M[i, j]
    precision_k = M[k, k] / sum_i M[i, k]        of the texts predicted k, the share that are k
    recall_k    = M[k, k] / sum_j M[k, j]        of the texts that are k, the share found
    F1_k        = 2 precision_k recall_k / (precision_k + recall_k)
    macro-F1    = (1/K) sum_k F1_k

Macro-F1 weighs every class the same, so on an imbalanced task a model that ignores the rare
classes scores poorly even when its accuracy looks fine. A ratio with a zero denominator (a class
never predicted, or absent) counts as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """M (K x K) with M[i, j] = #examples of class i predicted as j."""
    M = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(M, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return M


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    M = confusion_matrix(y_true, y_pred, len(labels))
    hits = np.diag(M).astype(np.float64)
    precision = _ratio(hits, M.sum(axis=0))
    recall = _ratio(hits, M.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    per_class = {
        name: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(M[k].sum()),
        }
        for k, name in enumerate(labels)
    }
    return {
        "accuracy": float(hits.sum() / max(M.sum(), 1)),
        "macro_f1": float(f1.mean()),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": M.tolist(),
    }


def majority_baseline(
    train_counts: Sequence[int], y_true: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Always predict the most frequent training class: the floor any model must clear."""
    majority = int(np.argmax(train_counts))
    report = classification_report(y_true, [majority] * len(y_true), labels)
    return {
        "label": labels[majority],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
    }


def class_balance(counts: Sequence[int], labels: Sequence[str]) -> str:
    """'very negative 12.1%, ...; largest/smallest class = 2.9x' for the run log."""
    total = max(sum(counts), 1)
    shares = ", ".join(
        f"{name} {100 * n / total:.1f}%" for name, n in zip(labels, counts, strict=True)
    )
    smallest = min(counts)
    ratio = f"{max(counts) / smallest:.1f}x" if smallest else "inf (a class has no examples)"
    return f"{shares}; largest/smallest class = {ratio}"


def format_report(report: dict[str, Any], names: Sequence[str]) -> str:
    """A printable table: per-class precision/recall/F1/support, then the confusion matrix."""
    width = max(len(n) for n in names) + 2
    lines = [f"{'':<{width}} precision  recall      f1  support"]
    for label, name in zip(report["labels"], names, strict=True):
        c = report["per_class"][label]
        lines.append(
            f"{name:<{width}} {c['precision']:9.3f} {c['recall']:7.3f} {c['f1']:7.3f}"
            f" {c['support']:8d}"
        )
    lines.append(f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}")
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    for name, row in zip(names, report["confusion_matrix"], strict=True):
        lines.append(f"{name:<{width}} " + " ".join(f"{n:6d}" for n in row))
    return "\n".join(lines)
