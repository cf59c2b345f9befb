"""Training metrics: one JSON object per line in out_dir/metrics.jsonl, optionally mirrored to
TensorBoard and Weights & Biases (both optional extras, off by default).

Records have `iter` (optimizer steps done) and `loss`. A log step adds `lr`, `tokens_per_s` and
`mfu`; an evaluation (`"kind": "eval"`) has `loss` = mean train loss over the eval batches,
`val_loss`, and the perplexities exp(loss). `python -m minigpt.train.plot out_dir` draws them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl file, or of out_dir/metrics.jsonl when given a directory."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; train.py writes it into out_dir")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
    """Appends records to metrics.jsonl (and TensorBoard / W&B when enabled).

    `start_iter` > 0 means a resumed run: records past it, written by the run that was
    interrupted after its last checkpoint, are dropped so each iter appears once.
    """

    def __init__(
        self,
        out_dir: str | Path,
        start_iter: int = 0,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        wandb_run_name: str = "run",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(out_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if start_iter > 0 and self.path.is_file():
            kept = [r for r in read_metrics(self.path) if r["iter"] <= start_iter]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self.tensorboard = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        self.wandb = None
        if wandb_project:
            import wandb  # optional extra

            self.wandb = wandb.init(project=wandb_project, name=wandb_run_name, config=config)

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        prefix = "eval/" if record.get("kind") == "eval" else "train/"
        numbers = {
            prefix + k: v
            for k, v in record.items()
            if k != "iter" and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if self.tensorboard is not None:
            for key, value in numbers.items():
                self.tensorboard.add_scalar(key, value, record["iter"])
        if self.wandb is not None:
            self.wandb.log(numbers, step=record["iter"])

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()
