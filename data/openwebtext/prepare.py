"""OpenWebText (or any Hugging Face text dataset, e.g. a FineWeb-Edu sample) for online users:
needs the optional `datasets` package (pip install datasets) and network access; CI never runs it.

    python data/openwebtext/prepare.py [--dataset Skylion007/openwebtext] [--subset ""]
        [--val_fraction 0.0005] [--max_docs 0] [--tokenizer gpt2] [--out_dir DIR]
    python data/openwebtext/prepare.py --dataset HuggingFaceFW/fineweb-edu --subset sample-10BT

Documents are held out for val.bin by a seeded shuffle (as nanoGPT does), then streamed through
the tokenizer into the bins piece by piece, so the corpus never has to fit in memory.
OpenWebText is about 9B GPT-2 tokens: train.bin is ~17 GB as uint16.
"""

import sys
from pathlib import Path

# runnable from a checkout: this checkout's minigpt wins over any other installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minigpt.data.prepare import run_cli, write_meta, write_splits  # noqa: E402
from minigpt.data.tokenizer import Tokenizer  # noqa: E402

HERE = Path(__file__).resolve().parent
SPLITS = {"train": "train", "val": "test"}  # our bin name -> the split train_test_split made


def prepare(
    out_dir: str | Path = HERE,
    dataset: str = "Skylion007/openwebtext",
    subset: str = "",
    text_column: str = "text",
    val_fraction: float = 0.0005,
    seed: int = 2357,
    max_docs: int = 0,
    tokenizer: str = "gpt2",
    num_threads: int = 8,
) -> dict:
    """Download `dataset` (its train split), hold out `val_fraction` of the documents, and write
    train.bin, val.bin and meta.json; `max_docs` > 0 keeps only that many documents (a sample)."""
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "this dataset needs the `datasets` package: pip install datasets"
        ) from None
    corpus = datasets.load_dataset(dataset, subset or None, split="train")
    if max_docs:
        corpus = corpus.select(range(min(max_docs, len(corpus))))
    parts = corpus.train_test_split(test_size=val_fraction, seed=seed, shuffle=True)
    tok = Tokenizer.from_name(tokenizer)
    docs = {name: (row[text_column] for row in parts[key]) for name, key in SPLITS.items()}
    bins = write_splits(out_dir, tok, docs, num_threads=num_threads)
    source = {"dataset": dataset, "subset": subset, "documents": len(corpus), "seed": seed}
    return write_meta(out_dir, tok, bins, source)


if __name__ == "__main__":
    run_cli(prepare, __doc__)
