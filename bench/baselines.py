"""Bag-of-words baselines for the movie-review task (scikit-learn, the `bench` extra).

TF-IDF (uni+bigrams, min_df 2, sublinear tf) + logistic regression, unweighted or with
class_weight="balanced", C chosen on val macro-F1; and the majority class. Any subset of the
train split can be given, so a label-efficiency curve compares like with like.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

try:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
except ImportError:
    sys.exit('this bench needs scikit-learn: pip install -e ".[bench]"')

from minigpt.finetune.metrics import classification_report

LABEL_COLUMN = "label5"
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
Split = tuple[list[str], list[int]]  # texts, labels


def read_split(file: Path, label_column: str = LABEL_COLUMN) -> Split:
    """(texts, integer labels) of a JSONL split."""
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows], [int(r[label_column]) for r in rows]


def tfidf_logreg(train: Split, val: Split, test: Split, class_weight: str | None) -> dict[str, Any]:
    """Test accuracy and macro-F1 of the C (from C_GRID) with the best val macro-F1."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    X_train = vectorizer.fit_transform(train[0])
    X_val, X_test = vectorizer.transform(val[0]), vectorizer.transform(test[0])
    labels = [str(k) for k in sorted(set(train[1]) | set(test[1]))]
    best = None
    for C in C_GRID:
        model = LogisticRegression(C=C, class_weight=class_weight, max_iter=2000)
        model.fit(X_train, train[1])
        f1 = classification_report(val[1], model.predict(X_val).tolist(), labels)["macro_f1"]
        if best is None or f1 > best[0]:
            best = (f1, C, model)
    f1, C, model = best
    report = classification_report(test[1], model.predict(X_test).tolist(), labels)
    return {
        "test_accuracy": round(report["accuracy"], 4),
        "test_macro_f1": round(report["macro_f1"], 4),
        "C": C,
        "val_macro_f1": round(f1, 4),
        "features": len(vectorizer.vocabulary_),
    }


def majority(train: Split, test: Split) -> dict[str, float]:
    """Always the most frequent training label."""
    labels = [str(k) for k in sorted(set(train[1]) | set(test[1]))]
    most = max(set(train[1]), key=train[1].count)
    report = classification_report(test[1], [most] * len(test[1]), labels)
    return {"test_accuracy": round(report["accuracy"], 4),
            "test_macro_f1": round(report["macro_f1"], 4)}  # fmt: skip
