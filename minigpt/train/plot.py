"""Draw a run's loss curves: `python -m minigpt.train.plot OUT_DIR [--output FILE.png]`.

Reads OUT_DIR/metrics.jsonl (see minigpt.train.metrics) and plots, against the optimizer step, the
training loss of every logged step (one noisy batch each) and the train and val losses of every
evaluation (means over eval_iters batches). The val curve turning up while train keeps falling is
overfitting; the gap between the two is the generalisation gap. Needs matplotlib:
`pip install 'minigpt[plot]'`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from minigpt.train.metrics import read_metrics


def plot_losses(out_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the loss curves of the run in `out_dir` to `output` (default out_dir/loss.png)."""
    records = read_metrics(out_dir)
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'minigpt[plot]'") from None
    steps = [r for r in records if r.get("kind") != "eval"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot([r["iter"] for r in steps], [r["loss"] for r in steps],
            alpha=0.4, label="train (logged batch)")  # fmt: skip
    if evals:
        iters = [r["iter"] for r in evals]
        ax.plot(iters, [r["loss"] for r in evals], "o-", label="train (eval mean)")
        ax.plot(iters, [r["val_loss"] for r in evals], "o-", label="val (eval mean)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(str(out_dir))
    ax.grid(alpha=0.3)
    ax.legend()
    output = Path(output) if output else Path(out_dir) / "loss.png"
    fig.savefig(output, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minigpt.train.plot", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", help="a train.py out_dir (holds metrics.jsonl)")
    parser.add_argument("--output", help="PNG path (default: OUT_DIR/loss.png)")
    args = parser.parse_args(argv)
    try:
        print(plot_losses(args.out_dir, args.output))
    except (ImportError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
