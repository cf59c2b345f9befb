"""Token bins sampled as (x, y) windows: the language-modelling data.

A prepared dataset is a folder with `train.bin` / `val.bin` (one flat array of token ids, uint16 or
uint32) and `meta.json`. A batch is B windows of T+1 consecutive tokens at uniformly random offsets
o_b, split into inputs and targets shifted by one:

    x[b, t] = data[o_b + t],   y[b, t] = data[o_b + t + 1],   o_b ~ U{0, ..., N - T - 1}

so y[b, t] is the token that follows x[b, :t+1]: the x_{i+1} of
L = -sum_i log p(x_{i+1} | x_1..x_i).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minigpt.data.prepare import META_FILE
from minigpt.data.tokenizer import Tokenizer


def load_meta(data_dir: str | os.PathLike) -> dict[str, Any]:
    """The `meta.json` that a `data/<name>/prepare.py` script wrote into `data_dir`."""
    path = Path(data_dir) / META_FILE
    if not path.is_file():
        script = f"data/{Path(data_dir).name}/prepare.py"
        raise FileNotFoundError(f"{path} not found; prepare the dataset first: python {script}")
    return json.loads(path.read_text(encoding="utf-8"))


def check_tokenizer(meta: dict[str, Any], tokenizer: Tokenizer) -> None:
    """Raise if the data in `meta` was tokenized differently from `tokenizer`: ids would silently
    mean different strings, and training would still run."""
    # the objective tokens (mask, sentinels) a model adds never occur in text: compare the rest
    data_spec, model_spec = (_text_spec(s) for s in (meta["tokenizer"], tokenizer.to_spec()))
    if data_spec != model_spec:
        raise ValueError(
            f"the data was tokenized with {_describe(data_spec)} but the model uses"
            f" {_describe(model_spec)}; re-run prepare.py with the model's tokenizer"
            " or train on data prepared with this one"
        )


def _text_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "special_tokens"}


def _describe(spec: dict[str, Any]) -> str:
    alphabet = f", alphabet {spec['chars'][:20]!r}..." if "chars" in spec else ""
    return f"{spec['name']} (n_vocab={spec['n_vocab']}{alphabet})"


class TokenSampler:
    """Random (x, y) windows from a token bin; see the module docstring for the equation.

    Determinism: the offsets come from one torch.Generator seeded with `seed`. Each call draws
    `world_size * batch_size` offsets and keeps rows [rank*B, (rank+1)*B), so every rank draws the
    same numbers, and 2 ranks with batch B together see exactly the rows of 1 process with 2B.
    `state_dict()` captures the generator, so a resumed run continues the same stream.

    Memory: the file is memory-mapped afresh for every batch. A memmap held open for the whole run
    keeps every page it ever touched resident, so the process grows towards the corpus size
    (nanoGPT's fix does the same). Only the B*(T+1) sampled tokens are ever copied.
    """

    def __init__(
        self,
        bin_path: str | os.PathLike,
        block_size: int,
        batch_size: int,
        *,
        dtype: str | np.dtype,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
    ):
        if min(block_size, batch_size) < 1:
            raise ValueError(f"block_size={block_size} and batch_size={batch_size} must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.bin_path = Path(bin_path)
        self.dtype = np.dtype(dtype)
        self.n_tokens = _count_tokens(self.bin_path, self.dtype)
        if self.n_tokens < block_size + 1:
            empty = "is empty" if self.n_tokens == 0 else f"has only {self.n_tokens} tokens"
            raise ValueError(
                f"{self.bin_path} {empty}, but block_size={block_size} needs at least"
                f" {block_size + 1}; use a larger corpus or a smaller --block_size"
            )
        self.block_size, self.batch_size = block_size, batch_size
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    def get_windows(self) -> torch.Tensor:
        """The next batch_size windows of block_size + 1 consecutive tokens: int64 (B, T+1) on
        `device`. Objectives cut their inputs and targets from these."""
        B, T = self.batch_size, self.block_size
        offsets = torch.randint(self.n_tokens - T, (self.world_size * B,), generator=self.generator)
        mine = offsets[self.rank * B : (self.rank + 1) * B].tolist()
        data = np.memmap(self.bin_path, dtype=self.dtype, mode="r")
        windows = torch.from_numpy(np.stack([data[o : o + T + 1] for o in mine]).astype(np.int64))
        del data  # unmap now, see the class docstring
        if self.device.type == "cuda":
            # page-locked host memory lets the copy overlap with the GPU work already queued
            return windows.pin_memory().to(self.device, non_blocking=True)
        return windows.to(self.device)

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), both int64 (batch_size, block_size) on `device`; y is x shifted by one."""
        windows = self.get_windows()
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sampler's position in its random stream (tensors only: safe for weights_only)."""
        return {"rng_state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["rng_state"])


def _count_tokens(path: Path, dtype: np.dtype) -> int:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the dataset's prepare.py first")
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise ValueError(f"{path} has {size} bytes, not a whole number of {dtype}; wrong dtype?")
    return size // dtype.itemsize
