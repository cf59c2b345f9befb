"""One `eval.py` run: every checkpoint scored on every dataset and task, plus the harness's tasks.

Each row is one (model, objective, dataset or task): bits per byte for texts (minigpt.eval.bpb),
accuracy for multiple-choice tasks (minigpt.eval.tasks), or a harness task's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from minigpt.device import autocast, resolve_device, resolve_dtype
from minigpt.eval.bpb import score_documents
from minigpt.eval.config import EvalConfig, names
from minigpt.eval.models import EvalModel, load_eval_model
from minigpt.eval.tasks import ChoiceItem, evaluate_task, fewshot_items, load_task
from minigpt.eval.texts import Texts, load_texts
from minigpt.settings import ConfigError


@dataclass
class EvalReport:
    models: list[EvalModel]
    rows: list[dict[str, Any]]
    harness: dict[str, Any]  # model name -> lm_eval's `results`


def run_eval(cfg: EvalConfig) -> EvalReport:
    """Load everything first (so a bad path fails before any scoring), then score."""
    device = resolve_device(cfg.compute.device)
    dtype = resolve_dtype(cfg.compute.dtype, device)
    models = [load_eval_model(path, device, cfg.tokenizer) for path in names(cfg.init_from)]
    texts = [load_texts(spec, cfg.split).truncated(cfg.max_bytes) for spec in names(cfg.dataset)]
    tasks = load_tasks(cfg)
    rows, harness = [], {}
    for loaded in models:
        with autocast(device, dtype):
            rows += evaluate_model(cfg, loaded, texts, tasks)
        if names(cfg.harness_tasks):
            harness[loaded.name] = run_harness(cfg, loaded, device)
            rows += harness_rows(loaded.name, harness[loaded.name])
    return EvalReport(models, rows, harness)


def load_tasks(cfg: EvalConfig) -> dict[str, list[ChoiceItem]]:
    """task file -> its items (the first --limit), with --num_fewshot examples in each prompt."""
    pool = load_task(cfg.fewshot_file) if cfg.num_fewshot else []
    tasks = {}
    for path in names(cfg.tasks):
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
        loaded, batch_size=cfg.batch_size, device=str(device), dtype=cfg.compute.dtype,
        window=cfg.block_size, stride=cfg.stride,
    )  # fmt: skip
    output = lm_eval.simple_evaluate(
        model=model, tasks=names(cfg.harness_tasks), num_fewshot=cfg.num_fewshot or None,
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
