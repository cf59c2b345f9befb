"""One fine-tuning run: the base model, the data, the loop, the test set, the saved classifier.

base model   --init_from, or an in-domain LM pre-trained here by minigpt.train (reused when
             --pretrain_out already holds one)
data         the train / val / test splits, tokenized and truncated to the model's context
fine-tune    minigpt.finetune.loop, then the test split scored with the epoch kept on val
report       metrics.json, confusion.png and learning_curves.png (minigpt.finetune.report)
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import torch

from minigpt.checkpoint import WEIGHTS_FILE, load_model
from minigpt.data.prepare import ensure_dataset
from minigpt.data.tokenizer import Tokenizer
from minigpt.device import resolve_device, resolve_dtype
from minigpt.finetune.classifier import GPTClassifier, export_merged, save_classifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.data import Splits, load_splits, split_paths
from minigpt.finetune.loop import Finetuner, evaluate
from minigpt.finetune.metrics import class_balance
from minigpt.finetune.peft import describe_params
from minigpt.finetune.prompt import make_prompt
from minigpt.finetune.report import build_report, print_report, write_report
from minigpt.paths import dataset_dir, recipe_path
from minigpt.train.config import TrainConfig, parse_config
from minigpt.train.trainer import BEST_DIR, Trainer


def pretrain_config(cfg: FinetuneConfig, out_dir: Path) -> TrainConfig:
    """The pre-training run of the in-domain base: --pretrain_config, then --pretrain_args."""
    return parse_config([str(recipe_path(cfg.pretrain_config)), f"--out_dir={out_dir}",
                         *shlex.split(cfg.pretrain_args)])  # fmt: skip


def base_model(cfg: FinetuneConfig) -> Path:
    """`--init_from`, or the in-domain LM in `--pretrain_out`: reused when that folder already
    holds one (the best-val-loss copy first), else pre-trained now."""
    if cfg.init_from:
        return Path(cfg.init_from)
    out_dir = Path(cfg.pretrain_out)
    for candidate in (out_dir / BEST_DIR, out_dir):
        if (candidate / WEIGHTS_FILE).is_file():
            print(f"reusing the pre-trained base model in {candidate}")
            return candidate
    train_config = pretrain_config(cfg, out_dir)
    print(
        "pre-training an in-domain base model, as python train.py"
        f" {cfg.pretrain_config} --out_dir={out_dir} {cfg.pretrain_args}",
        flush=True,
    )
    Trainer(train_config).train()
    return out_dir / BEST_DIR if (out_dir / BEST_DIR).is_dir() else out_dir


def prepare_data(cfg: FinetuneConfig, tokenizer: Tokenizer, block_size: int) -> Splits:
    """The three splits, tokenized (preparing data/<dataset> the first time)."""
    data_dir = dataset_dir(cfg.dataset, cfg.data_dir)
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


def run(
    cfg: FinetuneConfig, classifier_class: type[GPTClassifier] = GPTClassifier
) -> dict[str, Any]:
    """Fine-tune, evaluate, save; returns what it writes to out_dir/metrics.json.
    `classifier_class` builds the model (a bench may pass a variant of GPTClassifier)."""
    start = time.perf_counter()
    base_dir = base_model(cfg)
    device = resolve_device(cfg.compute.device)
    if device.type == "cpu":
        if cfg.threads:  # else torch's default whatever the load: threads change float sums
            torch.set_num_threads(cfg.threads)
        print(f"{torch.get_num_threads()} CPU threads")
    dtype = resolve_dtype(cfg.compute.dtype, device)
    gpt, tokenizer = load_model(base_dir, dropout=cfg.dropout)
    splits = prepare_data(cfg, tokenizer, gpt.config.block_size)
    torch.manual_seed(cfg.seed)  # the head's initial weights
    method = cfg.method_config()
    prompt = None
    if cfg.readout == "prompt":
        prompt = make_prompt(tokenizer, gpt.config, cfg.template, cfg.label_words)
    model = classifier_class(
        gpt, splits.labels, splits.label_names, method, base_dir, cfg.pooling, prompt
    )
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
    elapsed = time.perf_counter() - start
    metrics = build_report(cfg, model, splits, finetuner, history, untrained, test, elapsed)
    print_report(metrics, splits.label_names)
    write_report(metrics, splits.label_names, out_dir)
    return metrics
