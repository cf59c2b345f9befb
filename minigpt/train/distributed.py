"""Data-parallel training across processes started by torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE for each of its processes. Every process holds a
full model replica and its own slice of each global batch; DistributedDataParallel all-reduces
(averages) the gradients during backward, so after the step every replica holds the same weights:

    g = (1 / world_size) * sum_r g_r        g_r = gradient of rank r's mean loss

With equal slices that is the gradient of the mean loss over the whole global batch, exactly what
one process with the whole batch computes. Backends: nccl between GPUs, gloo between CPU processes.

Models that do not fit on one device (weights + gradients + AdamW's two moments, 16 bytes per
parameter in fp32, before activations) need sharding instead of replication: `--strategy=fsdp`
(PyTorch's FSDP2, `fully_shard`). Each block, and then the root (embeddings, final norm, head),
becomes one unit whose parameters are split along dim 0 across ranks and all-gathered just in
time for its forward and backward; gradients are reduce-scattered, so each rank holds about
1/world_size of every state and updates only its shard:

    bytes per rank = 16 N / world_size  (fsdp)      vs      16 N  (ddp)

The optimizer is built after sharding, over the DTensor shards (Muon still orthogonalizes whole
matrices: see minigpt.train.muon_sharded). The arithmetic is the same as DDP's (a mean over ranks
of per-rank gradients), so both match one process with the global batch.
Checkpoints stay one full `model.safetensors`: see minigpt.train.state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel

from minigpt.model.gpt import GPT
from minigpt.settings import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs, evaluates into files and saves checkpoints."""
        return self.rank == 0


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun), readable before the process
    group exists, so that only rank 0 reports a bad setting."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device_type: str, backend: str = "auto") -> DistInfo:
    """Join the torchrun process group if this process was started by torchrun."""
    if "RANK" not in os.environ:
        return DistInfo()
    info = DistInfo(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ["LOCAL_RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average `t` over all processes (in place); a no-op in a single process."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= info.world_size
    return t


def any_rank(flag: bool, device: torch.device, info: DistInfo) -> bool:
    """True on every rank if `flag` is True on any rank (ranks must agree to stop together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def shutdown(info: DistInfo) -> None:
    """Leave the process group after a run that ended normally on every rank. The barrier
    first: destroying the group while a peer is still busy (rank 0 writing a sample) can hang."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def on_main(task: Callable[[], None], device: torch.device, info: DistInfo) -> None:
    """Run `task` on rank 0 only; if it fails, every rank raises, so no rank is left waiting for
    a peer that quit. Only rank 0's error carries the message (only rank 0 prints it)."""
    error: Exception | None = None
    if info.is_main:
        try:
            task()
        except (OSError, ValueError) as e:
            error = e
    if any_rank(error is not None, device, info):
        # every rank knows, so none is inside a collective: leave the group now rather than at
        # interpreter exit, where tearing down gloo's threads can abort the process
        shutdown(info)
        raise error or ConfigError("rank 0 failed to prepare the run")


def from_main(value: T, info: DistInfo) -> T:
    """Rank 0's `value` on every rank: for decisions that timing or load could make differently
    on each (such as dtype=auto)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(model: GPT, device: torch.device, dtype: torch.dtype) -> None:
    """FSDP2 in place: one unit per block, then the root, over all ranks on `device`'s type
    (named, because the default mesh is CUDA whenever a GPU exists, even for a CPU run). With a
    low-precision `dtype` the gathered parameters are cast to it for compute while gradients are
    reduced in fp32."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy()
    if dtype != torch.float32:
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    for block in model.h:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)


def replicate(module: nn.Module, device: torch.device) -> DistributedDataParallel:
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


@contextmanager
def gradient_sync(model: nn.Module, runner: nn.Module, enabled: bool) -> Iterator[None]:
    """Backward passes inside reduce gradients across ranks only when `enabled`: skipping the
    reduction on all but the last micro-batch of an accumulated step saves k - 1 of them.
    `model` is the (possibly sharded) model, `runner` what runs it (possibly DDP-wrapped)."""
    if enabled:
        yield
    elif isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    elif isinstance(runner, DistributedDataParallel):
        with runner.no_sync():
            yield
    else:  # one process: nothing to reduce
        yield


def micro_batches_per_rank(accumulation_steps: int, world_size: int) -> int:
    """Each process's share of the global `accumulation_steps`, rounded up: never fewer
    micro-batches than asked, and at least one per process."""
    return math.ceil(accumulation_steps / world_size)
