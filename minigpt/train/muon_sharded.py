"""Newton-Schulz for matrices that FSDP2 has split by rows: each rank orthogonalizes a share.

Under `fully_shard` every rank r holds rows [r c, (r + 1) c) of each (A x B) matrix, c =
ceil(A / N) for N ranks (the last ranks may hold fewer, or none). The elementwise parts of Muon
(momentum, Nesterov, decay, the step itself) run on those rows alone, but orthogonalizing needs
the whole matrix: X X^T mixes every row with every other.

So the matrices of one shape are dealt out to the ranks in turn, and each is orthogonalized by
its owner only:

    1. all_to_all: every rank sends its rows of matrix k to owner(k)      rows c, padded with 0
    2. owner(k) stacks the N slices into the whole (A x B) matrix, and orthogonalizes all the
       matrices it owns in one batch
    3. all_to_all: the owner sends rows [r c, (r + 1) c) of the result back to each rank r

With S the elements of these matrices a rank holds (about 1/N of them), each exchange sends and
receives about S (N - 1) / N per rank: 2 S (N - 1) / N in all, where gathering every whole matrix
on every rank would receive S (N - 1) and repeat all of the Newton-Schulz work N times. The
slices travel in the iteration's dtype: Muon's `orthogonalize` casts to it first and back at the
end, so casting before sending (bf16 on GPUs) halves the traffic and changes no bit of the
result. The padding rows are cut off before the iteration, so the owner sees exactly the matrix
one process would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.tensor import DTensor, Shard


def owners(first: int, count: int, world_size: int) -> list[int]:
    """The rank that orthogonalizes each of `count` matrices: dealt in turn from `first`, so a
    run of shape groups spreads over the ranks even when each group has fewer than N."""
    return [(first + k) % world_size for k in range(count)]


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    return F.pad(x, (0, 0, 0, rows - x.size(-2)))


def map_whole_matrices(
    fn: Callable[[torch.Tensor], torch.Tensor],
    params: list[DTensor],
    updates: list[torch.Tensor],
    dtype: torch.dtype,
    first_owner: int,
) -> list[torch.Tensor]:
    """fn (here `orthogonalize`, over a batch (n, A, B)) of each whole matrix, returned as this
    rank's rows of the result.

    params: DTensors of one global shape (A, B), sharded on dim 0 over a 1-D mesh (they give
    the mesh and the global shape); updates: this rank's (rows_r, B) slice of each matrix,
    sent in `dtype`."""
    mesh = params[0].device_mesh
    if mesh.ndim != 1 or params[0].placements != (Shard(0),):
        raise ValueError(
            f"Muon needs matrices sharded by rows over one mesh dimension (fully_shard); "
            f"got placements {params[0].placements} on a {mesh.ndim}-D mesh"
        )
    world, rank, group = mesh.size(), mesh.get_local_rank(), mesh.get_group()
    A, B = params[0].shape
    c = -(-A // world)  # rows per rank, padded
    owner = owners(first_owner, len(params), world)
    by_owner = [[k for k, o in enumerate(owner) if o == r] for r in range(world)]
    mine = len(by_owner[rank])
    order = [k for ks in by_owner for k in ks]  # send order: grouped by owner

    # 1. my (c, B) slice of every matrix, to its owner; from every rank, its slice of mine
    send = torch.stack([_pad_rows(updates[k].to(dtype), c) for k in order])  # (K, c, B)
    sizes = [len(ks) * c * B for ks in by_owner]
    recv = send.new_empty(world * mine * c * B)
    dist.all_to_all_single(recv, send.flatten(), [mine * c * B] * world, sizes, group=group)
    # 2. (N, mine, c, B) from the ranks -> (mine, N c, B) -> the whole (mine, A, B) matrices
    whole = recv.view(world, mine, c, B).transpose(0, 1).reshape(mine, world * c, B)[:, :A]
    result = fn(whole)
    # 3. rows [r c, (r + 1) c) of each result back to rank r
    back = _pad_rows(result, world * c).view(mine, world, c, B).transpose(0, 1).contiguous()
    mine_back = torch.empty_like(send)  # (K, c, B) in send order
    dist.all_to_all_single(mine_back.view(-1), back.view(-1), sizes, [mine * c * B] * world,
                           group=group)  # fmt: skip
    rows = updates[0].size(0)  # this rank's share of A (the same for every matrix here)
    out: list[torch.Tensor] = [torch.empty(0)] * len(params)
    for slot, k in enumerate(order):
        out[k] = mine_back[slot, :rows].to(updates[k].dtype)
    return out
