"""Evaluation: compare models on the same work, whatever their tokenizers.

scoring.py  log p of scored token spans under a causal model: the one model call of this package
bpb.py      bits per UTF-8 byte (and loss, perplexity) of documents, in sliding windows
texts.py    the documents to score: prepared datasets decoded back to text, or text files
tasks.py    zero- and few-shot multiple choice by log-likelihood: accuracy, accuracy_norm
models.py   checkpoints to evaluate, their tokenizers and objectives
config.py   EvalConfig: every eval.py setting
run.py      one eval.py run: every checkpoint on every dataset and task
report.py   the table or JSON that eval.py prints
harness.py  the "minigpt" model of lm-evaluation-harness (needs the `eval` extra; not imported here)
"""

from minigpt.eval.bpb import TextScore, score_documents, window_bounds
from minigpt.eval.models import EvalModel, load_eval_model
from minigpt.eval.scoring import Span, SpanScore, SpanScorer, score_causal
from minigpt.eval.tasks import (
    ChoiceItem,
    TaskScore,
    evaluate_task,
    fewshot_items,
    load_task,
    score_continuations,
)
from minigpt.eval.texts import Texts, load_texts

__all__ = [
    "ChoiceItem",
    "EvalModel",
    "Span",
    "SpanScore",
    "SpanScorer",
    "TaskScore",
    "TextScore",
    "Texts",
    "evaluate_task",
    "fewshot_items",
    "load_eval_model",
    "load_task",
    "load_texts",
    "score_causal",
    "score_continuations",
    "score_documents",
    "window_bounds",
]
