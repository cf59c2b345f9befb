"""The resumable part of a training run that is not the model: `train_state.pt`.

A training checkpoint is a directory: the model as `save_pretrained` writes it (config.json,
model.safetensors, tokenizer_spec.json) plus `train_state.pt` with everything else a run needs to
continue exactly where it stopped:

    iter_num        optimizer steps done (the LR schedule is a function of it)
    best_val_loss   lowest validation loss seen so far
    optimizer       AdamW moments and step counts
    scaler          GradScaler's loss scale (fp16)
    rng             torch CPU (and CUDA) generator states: dropout masks continue the same stream
    sampler         the batch sampler's generator: the next batch is the one that would have come
    model_sha256    digest of the model.safetensors this state belongs to
    config          the TrainConfig, for the record

It holds only tensors and primitive containers, so `torch.load(weights_only=True)` reads it and
nothing is unpickled. It is written after the model, through a temp file and a rename, so a crash
never leaves a half-written file; a crash between the two writes leaves a new model beside the
old state, which `model_sha256` detects on resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from minigpt.checkpoint import atomic_write

STATE_FILE = "train_state.pt"


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Generator states that dropout draws from on `device`."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_train_state(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to directory/train_state.pt atomically; returns the path."""
    path = Path(directory) / STATE_FILE
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def load_train_state(directory: str | Path) -> dict[str, Any]:
    """Read directory/train_state.pt (tensors and plain containers only)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: init_from=resume needs a directory that train.py saved into"
        )
    return torch.load(path, map_location="cpu", weights_only=True)
