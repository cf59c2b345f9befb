"""GPT, BERT and T5 objectives compared on one decoder: same data, tokenizer, size and tokens.

    python bench/objectives.py [--quick] [--seeds=3] [--rows=causal,prefix_lm,span,mlm,none]
                               [--max_iters=N] [--epochs=N] [--finetune_texts=N]
                               [--out_dir=out-bench-objectives]

1. Pre-training text: the train-split movie-review snippets plus the unlabelled amazon, NYT and
   tweet snippets of the same archive (data/movie_reviews); never a val or test snippet. One
   tokenizer for every objective: the 4,096 GPT-2 BPE ids that text uses most (`gpt2:4096`, rarer
   pieces split into those), with "[MASK]" and T5's 100 sentinels added, so every model has the
   same vocabulary and parameter count. 2% of the token stream (its tail) is held out for the
   pre-training validation loss.
2. For each seed and objective (causal, prefix_lm, span, mlm): train.py's Trainer from scratch
   with the same model and the same token budget (max_iters x batch_size x block_size tokens read
   from the corpus; how many of them carry a loss is the objective's business: all for causal,
   about 15% for mlm).
3. Fine-tune each pre-trained model, and the same architecture with random weights (no
   pre-training), on the 5-level movie-review task with finetune.py's `run` (method full). Every
   row reads the text out the same way, the mean of the final hidden states (pooling "mean"), so
   only the pre-training differs; the epoch with the best val macro-F1 is kept.

Prints JSON: per row, mean and SD over the seeds of test accuracy, macro-F1, the pre-training
validation loss (each objective's own loss, so rows are not comparable on it) and wall times.
Run logs go to stderr; a Markdown table of the rows goes to stderr at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import host, markdown_table, mean_sd, pm, random_base

from minigpt.data.bins import load_meta
from minigpt.data.objectives import ATTENTION, MASK_TOKEN, OBJECTIVES, SENTINELS
from minigpt.data.prepare import ensure_dataset, prepare_documents
from minigpt.data.tokenizer import Tokenizer
from minigpt.device import DeviceConfig
from minigpt.finetune.classifier import GPTClassifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.run import run
from minigpt.model.config import GPTConfig
from minigpt.paths import dataset_dir
from minigpt.train.config import TrainConfig
from minigpt.train.trainer import Trainer

REVIEWS = dataset_dir("movie_reviews")
BASELINE = "none"  # the row without pre-training

# (model, pre-training, fine-tuning) settings of the two modes
# (finetune_texts: N evenly spaced train-split texts, None = all 8,480). The full run is sized
# for a 2-core CPU: a 4-layer, 128-wide model reading 614,400 tokens of pre-training text per
# objective (about one pass over the 632,477-token corpus), then 3 fine-tuning epochs. Pre-training
# uses train.py's default optimizer (Muon for the blocks' matrices, AdamW for the rest).
TOKENIZER = "gpt2:4096"
FULL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=32, max_iters=300,
            learning_rate=1e-2, epochs=3, finetune_texts=None, finetune_lr=1e-3)  # fmt: skip
QUICK = dict(n_layer=1, n_head=2, n_embd=32, block_size=64, batch_size=8, max_iters=30,
             learning_rate=1e-2, epochs=1, finetune_texts=1000, finetune_lr=1e-3)  # fmt: skip


def pretraining_corpus(out_dir: Path) -> Path:
    """train.bin/val.bin/meta.json of movie train-split + unlabelled snippets in TOKENIZER."""
    if (out_dir / "meta.json").is_file():
        return out_dir
    ensure_dataset(REVIEWS)  # the labelled JSONL splits
    spec = importlib.util.spec_from_file_location("movie_reviews_prepare", REVIEWS / "prepare.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    extra = [text for stem in script.EXTRA for _, _, text in script.read_snippets()[stem]]
    lines = (REVIEWS / "train.jsonl").read_text(encoding="utf-8").splitlines()
    train_texts = [json.loads(line)["text"] for line in lines]
    source = {"movie_reviews": "train split", "unlabelled": list(script.EXTRA)}
    meta = prepare_documents(
        train_texts + extra, TOKENIZER, out_dir, source=source, val_fraction=0.02
    )
    # every objective's special tokens in the data's tokenizer, so every model gets the same
    # vocabulary (and parameter count); the text ids are unchanged
    tokenizer = Tokenizer.from_spec(meta["tokenizer"])
    tokenizer.add_special_tokens([MASK_TOKEN, *SENTINELS])
    meta["tokenizer"] = tokenizer.to_spec()
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return out_dir


def pretrain(objective: str, corpus: Path, out_dir: Path, seed: int, s: dict) -> dict[str, Any]:
    """Train `objective` from scratch; the checkpoint lands in out_dir."""
    cfg = TrainConfig(
        out_dir=str(out_dir), data_dir=str(corpus), objective=objective, seed=seed,
        compute=DeviceConfig("cpu", "float32"), n_layer=s["n_layer"], n_head=s["n_head"],
        n_embd=s["n_embd"], block_size=s["block_size"], batch_size=s["batch_size"],
        max_iters=s["max_iters"], lr_decay_iters=s["max_iters"],
        warmup_iters=s["max_iters"] // 10, learning_rate=s["learning_rate"],
        min_lr=s["learning_rate"] / 10, eval_interval=s["max_iters"], eval_iters=10,
        log_interval=max(s["max_iters"] // 5, 1), progress=False, sample_tokens=0,
    )  # fmt: skip
    start = time.perf_counter()
    trainer = Trainer(cfg)
    result = trainer.train()
    return {
        "pretrain_val_loss": result.best_val_loss,
        "pretrain_wall_s": time.perf_counter() - start,
        "params": trainer.model.num_params(),
    }


def random_model(corpus: Path, out_dir: Path, seed: int, s: dict) -> dict[str, Any]:
    """The causal model's architecture with random weights: the no-pre-training baseline."""
    tokenizer = Tokenizer.from_spec(load_meta(corpus)["tokenizer"])
    config = GPTConfig(
        vocab_size=tokenizer.padded_vocab_size(64), n_vocab=tokenizer.n_vocab,
        block_size=s["block_size"], n_layer=s["n_layer"], n_head=s["n_head"],
        n_embd=s["n_embd"], bias=TrainConfig.bias, dropout=0.0,
    )  # fmt: skip
    model = random_base(config, tokenizer, out_dir, seed)
    return {"pretrain_val_loss": None, "pretrain_wall_s": 0.0, "params": model.num_params()}


def training_texts(out_dir: Path, n_texts: int | None) -> Path:
    """The train split, or a file of n_texts of its rows, evenly spaced (the file is ordered by
    snippet id, which follows the rating)."""
    if n_texts is None:
        return REVIEWS / "train.jsonl"
    rows = (REVIEWS / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [rows[i * len(rows) // n_texts] for i in range(min(n_texts, len(rows)))]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"train-{n_texts}.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def fine_tune(
    base: Path, out_dir: Path, seed: int, s: dict, classifier: type[GPTClassifier] = GPTClassifier
) -> dict[str, Any]:
    """Fine-tune `base` with `classifier` (the head swap; a bench may pass a variant)."""
    cfg = FinetuneConfig(
        init_from=str(base), data_dir=str(REVIEWS), out_dir=str(out_dir),
        train_file=str(training_texts(out_dir.parent, s["finetune_texts"])),
        epochs=s["epochs"], seed=seed, progress=False, patience=0, max_len=s["block_size"],
        learning_rate=s["finetune_lr"], pooling="mean", select_on="macro_f1",
        threads=torch.get_num_threads(),
    )  # fmt: skip
    cfg.validate()
    start = time.perf_counter()
    metrics = run(cfg, classifier)
    return {
        "test_accuracy": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        "finetune_wall_s": time.perf_counter() - start,
    }


def run_row(name: str, corpus: Path, out_dir: Path, seed: int, s: dict) -> dict[str, Any]:
    base = out_dir / f"{name}-seed{seed}" / "base"
    if name == BASELINE:
        pre = random_model(corpus, base, seed, s)
    else:
        pre = pretrain(name, corpus, base, seed, s)
    return {**pre, **fine_tune(base, base.parent / "classifier", seed, s)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample SD over seeds of every numeric field that all runs have."""
    out: dict[str, Any] = {"params": runs[0]["params"]}
    for key in ("test_accuracy", "test_macro_f1", "pretrain_val_loss", "pretrain_wall_s",
                "finetune_wall_s"):  # fmt: skip
        values = [r[key] for r in runs if r[key] is not None]
        if values:
            out[key] = mean_sd(values)
    return out


def markdown(rows: dict[str, dict[str, Any]]) -> str:
    def cell(row: dict, key: str, fmt: str = ".3f") -> str:
        return pm(row[key], fmt) if key in row else "-"

    header = ("pre-training", "attention", "test accuracy", "test macro-F1",
              "pre-training val loss", "pre-training s", "fine-tuning s")  # fmt: skip
    table = [
        (name, ATTENTION.get(name, "causal"), cell(row, "test_accuracy"),
         cell(row, "test_macro_f1"), cell(row, "pretrain_val_loss"),
         cell(row, "pretrain_wall_s", ".0f"), cell(row, "finetune_wall_s", ".0f"))
        for name, row in rows.items()
    ]  # fmt: skip
    return markdown_table(header, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and budget (< 3 min)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (3; quick: 1)")
    parser.add_argument("--out_dir", default="out-bench-objectives")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--max_iters", type=int, help="pre-training steps (another budget)")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs")
    parser.add_argument("--finetune_texts", type=int, help="train-split texts to fine-tune on")
    parser.add_argument(
        "--rows", default=",".join((*OBJECTIVES, BASELINE)),
        help=f"comma-separated rows to run: objectives and/or {BASELINE!r} (no pre-training)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = dict(QUICK if args.quick else FULL)
    for key in ("max_iters", "epochs", "finetune_texts"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    seeds = args.seeds or (1 if args.quick else 3)
    out_dir = Path(args.out_dir)
    start = time.perf_counter()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in args.rows.split(",")}
    known = (*OBJECTIVES, BASELINE)
    unknown = [name for name in rows if name not in known]
    if unknown:
        parser.error(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    with contextlib.redirect_stdout(sys.stderr):  # run logs to stderr, the JSON alone to stdout
        corpus = pretraining_corpus(out_dir / "corpus")
        for seed in range(seeds):
            for name in rows:
                rows[name].append(run_row(name, corpus, out_dir, 1000 + seed, settings))
    summary = {name: summarise(runs) for name, runs in rows.items()}
    result = {
        "command": " ".join(["python", "bench/objectives.py", *sys.argv[1:]]),
        "settings": {
            **settings,
            "seeds": seeds,
            "pretrain_tokens": settings["max_iters"]
            * settings["batch_size"]
            * settings["block_size"],
        },  # fmt: skip
        "host": host(),
        "rows": summary,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result, indent=1))
    print(markdown(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
