"""Safe checkpoint files: atomic writes, safetensors + JSON, strict tensor checks.

Nothing here ever unpickles: safetensors holds plain tensors, and the `pytorch_model.bin` files of
older Hugging Face checkpoints are read with `torch.load(weights_only=True)`. Every read is strict:
a missing tensor, an unexpected one, a wrong shape, a truncated file or bad JSON raises a one-line
`CheckpointError` that names it, so nothing is half-loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from minigpt.model.errors import ConfigError
from minigpt.model.gpt import GPT

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as asked; the message says which file/tensor/field."""


class MissingCheckpointError(CheckpointError, ConfigError):
    """No checkpoint where a setting points: a bad setting (exit 2), not a broken file."""


# ---- writing ----------------------------------------------------------------------------------


def atomic_write(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` on a temp file beside `target`, fsync it, then rename it over
    `target`: readers see the old file or the new one, never half of one, even after a crash."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # same filesystem: atomic rename
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(target: Path, obj: dict[str, Any]) -> None:
    atomic_write(target, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def write_tensors(target: Path, tensors: dict[str, torch.Tensor]) -> None:
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(target, lambda p: save_file(plain, str(p), metadata={"format": "pt"}))


def minigpt_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The model's tensors with a tied LM head dropped (safetensors stores no aliases)."""
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    return state


# ---- reading ----------------------------------------------------------------------------------


def read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: not a checkpoint directory")
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON ({e})") from None


def read_tensor_file(file: Path) -> dict[str, torch.Tensor]:
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        return torch.load(file, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, OSError, EOFError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{file} is truncated or corrupt: {first_line}") from None


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint dir: model.safetensors, sharded safetensors or a .bin."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.is_file():
            shards = sorted(set(read_json(index)["weight_map"].values()))
            return {k: v for s in shards for k, v in read_tensor_file(directory / s).items()}
    for name in (WEIGHTS_FILE, "pytorch_model.bin"):
        if (directory / name).is_file():
            return read_tensor_file(directory / name)
    raise CheckpointError(f"no {WEIGHTS_FILE} or pytorch_model.bin in {directory}")


def check_tensors(
    expected: dict[str, torch.Tensor],
    found: dict[str, torch.Tensor],
    source: str,
    ignore: frozenset[str] = frozenset(),
) -> None:
    """Strict match of `found` against `expected` names and shapes: a one-line CheckpointError
    for the first missing, mis-shaped or unexpected tensor, so nothing is half-loaded."""
    for name, param in expected.items():
        if name not in found:
            raise CheckpointError(f"{source} is missing tensor {name!r}")
        if found[name].shape != param.shape:
            raise CheckpointError(
                f"tensor {name!r} has shape {tuple(found[name].shape)} in {source} "
                f"but the model needs {tuple(param.shape)}"
            )
    extra = sorted(set(found) - set(expected) - ignore)
    if extra:
        raise CheckpointError(f"{source} has unexpected tensor {extra[0]!r} for this config")
