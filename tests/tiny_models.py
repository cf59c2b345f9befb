"""Tiny models shared by the tests: every architectural switch of the GPT family, and the one
thread they run fastest on."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

import minigpt


def tiny_gpt_config(**overrides) -> minigpt.GPTConfig:
    base = dict(vocab_size=67, block_size=32, n_layer=2, n_head=4, n_embd=32)
    return minigpt.GPTConfig(**{**base, **overrides})


# Every architectural switch, so each feature meets both attention implementations.
VARIANTS = {
    "gpt2": {},
    "local": dict(layer_types=("global", "local"), window_size=5),
    "neo": dict(layer_types=("local", "global"), window_size=7, scale_attn=False, qkv_bias=False),
    "gptj": dict(
        position="rotary",
        rotary_dim=4,
        parallel_residual=True,
        tie_word_embeddings=False,
        lm_head_bias=True,
        qkv_bias=False,
        attn_proj_bias=False,
    ),  # fmt: skip
}


DEFAULT_THREADS = torch.get_num_threads()  # what a user's process gets: one per core

# train.py's default width, context and batch (two blocks): tests of exact repetition use it so
# that they run the kernels and the thread splits of a user's default run. How work is split
# shows in the sums (1 and 2 threads give losses 2e-7 apart), so those tests never pin threads.
THREADED_SHAPE = dict(n_layer=2, n_head=4, n_embd=128, block_size=64, batch_size=12)


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block on `n` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny models on one thread: faster than two for them, and on a shared machine two
    spinning OpenMP threads can be ten times slower."""
    with threads(1):
        yield
