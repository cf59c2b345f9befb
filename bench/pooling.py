"""Pooling for bidirectional classifiers: mean of the hidden states vs a prepended token.

    python bench/pooling.py [--base=out-bench-objectives/mlm-seed1000/base] [--seeds=3]
                            [--finetune_texts=N]

A bidirectional (BERT-style) model has no "last token that saw the whole text": every position
saw it. Two ways to get one feature per text:

    mean   f = (1/m) sum_{i<=m} h_i        what minigpt.finetune.classifier does
    first  f = h_0 of a classification token prepended to the text (BERT's [CLS]); here the
           last embedding row, a padding slot no text or objective uses, trained from its
           random init during fine-tuning (our MLM pre-training has no next-sentence task
           that would train it before)

Both fine-tune the same MLM checkpoint on the 5-level movie-review task with the settings of
bench/objectives.py (texts cut one token shorter, so the extra token fits). Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import objectives
import torch
from common import mean_sd

from minigpt.finetune.classifier import GPTClassifier


class FirstTokenClassifier(GPTClassifier):
    """Pools the hidden state of a classification token prepended to every text."""

    def hidden_states(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        token = torch.full_like(input_ids[:, :1], self.gpt.config.vocab_size - 1)
        return super().hidden_states(torch.cat([token, input_ids], dim=1), lengths + 1)

    def pool(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return h[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="out-bench-objectives/mlm-seed1000/base")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out_dir", default="out-bench-pooling")
    parser.add_argument("--finetune_texts", type=int, default=objectives.FULL["finetune_texts"])
    args = parser.parse_args()
    settings = {**objectives.FULL, "block_size": objectives.FULL["block_size"] - 1,
                "finetune_texts": args.finetune_texts}  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {}
    with contextlib.redirect_stdout(sys.stderr):
        for name, classifier in (("mean", GPTClassifier), ("first", FirstTokenClassifier)):
            out_dir = Path(args.out_dir) / name
            runs = [objectives.fine_tune(Path(args.base), out_dir, 1000 + s, settings, classifier)
                    for s in range(args.seeds)]  # fmt: skip
            results[name] = {k: [round(r[k], 4) for r in runs]
                             for k in ("test_accuracy", "test_macro_f1")}  # fmt: skip
    summary = {name: {k: mean_sd(v) for k, v in metrics.items()}
               for name, metrics in results.items()}  # fmt: skip
    print(json.dumps({"base": args.base, "settings": settings, "pooling": summary}, indent=1))


if __name__ == "__main__":
    main()
