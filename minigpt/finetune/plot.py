"""Pictures of a fine-tuning run, written beside its metrics.json (needs the `plot` extra).

- confusion.png: the test confusion matrix M[i, j] (true class i predicted as j), each row also
  shown as a share of its class, so a rare class's errors are as visible as a common one's.
- learning_curves.png: per epoch, train and val loss (left) and val accuracy and macro-F1 (right).
  The train loss is the training objective: class-weighted under --class_weight=balanced, while
  the val loss never is, so only their trends compare then.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CONFUSION_FILE = "confusion.png"
CURVES_FILE = "learning_curves.png"


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'minigpt[plot]'") from None
    return plt


def plot_confusion(matrix: Sequence[Sequence[int]], names: Sequence[str], output: Path) -> Path:
    """The confusion matrix as a heat map of row shares, annotated with counts."""
    plt = _pyplot()
    M = np.asarray(matrix)
    shares = M / np.maximum(M.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.1 * len(names) + 1.5))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(M.shape):
        color = "white" if shares[i, j] > 0.5 else "black"
        ax.text(j, i, f"{M[i, j]}\n{shares[i, j]:.0%}", ha="center", va="center", color=color)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _save(plt, fig, output)


def plot_learning_curves(history: Sequence[dict[str, float]], output: Path) -> Path:
    """Train/val loss and val accuracy/macro-F1 against the epoch."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    left.plot(epochs, [r["val_loss"] for r in history], "o-", label="val loss")
    left.set_ylabel("cross-entropy (nats)")
    right.plot(epochs, [r["val_accuracy"] for r in history], "o-", label="val accuracy")
    right.plot(epochs, [r["val_macro_f1"] for r in history], "o-", label="val macro-F1")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(plt, fig, output)


def _save(plt: Any, fig: Any, output: Path) -> Path:
    fig.savefig(output, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return output
