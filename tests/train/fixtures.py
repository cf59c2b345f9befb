"""Tiny datasets and configs shared by the training tests: seconds on two CPU cores."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from minigpt.data.prepare import prepare_documents
from minigpt.device import DeviceConfig
from minigpt.train.config import TrainConfig

VERSE = (
    "Shall I compare thee to a summer's day?\n"
    "Thou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\n"
    "And summer's lease hath all too short a date.\n"
)


def make_dataset(directory: Path, repeats: int = 40) -> Path:
    """A character-level dataset of one repeated verse (easy to learn, so loss falls fast)."""
    prepare_documents([VERSE * repeats], "char", directory, source={"test": True}, val_fraction=0.2)
    return directory


def tiny_train_config(out_dir: Path, data_dir: Path, **overrides) -> TrainConfig:
    """A one-block model on CPU in fp32 with AdamW (what the tests' thresholds were measured
    with), no progress bar, no sample: the shape of every test. `device` and `dtype` overrides
    set the compute group."""
    compute = DeviceConfig(overrides.pop("device", "cpu"), overrides.pop("dtype", "float32"))
    base = TrainConfig(
        out_dir=str(out_dir), data_dir=str(data_dir), compute=compute,
        n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, dropout=0.0,
        max_iters=20, lr_decay_iters=20, warmup_iters=2, learning_rate=1e-2, min_lr=1e-3,
        eval_interval=10, eval_iters=2, log_interval=5, progress=False, sample_tokens=0,
        optimizer="adamw",
    )  # fmt: skip
    return dataclasses.replace(base, **overrides)
