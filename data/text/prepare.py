"""Your own corpus: local text files, folders (searched recursively) or glob patterns become
train.bin / val.bin. Each file is one document, followed by the end-of-text token (or a blank
line for char/bytes tokenizers); the first 90% of the stream is train, the rest val.

    python data/text/prepare.py notes/ "books/**/*.txt" extra.md [--tokenizer gpt2] [--out_dir DIR]

Files must be UTF-8; --errors=replace turns invalid bytes into U+FFFD instead of stopping.
The whole corpus is held in memory while it is tokenized: for corpora larger than RAM, stream
documents into `minigpt.data.prepare.write_bin` as data/openwebtext does.
"""

import sys
from pathlib import Path

# runnable from a checkout: this checkout's minigpt wins over any other installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minigpt.data.corpus import expand_inputs, read_text  # noqa: E402
from minigpt.data.prepare import prepare_documents, run_cli  # noqa: E402

HERE = Path(__file__).resolve().parent


def prepare(
    inputs: list[str],
    out_dir: str | Path = HERE,
    tokenizer: str = "gpt2",
    val_fraction: float = 0.1,
    errors: str = "strict",
    num_threads: int = 8,
) -> dict:
    """Write train.bin, val.bin and meta.json for the files named by `inputs`; returns the meta."""
    files = expand_inputs(inputs)
    docs = [read_text(path, errors) for path in files]
    source = {"inputs": list(inputs), "files": len(files)}
    return prepare_documents(
        docs, tokenizer, out_dir,
        source=source, val_fraction=val_fraction, num_threads=num_threads,
    )  # fmt: skip


if __name__ == "__main__":
    run_cli(prepare, __doc__)
