"""Fine-tuning benchmark: movie_reviews 5-class, in-domain pre-training vs training from scratch.

    python bench/finetune.py [--epochs=2] [--methods=head,full,lora] [--out_dir=out-bench-finetune]

The pre-trained base is finetune.py's own (`--pretrain_out`, default out-finetune-lm): reused if
it exists, else trained with train.py first (that time is reported apart). The scratch base is
the same architecture with fresh random weights. Each (base, method) pair runs finetune.py's
`run` with identical settings; the JSON printed at the end has test accuracy, macro-F1 and wall
time for each, next to two baselines computed on the same fixed test split: the majority class,
and TF-IDF + multinomial logistic regression (unigrams and bigrams, L2 strength picked on val).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's finetune.py and minigpt

import finetune  # noqa: E402
from minigpt.checkpoint import load_tokenizer  # noqa: E402
from minigpt.finetune.config import FinetuneConfig  # noqa: E402
from minigpt.finetune.metrics import classification_report  # noqa: E402
from minigpt.model.gpt import GPT  # noqa: E402


def scratch_base(pretrained: Path, out_dir: Path, seed: int) -> Path:
    """The pre-trained model's architecture and tokenizer with random weights."""
    config = GPT.from_pretrained(pretrained).config
    torch.manual_seed(seed)
    GPT(config).save_pretrained(out_dir, load_tokenizer(pretrained))
    return out_dir


def finetune_run(base: Path, method: str, out_dir: Path, epochs: int, seed: int) -> dict:
    cfg = FinetuneConfig(
        init_from=str(base), method=method, out_dir=str(out_dir), epochs=epochs, seed=seed,
        progress=False, patience=0,
    )  # fmt: skip
    cfg.validate()
    start = time.perf_counter()
    metrics = finetune.run(cfg)
    return {
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
        "test_macro_f1": round(metrics["test"]["macro_f1"], 4),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "trainable_params": metrics["trainable_params"],
        "best_epoch": metrics["best_epoch"],
        "val_accuracy_by_epoch": [round(r["val_accuracy"], 4) for r in metrics["epochs"]],
        "untrained_head_accuracy": round(metrics["baselines"]["untrained_head"]["accuracy"], 4),
        "majority": metrics["baselines"]["majority"],
    }


# ---- TF-IDF + logistic regression ------------------------------------------------------------


def _read(split: str, data_dir: Path) -> tuple[list[str], list[int]]:
    rows = [json.loads(line) for line in (data_dir / f"{split}.jsonl").read_text().splitlines()]
    return [r["text"] for r in rows], [int(r["label5"]) for r in rows]


def _ngrams(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def _tfidf(docs: list[list[str]], vocab: dict[str, int], idf: torch.Tensor) -> torch.Tensor:
    """Sparse (N x V) rows of tf * idf, each scaled to unit L2 norm."""
    rows, cols, vals = [], [], []
    for i, doc in enumerate(docs):
        counts = Counter(t for t in doc if t in vocab)
        weights = {vocab[t]: (1 + math.log(c)) * float(idf[vocab[t]]) for t, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        for j, w in weights.items():
            rows.append(i)
            cols.append(j)
            vals.append(w / norm)
    shape = (len(docs), len(vocab))
    return torch.sparse_coo_tensor([rows, cols], vals, shape, dtype=torch.float32).coalesce()


def tfidf_logreg(data_dir: Path, num_labels: int = 5) -> dict:
    """Sublinear TF-IDF over uni+bigrams seen in >= 2 training texts; softmax regression with
    L2 penalty c ||W||^2 trained full-batch by L-BFGS; c picked by validation macro-F1."""
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        _read(s, data_dir) for s in ("train", "val", "test")
    )
    texts = {"train": train_x, "val": val_x, "test": test_x}
    docs = {s: [_ngrams(t) for t in x] for s, x in texts.items()}
    df = Counter(t for doc in docs["train"] for t in set(doc))
    vocab = {t: i for i, t in enumerate(sorted(t for t, n in df.items() if n >= 2))}
    n = len(docs["train"])
    idf = torch.tensor([math.log((1 + n) / (1 + df[t])) + 1 for t in vocab])
    X = {s: _tfidf(d, vocab, idf) for s, d in docs.items()}
    y = torch.tensor(train_y)
    labels = [str(k) for k in range(num_labels)]
    best = None
    for c in (1e-4, 3e-4, 1e-3, 3e-3):
        W = torch.zeros(len(vocab), num_labels, requires_grad=True)
        b = torch.zeros(num_labels, requires_grad=True)
        opt = torch.optim.LBFGS([W, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure(W=W, b=b, opt=opt, c=c):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(torch.sparse.mm(X["train"], W) + b, y)
            loss = loss + c * W.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            val_pred = (torch.sparse.mm(X["val"], W) + b).argmax(-1).tolist()
            f1 = classification_report(val_y, val_pred, labels)["macro_f1"]
            if best is None or f1 > best[0]:
                test_pred = (torch.sparse.mm(X["test"], W) + b).argmax(-1).tolist()
                best = (f1, c, classification_report(test_y, test_pred, labels))
    f1, c, report = best
    return {
        "test_accuracy": round(report["accuracy"], 4),
        "test_macro_f1": round(report["macro_f1"], 4),
        "l2": c,
        "vocab": len(vocab),
        "val_macro_f1": round(f1, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--methods", default="head,full,lora")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out_dir", default="out-bench-finetune")
    args = parser.parse_args()
    if finetune.TIKTOKEN_CACHE.is_dir():
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(finetune.TIKTOKEN_CACHE))
    out = Path(args.out_dir)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # run logs to stderr, the JSON alone to stdout
        pretrained = finetune.base_model(FinetuneConfig())
        pretrain_s = time.perf_counter() - start
        scratch = scratch_base(pretrained, out / "scratch-base", args.seed)
        bases = {"pretrained": pretrained, "scratch": scratch}
        runs = []
        for init, base in bases.items():
            for method in args.methods.split(","):
                result = finetune_run(
                    base, method, out / f"{init}-{method}", args.epochs, args.seed
                )
                runs.append({"init": init, "method": method, **result})
    data_dir = ROOT / "data" / "movie_reviews"
    baseline_start = time.perf_counter()
    tfidf = tfidf_logreg(data_dir)
    tfidf["wall_time_s"] = round(time.perf_counter() - baseline_start, 1)
    report = {
        "task": "movie_reviews label5 (5 classes), fixed test split",
        "command": "python bench/finetune.py " + " ".join(sys.argv[1:]),
        "epochs": args.epochs,
        "base": {"path": str(pretrained), "pretrain_or_reuse_s": round(pretrain_s, 1),
                 "config": asdict(GPT.from_pretrained(pretrained).config)},
        "runs": [{k: v for k, v in r.items() if k != "majority"} for r in runs],
        "baselines": {"majority": runs[0]["majority"], "tfidf_logreg": tfidf},
        "host": {"cpu_threads": torch.get_num_threads(), "load_avg": os.getloadavg(),
                 "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "total_wall_time_s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
