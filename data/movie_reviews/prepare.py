"""Movie-review sentiment: the 10,605 Rotten Tomatoes snippets that human raters scored from -4 to
4 (Hutto & Gilbert, ICWSM 2014), from the `vaderSentiment==3.3.2` source archive.

    python data/movie_reviews/prepare.py [--out_dir DIR] [--tokenizer gpt2] [--cache_dir DIR]

`--tokenizer gpt2:8192` keeps the 8,192 GPT-2 ids that the LM training text uses most (rarer
tokens split into kept ones): an LM head 6x smaller, for ~13% more tokens. A vocabulary built
from text (char, gpt2:N) sees the LM training text only, never val or test.

Writes into out_dir:

- train.jsonl, val.jsonl, test.jsonl: one {"id", "text", "rating", "label5", "label2"} per line.
  `rating` is the mean human rating in [-4, 4].
  `label5` cuts [-4, 4] into five buckets of width 1.6 (like SST-5):
      0 very negative  [-4, -2.4)     1 negative  [-2.4, -0.8)     2 neutral  [-0.8, 0.8]
      3 positive       (0.8, 2.4]     4 very positive  (2.4, 4]
  `label2` is 0 (negative) for label5 0-1, 1 (positive) for label5 3-4, and null for neutral
  snippets, which are left out of the binary task as in SST-2: read them with
  `LabelledTextDataset(path, tok, label_column="label2", skip_unlabelled=True)`.
  The split is fixed by the snippet id: h = first 8 bytes of sha256(id) as a big-endian integer;
  h mod 100 < 80 is train, < 90 val, else test.
- task5_test.jsonl, task5_train.jsonl: the 5-level rating as a zero-shot multiple-choice task for
  eval.py --tasks (and its few-shot pool), one {"context", "choices", "label"} per line: the
  context is TASK_PROMPT around the snippet, which names the five choice words; the choices are
  those words with a leading space; the label is label5.
- train.bin, val.bin, meta.json: token streams for in-domain language-model pre-training.
  train.bin holds the train-split movie snippets plus every amazon, NYT and tweet snippet of the
  same archive (unlabelled extra text); val.bin holds the val-split movie snippets. Test snippets
  are in neither, so a classifier is never tested on text it was pre-trained on.
"""

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

# runnable from a checkout: this checkout's minigpt wins over any other installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minigpt.data.corpus import decode_text, fetch_sdist, read_tar  # noqa: E402
from minigpt.data.prepare import make_tokenizer, run_cli, write_meta, write_splits  # noqa: E402

HERE = Path(__file__).resolve().parent
ARCHIVE = "vaderSentiment==3.3.2"
INNER = "*/additional_resources/hutto_ICWSM_2014.tar.gz"
MOVIES = "movieReviewSnippets"  # labelled; files are <stem>_GroundTruth.txt
EXTRA = ("amazonReviewSnippets", "nytEditorialSnippets", "tweets")  # unlabelled LM text
LABEL5 = ("very negative", "negative", "neutral", "positive", "very positive")
LABEL5_EDGES = (-2.4, -0.8, 0.8, 2.4)
LABEL2 = ("negative", "positive")
SPLITS = ("train", "val", "test")
TASK_PROMPT = (
    "Review: {text}\nRating (very negative, negative, neutral, positive or very positive):"
)
TASK_SPLITS = ("test", "train")  # scored items, and the pool few-shot examples are drawn from


def label5(rating: float) -> int:
    """Five equal buckets over [-4, 4]; the neutral one is closed so the scheme is symmetric."""
    very_neg, neg, pos, very_pos = LABEL5_EDGES
    if rating < neg:
        return 0 if rating < very_neg else 1
    if rating > pos:
        return 4 if rating > very_pos else 3
    return 2


def label2(label: int) -> int | None:
    """Positive/negative from label5; None for neutral."""
    return None if label == 2 else int(label > 2)


def split_of(snippet_id: str) -> str:
    """train/val/test by a hash of the id: stable across runs, machines and Python versions."""
    bucket = int.from_bytes(hashlib.sha256(snippet_id.encode()).digest()[:8], "big") % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"


def task_item(row: dict) -> dict:
    """A labelled snippet as a multiple-choice item: which rating word follows the prompt?"""
    choices = [f" {name}" for name in LABEL5]
    return {
        "context": TASK_PROMPT.format(text=row["text"]),
        "choices": choices,
        "label": row["label5"],
    }


def read_snippets(cache_dir: str | None = None) -> dict[str, list[tuple[str, float, str]]]:
    """{file stem: [(id, rating, text), ...]} for the four ground-truth files of the archive."""
    archive = fetch_sdist(ARCHIVE, cache_dir)
    (inner,) = read_tar(archive, INNER).values()
    files = read_tar(inner, "*_GroundTruth.txt")
    out = {}
    for name, data in files.items():
        rows = [line.split("\t", 2) for line in decode_text(data, name).splitlines() if line]
        stem = Path(name).name.removesuffix("_GroundTruth.txt")
        out[stem] = [(i, float(rating), text.strip()) for i, rating, text in rows]
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_text("".join(lines), encoding="utf-8")


def prepare(
    out_dir: str | Path = HERE,
    tokenizer: str = "gpt2",
    cache_dir: str | None = None,
    num_threads: int = 8,
) -> dict:
    """Write the labelled JSONL splits, the LM bins and meta.json; returns the meta."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    snippets = read_snippets(cache_dir)
    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for i, rating, text in snippets[MOVIES]:
        label = label5(rating)
        row = {"id": i, "text": text, "rating": rating, "label5": label, "label2": label2(label)}
        splits[split_of(i)].append(row)
    for name, rows in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
    for name in TASK_SPLITS:
        write_jsonl(out_dir / f"task5_{name}.jsonl", [task_item(row) for row in splits[name]])

    extra = [text for stem in EXTRA for _, _, text in snippets[stem]]
    texts = {name: [row["text"] for row in rows] for name, rows in splits.items()}
    lm_docs = {"train": texts["train"] + extra, "val": texts["val"]}
    tok = make_tokenizer(tokenizer, lm_docs["train"])  # fitted on training text only
    bins = write_splits(out_dir, tok, lm_docs, num_threads=num_threads)
    source = {"archive": ARCHIVE, "labelled": MOVIES, "extra_lm_text": EXTRA}
    meta = write_meta(
        out_dir, tok, bins, source,
        labels={"label5": LABEL5, "label2": LABEL2}, label5_edges=LABEL5_EDGES,
        examples={name: _histograms(rows) for name, rows in splits.items()},
    )  # fmt: skip
    print("examples:", {name: len(rows) for name, rows in splits.items()})
    return meta


def _histograms(rows: list[dict]) -> dict:
    """Row count and per-class counts; label2's neutral rows are counted under "null"."""
    label5_counts = Counter(r["label5"] for r in rows)
    label2_counts = Counter(r["label2"] for r in rows)
    return {
        "rows": len(rows),
        "label5": [label5_counts[k] for k in range(len(LABEL5))],
        "label2": [label2_counts[k] for k in range(len(LABEL2))],
        "label2_null": label2_counts[None],
    }


if __name__ == "__main__":
    run_cli(prepare, __doc__)
