"""Fine-tune a GPT into a text classifier, and classify texts with the result.

    python finetune.py [config/NAME.toml ...] [--key=value ...]     train, evaluate, save
    python finetune.py predict --out_dir=DIR --text "..."           (or --file=texts.txt)

With no arguments it classifies movie_reviews snippets into 5 rating levels (preparing the data
if needed). With no `--init_from` it first pre-trains (or reuses) a small in-domain GPT through
train.py and config/movie_reviews_lm.toml, on the review texts plus the archive's unlabelled
snippets. `--method` picks what trains (head, top, full, lora, adalora, adapter,
prefix; minigpt.finetune.peft).
The run reports validation loss/accuracy/macro-F1 every epoch, then test loss, accuracy, macro-F1,
per-class precision/recall and the confusion matrix next to two baselines (the majority class,
and the untrained head), and writes them to out_dir/metrics.json, with confusion.png and
learning_curves.png beside it when matplotlib is installed. `--help` lists every setting.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from minigpt.checkpoint import WEIGHTS_FILE, CheckpointError, load_tokenizer, write_json
from minigpt.data.prepare import ensure_dataset
from minigpt.data.tokenizer import Tokenizer
from minigpt.finetune.classifier import (
    GPTClassifier,
    export_merged,
    load_classifier,
    save_classifier,
)
from minigpt.finetune.config import FinetuneConfig, PredictConfig
from minigpt.finetune.data import Splits, load_splits, split_paths
from minigpt.finetune.loop import EvalResult, Finetuner, evaluate
from minigpt.finetune.metrics import (
    class_balance,
    classification_report,
    format_report,
    majority_baseline,
)
from minigpt.finetune.peft import count_params, describe_params
from minigpt.finetune.plot import CONFUSION_FILE, CURVES_FILE, plot_confusion, plot_learning_curves
from minigpt.model.gpt import GPT
from minigpt.settings import ConfigError, help_text, parse_settings
from minigpt.train.precision import resolve_device, resolve_dtype
from minigpt.train.trainer import BEST_DIR

ROOT = Path(__file__).resolve().parent
METRICS_FILE = "metrics.json"


# ---- the base model ---------------------------------------------------------------------------


class PretrainError(RuntimeError):
    """train.py failed while making the base model."""


def pretrain_command(cfg: FinetuneConfig, out_dir: Path) -> list[str]:
    """The train.py command line that pre-trains the in-domain base model."""
    recipe = _repo_path(cfg.pretrain_config)
    return [sys.executable, str(ROOT / "train.py"), str(recipe), f"--out_dir={out_dir}",
            *shlex.split(cfg.pretrain_args)]  # fmt: skip


def base_model(cfg: FinetuneConfig) -> Path:
    """`--init_from`, or the in-domain LM in `--pretrain_out`: reused when that folder already
    holds one (train.py's best-val-loss copy first), else trained now with train.py."""
    if cfg.init_from:
        return Path(cfg.init_from)
    out_dir = Path(cfg.pretrain_out)
    for candidate in (out_dir / BEST_DIR, out_dir):
        if (candidate / WEIGHTS_FILE).is_file():
            print(f"reusing the pre-trained base model in {candidate}")
            return candidate
    command = pretrain_command(cfg, out_dir)
    print(f"pre-training an in-domain base model: {shlex.join(command)}", flush=True)
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise PretrainError(f"pre-training failed (exit {result.returncode}); see train.py's error")
    return out_dir / BEST_DIR if (out_dir / BEST_DIR).is_dir() else out_dir


def _repo_path(path: str) -> Path:
    """A relative path as given if it exists from here, else relative to this checkout."""
    return Path(path) if Path(path).exists() or Path(path).is_absolute() else ROOT / path


# ---- a training run -----------------------------------------------------------------------------


def prepare_data(cfg: FinetuneConfig, tokenizer: Tokenizer, block_size: int) -> Splits:
    data_dir = Path(cfg.data_dir) if cfg.data_dir else ROOT / "data" / cfg.dataset
    paths = split_paths(cfg, data_dir)
    if not paths["train"].is_file() and (data_dir / "prepare.py").is_file():
        ensure_dataset(data_dir)  # runs data/<dataset>/prepare.py the first time
    max_len = min(cfg.max_len, block_size)
    if max_len < cfg.max_len:
        print(f"max_len {cfg.max_len} > the model's block_size; using {max_len}")
    splits = load_splits(cfg, paths, tokenizer, max_len)
    for name, dataset in splits.items():
        print(
            f"{name}: {len(dataset):,} texts, {dataset.n_truncated:,} truncated to {max_len} tokens"
        )
    print(f"train class balance: {class_balance(splits.train.class_counts(), splits.label_names)}")
    return splits


def cpu_threads(requested: int | None) -> int:
    """`requested`, else torch's default, or 1 thread when other processes already keep every
    core busy: a classifier's matmuls are small, and two OpenMP threads that must meet at every
    op's barrier lose their time slices to the other processes (measured here: 12x slower)."""
    if requested:
        return requested
    busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    return 1 if busy else torch.get_num_threads()


def run(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune, evaluate, save; returns what it writes to out_dir/metrics.json."""
    start = time.perf_counter()
    base_dir = base_model(cfg)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads))
        print(f"{torch.get_num_threads()} CPU threads (load average {os.getloadavg()[0]:.1f})")
    dtype = resolve_dtype(cfg.dtype, device)
    tokenizer = load_tokenizer(base_dir) or Tokenizer.from_name("gpt2")
    gpt = GPT.from_pretrained(base_dir, dropout=cfg.dropout)
    splits = prepare_data(cfg, tokenizer, gpt.config.block_size)
    torch.manual_seed(cfg.seed)  # the head's initial weights
    method = cfg.method_config()
    model = GPTClassifier(gpt, splits.labels, splits.label_names, method, base_dir, cfg.pooling)
    model = model.to(device)
    print(describe_params(model, cfg.tuning.method))
    test_batches = splits.loader("test", cfg.eval_batch_size)
    untrained = evaluate(model, test_batches, device, dtype, "untrained head", cfg.progress)
    finetuner = Finetuner(
        model, cfg, splits.loader("train", cfg.batch_size, cfg.seed),
        splits.loader("val", cfg.eval_batch_size), device, dtype,
    )  # fmt: skip
    history = finetuner.train()
    test = evaluate(model, test_batches, device, dtype, "test", cfg.progress)
    out_dir = Path(cfg.out_dir)
    save_classifier(model, out_dir, tokenizer)
    if cfg.export_merged:
        export_merged(model, out_dir / "merged", tokenizer)
    trainable, total = count_params(model)
    labels, names = splits.labels, splits.label_names
    metrics = {
        "method": asdict(method),
        "base": str(base_dir),
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
            "untrained_head": _summary(untrained, labels),
        },
        "test": {"loss": test.loss, **classification_report(test.y_true, test.y_pred, labels)},
        **({"adalora": finetuner.ranks} if finetuner.ranks else {}),
        "wall_time_s": time.perf_counter() - start,
        "config": dataclasses.asdict(cfg),
    }
    write_json(out_dir / METRICS_FILE, metrics)
    print_report(metrics, names)
    print(f"saved the classifier and {METRICS_FILE} to {out_dir}")
    write_plots(metrics, names, out_dir)
    return metrics


def write_plots(metrics: dict[str, Any], names: Sequence[str], out_dir: Path) -> None:
    """confusion.png and learning_curves.png beside metrics.json, or a note without matplotlib."""
    try:
        plot_confusion(metrics["test"]["confusion_matrix"], names, out_dir / CONFUSION_FILE)
        plot_learning_curves(metrics["epochs"], out_dir / CURVES_FILE)
    except ImportError as e:
        print(f"no plots: {e}")
        return
    print(f"plots: {out_dir / CONFUSION_FILE}, {out_dir / CURVES_FILE}")


def _summary(result: EvalResult, labels: Sequence[str]) -> dict[str, float]:
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


# ---- predict --------------------------------------------------------------------------------


def predict(cfg: PredictConfig) -> list[dict[str, Any]]:
    """Classify `--text` / `--file` with the classifier in `--out_dir`; prints and returns
    [{"text", "label", "probs": {name: p}}]."""
    texts = [cfg.text] if cfg.text else []
    if cfg.file:
        lines = Path(cfg.file).read_text(encoding="utf-8").splitlines()
        texts += [line for line in lines if line.strip()]
    model, tokenizer = load_classifier(
        cfg.out_dir, base_dir=cfg.base or None, device=resolve_device(cfg.device)
    )
    if tokenizer is None:
        raise CheckpointError(f"{cfg.out_dir} has no tokenizer_spec.json to encode texts with")
    probs = model.predict_proba(texts, tokenizer, cfg.batch_size)
    results = []
    for text, p in zip(texts, probs.tolist(), strict=True):
        best = max(range(len(p)), key=p.__getitem__)
        ranked = ", ".join(f"{n} {q:.3f}" for n, q in zip(model.label_names, p, strict=True))
        print(f"{model.label_names[best]}\t[{ranked}]\t{text}")
        results.append({"text": text, "label": model.label_names[best],
                        "probs": dict(zip(model.label_names, p, strict=True))})  # fmt: skip
    return results


# ---- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, kind = (predict, PredictConfig) if argv[:1] == ["predict"] else (run, FinetuneConfig)
    argv = argv[1:] if command is predict else argv
    if "-h" in argv or "--help" in argv:
        usage = "python finetune.py [predict] [config/NAME.toml ...] [--key=value ...]"
        print(__doc__ + "\n" + help_text(kind, usage))
        return 0
    try:
        command(parse_settings(kind, argv))
    except (ConfigError, ValueError, FileNotFoundError, PretrainError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
