"""movie_reviews with GPT-2 BPE cut to the 4,096 ids its LM training text uses most: the data of
finetune.py's default base (a masked LM, config/movie_reviews_mlm.toml).

    python data/movie_reviews_4k/prepare.py [--out_dir DIR] [--tokenizer gpt2:4096]

The same files as data/movie_reviews/prepare.py (its docstring says what each holds), written
here by that script with this tokenizer: the rarer GPT-2 tokens split into kept ones, so the
LM head has 4,096 rows instead of 50,257, most of a small model's compute.
"""

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent / "movie_reviews" / "prepare.py"
_spec = importlib.util.spec_from_file_location("movie_reviews_prepare", SCRIPT)
movie_reviews = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(movie_reviews)


def prepare(
    out_dir: str | Path = HERE,
    tokenizer: str = "gpt2:4096",
    cache_dir: str | None = None,
    num_threads: int = 8,
) -> dict:
    """data/movie_reviews/prepare.py's `prepare` with the cut vocabulary."""
    return movie_reviews.prepare(out_dir, tokenizer, cache_dir, num_threads)


if __name__ == "__main__":
    movie_reviews.run_cli(prepare, __doc__)
