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

import sys
from collections.abc import Sequence

from minigpt.eval.config import EvalConfig
from minigpt.eval.report import format_json, format_table
from minigpt.eval.run import run_eval
from minigpt.settings import help_text, parse_settings, run_cli

USAGE = "usage: python eval.py [config.toml ...] [--key=value | --key value ...]"


def evaluate(argv: Sequence[str]) -> None:
    cfg = parse_settings(EvalConfig, argv)
    report = run_eval(cfg)
    print(format_json(report) if cfg.json else format_table(report.rows))


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, help_text(EvalConfig, USAGE), evaluate)


if __name__ == "__main__":
    sys.exit(main())
