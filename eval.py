"""Score checkpoints on the same text and the same tasks, whatever their tokenizers.

    python eval.py --init_from=out,out-movie-reviews-lm --dataset=shakespeare_char,notes.txt
    python eval.py --init_from=out --tasks=data/movie_reviews/task5_test.jsonl --dataset=''
    python eval.py --init_from=out --tasks=T.jsonl --num_fewshot=3 --fewshot_file=T_train.jsonl
    python eval.py --init_from=out --harness_tasks=lambada_openai      (eval extra, online)

For each checkpoint (a minigpt directory, or a Hugging Face gpt2 / gpt_neo / gptj one) and each
dataset (a prepared data/<name> folder, whose val split is decoded back to text, or a UTF-8 text
file) it reports loss per token, perplexity and bits per UTF-8 byte (minigpt.eval.bpb), and for
each task file the zero- or few-shot accuracy (minigpt.eval.tasks). It prints one table, or JSON
with --json. `--help` lists every setting.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from minigpt.eval.bpb import score_documents
from minigpt.eval.models import EvalModel, load_eval_model
from minigpt.eval.tasks import ChoiceItem, evaluate_task, fewshot_items, load_task
from minigpt.eval.texts import Texts, load_texts
from minigpt.settings import ConfigError, help_text, parse_settings, setting
from minigpt.train.precision import autocast, resolve_device, resolve_dtype

USAGE = "usage: python eval.py [config.toml ...] [--key=value | --key value ...]"
COLUMNS = ("model", "objective", "on", "tokens", "bytes", "loss", "ppl", "bpb", "acc", "acc_norm")


@dataclass
class EvalConfig:
    init_from: str = setting("out", "checkpoint dirs, comma-separated: minigpt or HF gpt2/neo/j")
    dataset: str = setting(
        "shakespeare_char", "comma-separated prepared data/<name> dirs or UTF-8 text files"
    )
    split: str = setting("val", "split of a prepared dataset to score")
    max_bytes: int = setting(0, "score only the first N bytes of each dataset; 0 = all")
    block_size: int | None = setting(None, "window: context tokens per pass; none = the model's")
    stride: int | None = setting(None, "tokens the window moves per pass; none = half the window")
    batch_size: int = setting(8, "windows or choices per forward pass")
    tasks: str = setting("", "multiple-choice task JSONL files, comma-separated")
    limit: int = setting(0, "score only the first N items of each task; 0 = all")
    num_fewshot: int = setting(0, "solved examples before each item (harness: its own split)")
    fewshot_file: str = setting("", "task JSONL the few-shot examples are drawn from")
    seed: int = setting(1337, "seed that draws the few-shot examples")
    harness_tasks: str = setting("", "lm-evaluation-harness task names, comma-separated")
    harness_include: str = setting("", "folder of local harness task YAMLs; '' = built-in tasks")
    tokenizer: str = setting("gpt2", "tokenizer of an HF checkpoint without tokenizer_spec.json")
    json: bool = setting(False, "print JSON instead of the table")
    device: str = setting("auto", "'auto', 'cpu', 'cuda', 'cuda:1', 'mps'")
    dtype: str = setting("float32", "autocast dtype", ("auto", "float32", "bfloat16", "float16"))

    def validate(self) -> None:
        checks = [
            (bool(_names(self.init_from)), "--init_from needs at least one checkpoint dir"),
            (self.block_size is None or self.block_size > 0, "--block_size must be positive"),
            (self.stride is None or self.stride > 0, "--stride must be positive"),
            (self.batch_size > 0, f"--batch_size={self.batch_size} must be positive"),
            (self.num_fewshot >= 0, f"--num_fewshot={self.num_fewshot} must be >= 0"),
            (self.num_fewshot == 0 or bool(self.fewshot_file) or not _names(self.tasks),
             "--tasks with --num_fewshot needs --fewshot_file: examples come from another split"),
            (bool(_names(self.dataset) or _names(self.tasks) or _names(self.harness_tasks)),
             "nothing to evaluate: give --dataset, --tasks or --harness_tasks"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def load_tasks(cfg: EvalConfig) -> dict[str, list[ChoiceItem]]:
    """task file -> its items (the first --limit), with --num_fewshot examples in each prompt."""
    pool = load_task(cfg.fewshot_file) if cfg.num_fewshot else []
    tasks = {}
    for path in _names(cfg.tasks):
        items = load_task(path)[: cfg.limit or None]
        tasks[path] = fewshot_items(items, pool, cfg.num_fewshot, cfg.seed)
    return tasks


def evaluate_model(
    cfg: EvalConfig, loaded: EvalModel, texts: Sequence[Texts], tasks: dict[str, list[ChoiceItem]]
) -> list[dict[str, Any]]:
    """One row per (objective, dataset) and (objective, task)."""
    rows = []
    for objective, scorer in loaded.scorers.items():
        row = {"model": loaded.name, "objective": objective}
        for text in texts:
            score = score_documents(
                loaded.model, loaded.tokenizer, text.documents, window=cfg.block_size,
                stride=cfg.stride, batch_size=cfg.batch_size, scorer=scorer,
            )  # fmt: skip
            rows.append({**row, "on": text.name, **score.to_dict()})
        for name, items in tasks.items():
            result = evaluate_task(loaded.model, loaded.tokenizer, items, cfg.batch_size, scorer)
            rows.append({**row, "on": name, "num_fewshot": cfg.num_fewshot, **asdict(result)})
    return rows


def run_harness(cfg: EvalConfig, loaded: EvalModel, device: torch.device) -> dict[str, Any]:
    """The harness tasks' results for one checkpoint (lm_eval's `results` dict)."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager

        from minigpt.eval.harness import MiniGPTLM
    except ImportError:
        raise ConfigError(
            "--harness_tasks needs lm-evaluation-harness: pip install -e '.[eval]'"
        ) from None
    include = cfg.harness_include or None
    manager = TaskManager(include_path=include, include_defaults=include is None)
    model = MiniGPTLM(
        loaded, batch_size=cfg.batch_size, device=str(device), dtype=cfg.dtype,
        window=cfg.block_size, stride=cfg.stride,
    )  # fmt: skip
    output = lm_eval.simple_evaluate(
        model=model, tasks=_names(cfg.harness_tasks), num_fewshot=cfg.num_fewshot or None,
        limit=cfg.limit or None, task_manager=manager, random_seed=cfg.seed,
        fewshot_random_seed=cfg.seed, bootstrap_iters=0, log_samples=False,
    )  # fmt: skip
    return output["results"]


def harness_rows(name: str, results: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows of a harness result: accuracy and bits per byte where the task reports them."""
    rows = []
    for task, metrics in results.items():
        row = {"model": name, "objective": "causal", "on": f"harness:{task}"}
        for ours, theirs in (("acc", "acc,none"), ("acc_norm", "acc_norm,none"),
                             ("bpb", "bits_per_byte,none")):  # fmt: skip
            if isinstance(metrics.get(theirs), float):
                row[ours] = metrics[theirs]
        rows.append(row)
    return rows


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(help_text(EvalConfig, USAGE))
        return 0
    try:
        cfg = parse_settings(EvalConfig, argv)
        device = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, device)
        texts = [
            load_texts(spec, split=cfg.split).truncated(cfg.max_bytes)
            for spec in _names(cfg.dataset)
        ]
        tasks = load_tasks(cfg)
        models = [load_eval_model(path, device, cfg.tokenizer) for path in _names(cfg.init_from)]
        rows, harness = [], {}
        for loaded in models:
            with autocast(device, dtype):
                rows += evaluate_model(cfg, loaded, texts, tasks)
            if _names(cfg.harness_tasks):
                harness[loaded.name] = run_harness(cfg, loaded, device)
                rows += harness_rows(loaded.name, harness[loaded.name])
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.json:
        report = {"models": [model_info(m) for m in models], "results": rows, "harness": harness}
        print(json.dumps(report, indent=1))
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
