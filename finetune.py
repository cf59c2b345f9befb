"""Fine-tune a GPT into a text classifier, and classify texts with the result.

    python finetune.py [config/NAME.toml ...] [--key=value ...]     train, evaluate, save
    python finetune.py predict --out_dir=DIR --text "..."           (or --file=texts.txt)

With no arguments it classifies movie_reviews snippets into 5 rating levels (preparing the data
if needed) with the best recipe measured: with no `--init_from` it first pre-trains (or reuses) a
BERT-style masked LM over GPT-2 BPE cut to 4,096 ids (config/movie_reviews_mlm.toml, on the review
texts plus the archive's unlabelled snippets), then fine-tunes it whole with mean pooling, keeping
the epoch with the best val macro-F1. `--method` picks what trains (head, top, full, lora,
adalora, adapter, prefix; minigpt.finetune.peft); `--readout=prompt` scores each class by its
label word in `--template` through the LM head instead of a new head (minigpt.finetune.prompt).
The run reports validation loss/accuracy/macro-F1 every epoch, then test loss, accuracy, macro-F1,
per-class precision/recall and the confusion matrix next to two baselines (the majority class,
and the untrained head), and writes them to out_dir/metrics.json, with confusion.png and
learning_curves.png beside it when matplotlib is installed. `--help` lists every setting.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from minigpt.finetune.config import FinetuneConfig, PredictConfig
from minigpt.finetune.predict import predict
from minigpt.finetune.run import run
from minigpt.settings import help_text, parse_settings, run_cli

USAGE = "python finetune.py [predict] [config/NAME.toml ...] [--key=value ...]"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        help = __doc__ + "\n" + help_text(PredictConfig, USAGE)
        return run_cli(argv[1:], help, lambda args: predict(parse_settings(PredictConfig, args)))
    help = __doc__ + "\n" + help_text(FinetuneConfig, USAGE)
    return run_cli(argv, help, lambda args: run(parse_settings(FinetuneConfig, args)))


if __name__ == "__main__":
    sys.exit(main())
