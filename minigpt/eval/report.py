"""What `eval.py` prints: an aligned table of its rows, or the whole report as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from minigpt.eval.models import EvalModel
from minigpt.eval.run import EvalReport

COLUMNS = ("model", "objective", "on", "tokens", "bytes", "loss", "ppl", "bpb", "acc", "acc_norm")


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table (tasks report accuracy as `acc`)."""
    cells = [list(COLUMNS)]
    for row in rows:
        row = {**row, "tokens": row.get("n_tokens", row.get("n")), "bytes": row.get("n_bytes")}
        row.setdefault("acc", row.get("accuracy"))
        row.setdefault("acc_norm", row.get("accuracy_norm"))
        cells.append([_cell(row.get(column)) for column in COLUMNS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def model_info(loaded: EvalModel) -> dict[str, Any]:
    config = loaded.model.config
    return {
        "name": loaded.name,
        "params": loaded.model.num_params(),
        "tokenizer": loaded.tokenizer.name,
        "block_size": config.block_size,
        "config": asdict(config),
    }


def format_json(report: EvalReport) -> str:
    """{"models": [...], "results": rows, "harness": {model: lm_eval results}}."""
    models = [model_info(m) for m in report.models]
    return json.dumps(
        {"models": models, "results": report.rows, "harness": report.harness}, indent=1
    )
