"""Data-parallel training across processes started by torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE for each of its processes. Every process holds a
full model replica and its own slice of each global batch; DistributedDataParallel all-reduces
(averages) the gradients during backward, so after the step every replica holds the same weights:

    g = (1 / world_size) * sum_r g_r        g_r = gradient of rank r's mean loss

With equal slices that is the gradient of the mean loss over the whole global batch, exactly what
one process with the whole batch computes. Backends: nccl between GPUs, gloo between CPU processes.

Models that do not fit on one GPU (weights + gradients + AdamW's two moments, 16 bytes per
parameter in fp32, before activations) need sharding instead of replication. With PyTorch's FSDP2
each block's parameters are split across ranks and all-gathered just in time for its forward and
backward, and gradients are reduce-scattered, so each rank holds 1/world_size of every state:

    from torch.distributed.fsdp import fully_shard     # torch >= 2.6
    for block in model.h:
        fully_shard(block)                             # one all-gather unit per block
    fully_shard(model)                                 # embeddings, final norm, head
    optimizer = make_adamw(model, ...)                 # built after sharding: DTensor params

Checkpoints then need `torch.distributed.checkpoint` (each rank writes its shards). train.py does
not do this yet: it trains with DDP, which suits every model that fits on one device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
