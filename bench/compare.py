"""The README's "models compared" table: every checkpoint on the same bytes and the same task.

    python bench/compare.py                        # the checkpoints present, JSON
    python bench/compare.py --models=out,DIR --max_bytes=100000 --readme=README.md

Each model runs through eval.py (its own process, so one that cannot be scored is reported and
skipped): bits per UTF-8 byte on each dataset's val split decoded to text and re-tokenized by
the model (minigpt.eval.bpb), and zero-shot accuracy on the 5-level movie-review task
(data/movie_reviews/task5_test.jsonl, from `python data/movie_reviews/prepare.py`). The
fine-tuned accuracy comes from a finetune.py run on that model: a `metrics.json` matched by
`--finetuned` (comma-separated globs) whose base is the model and whose labels are label5.

With no --models it takes those present of: the default train.py run (out) and the models
bench/objectives.py pre-trained (out-bench-objectives/*/base). Bidirectional models are left
out: they have no left-to-right likelihood, which is also why finetune.py's default base (a
masked LM) is not among them. `--readme` rewrites the table between the README's markers.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import markdown_table

ROOT = Path(__file__).resolve().parents[1]

START, END = "<!-- models-compared:start -->", "<!-- models-compared:end -->"
TASK = "data/movie_reviews/task5_test.jsonl"
# where finetune.py runs and bench/objectives.py's fine-tuning runs write their metrics
FINETUNED = ("out-finetune*/metrics.json", "out-bench-objectives/*/classifier/metrics.json")


def default_models() -> list[str]:
    saved = glob.glob("out-bench-objectives/*/base/config.json")
    objectives = [str(Path(p).parent) for p in sorted(saved) if not _is_encoder(Path(p))]
    return [d for d in ("out", *objectives) if _is_model(d)]


def _is_encoder(config_file: Path) -> bool:
    return json.loads(config_file.read_text()).get("attention") == "bidirectional"


def _is_model(directory: str) -> bool:
    return (Path(directory) / "config.json").is_file()


def evaluate(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """eval.py's JSON report for one model, or {"error": its one-line message}."""
    command = [
        sys.executable, str(ROOT / "eval.py"), f"--init_from={model}", f"--dataset={args.datasets}",
        f"--tasks={args.task}", f"--max_bytes={args.max_bytes}", f"--limit={args.limit}",
        f"--batch_size={args.batch_size}", f"--device={args.device}", "--json",
    ] + ([f"--stride={args.stride}"] if args.stride else [])  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout)


def finetuned_accuracy(model: str, finetuned: list[Path]) -> float | None:
    """Test accuracy of a 5-level finetune.py run whose base is `model`, if there is one."""
    for metrics_file in finetuned:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        same_base = Path(metrics["base"]).resolve() == Path(model).resolve()
        if same_base and metrics["config"]["label_column"] == "label5":
            return metrics["test"]["accuracy"]
    return None


def table_row(model: str, report: dict[str, Any], finetuned: list[Path]) -> dict[str, Any]:
    if "error" in report:
        return {"model": model, "error": report["error"]}
    (info,) = report["models"]
    row = {"model": model, "params": info["params"], "tokenizer": info["tokenizer"]}
    for result in report["results"]:
        if "bpb" in result:
            row[f"bpb {result['on']}"] = result["bpb"]
        else:
            row["zero-shot acc"] = result["accuracy"]
            row["zero-shot acc_norm"] = result["accuracy_norm"]
            row["task items"] = result["n"]
    row["fine-tuned acc"] = finetuned_accuracy(model, finetuned)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows that scored, one column per dataset's bpb (in eval.py's order)."""
    scored = [row for row in rows if "error" not in row]
    bpb = list(dict.fromkeys(key for row in scored for key in row if key.startswith("bpb ")))
    columns = ["model", "params", "tokenizer", *bpb, "zero-shot acc", "zero-shot acc_norm",
               "fine-tuned acc"]  # fmt: skip
    cells = [[_cell(row.get(c)) for c in columns] for row in scored]
    return markdown_table(columns, cells, "lrl" + "r" * (len(columns) - 3))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else f"`{value}`"


def write_readme(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers to write the table between")
    head, rest = text.split(START, 1)
    path.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="checkpoint dirs, comma-separated")
    parser.add_argument("--datasets", default="shakespeare_char,movie_reviews")
    parser.add_argument("--task", default=TASK, help="multiple-choice task JSONL")
    parser.add_argument("--finetuned", default=",".join(FINETUNED),
                        help="comma-separated globs of finetune.py metrics.json files")  # fmt: skip
    parser.add_argument("--max_bytes", type=int, default=0, help="bytes per dataset; 0 = all")
    parser.add_argument("--limit", type=int, default=0, help="task items; 0 = all")
    parser.add_argument("--stride", type=int, default=0, help="window stride; 0 = eval.py's")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--readme", type=Path, help="write the markdown table into this README")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m] or default_models()
    if not models:
        raise SystemExit("no checkpoints found: train one (python train.py) or pass --models")
    reports = [evaluate(model, args) for model in models]
    finetuned = [
        Path(p) for pattern in args.finetuned.split(",") for p in sorted(glob.glob(pattern))
    ]
    pairs = zip(models, reports, strict=True)
    rows = [table_row(model, report, finetuned) for model, report in pairs]
    print(json.dumps(rows, indent=1))
    if args.readme:
        write_readme(args.readme, markdown(rows))


if __name__ == "__main__":
    main()
