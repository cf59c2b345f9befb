"""The resumable part of a training run that is not the model: `train_state.pt`.

A training checkpoint is a directory: the model as `save_pretrained` writes it (config.json,
model.safetensors, tokenizer_spec.json) plus `train_state.pt` with everything else a run needs to
continue exactly where it stopped:

    iter_num        optimizer steps done (the LR schedule is a function of it)
    best_val_loss   lowest validation loss seen so far
    optimizer       AdamW moments and step counts, Muon momenta: full tensors keyed by name
    scaler          GradScaler's loss scale (fp16)
    rng             per rank: torch CPU (and CUDA) generator states, so dropout masks continue
    sampler         the batch sampler's generator: the next batch is the one that would have come
    model_sha256    digest of the model.safetensors this state belongs to

It holds only tensors and primitive containers, so `torch.load(weights_only=True)` reads it and
nothing is unpickled. It is written after the model, through a temp file and a rename, so a crash
never leaves a half-written file; a crash between the two writes leaves a new model beside the
old state, which `model_sha256` detects on resume.

One format for every strategy. Under FSDP the shards are gathered to rank 0 (model and optimizer
state, through `torch.distributed.checkpoint.state_dict`), so a sharded run writes the same
directory as one process, any process count or strategy can resume it, and `GPT.from_pretrained`
loads it anywhere. The price: rank 0 needs CPU memory for the full state (16 bytes per parameter
in fp32) while saving; sharded DCP files would avoid that but tie the output to a reader that
understands them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule

from minigpt.checkpoint import CheckpointError, atomic_write
from minigpt.model.gpt import GPT
from minigpt.train.distributed import DistInfo
from minigpt.train.muon import MuonAdamW

STATE_FILE = "train_state.pt"
# everything on CPU and unsharded; a collective under FSDP, whose gathered tensors land on rank 0
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


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


def gathered_rng(device: torch.device, info: DistInfo) -> list[dict[str, torch.Tensor]]:
    """Every rank's RNG state, indexed by rank (each rank draws its own dropout masks).
    Gathered as tensors on the training device (nccl moves only GPU tensors)."""
    mine = rng_state(device)
    if not info.enabled:
        return [mine]
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(info.world_size)]
    for key, tensor in mine.items():
        parts = [torch.empty_like(tensor, device=device) for _ in states]
        torch.distributed.all_gather(parts, tensor.to(device))
        for state, part in zip(states, parts, strict=True):
            state[key] = part.cpu()
    return states


def full_model(model: GPT, info: DistInfo) -> GPT | None:
    """The whole model on rank 0 (None elsewhere): `model` itself, or for a sharded model a
    plain CPU copy of its gathered weights. A collective under FSDP: every rank must call it."""
    if not isinstance(model, FSDPModule):
        return model if info.is_main else None
    state = get_model_state_dict(model, options=FULL)
    if not info.is_main:
        return None
    with torch.device("meta"):
        whole = GPT(model.config)
    whole.load_state_dict(state, assign=True)
    whole.materialize_buffers(torch.device("cpu"))
    return whole


def _parts(optimizer: torch.optim.Optimizer | MuonAdamW) -> tuple[torch.optim.Optimizer, ...]:
    return optimizer.parts if isinstance(optimizer, MuonAdamW) else (optimizer,)


def optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer | MuonAdamW
) -> dict[str, Any]:
    """The optimizer's state keyed by parameter name, full tensors (gathered under FSDP, a
    collective). Muon's and AdamW's halves hold disjoint parameters, so they share one dict."""
    return get_optimizer_state_dict(model, _parts(optimizer), options=FULL)


def load_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer | MuonAdamW, state: dict[str, Any]
) -> None:
    """The inverse of `optimizer_state`; under FSDP each rank keeps its own shard of it."""
    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, _parts(optimizer), optim_state_dict=state, options=options)


def check_out_dir(directory: Path, needed_bytes: int) -> None:
    """Fail now, with one line, if a checkpoint of about `needed_bytes` cannot be written into
    `directory`, rather than after hours of training."""
    probe = directory / ".write_test"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CheckpointError(
            f"--out_dir={directory} is not writable ({e.strerror}); choose another --out_dir"
        ) from None
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise CheckpointError(
            f"--out_dir={directory} has {free / 2**20:,.0f} MiB free but a checkpoint needs about"
            f" {needed_bytes / 2**20:,.0f} MiB; free some space or choose another --out_dir"
        )


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
