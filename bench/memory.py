"""Training memory per rank, DDP vs FSDP: parameters, gradients, optimizer state. Prints JSON.

Computed on the meta device (no memory is allocated), so any preset can be counted. With P the
parameter elements a rank holds, fp32 training keeps 4 bytes of weight and 4 of gradient per
element, and the optimizer's state: AdamW 8 bytes (exp_avg, exp_avg_sq) per element it updates,
Muon 4 (one momentum) per element of the blocks' matrices, H of the P (AdamW takes the rest):

    adamw: bytes per rank = 4 P + 4 P + 8 P                = 16 P
    muon:  bytes per rank = 4 P + 4 P + 4 H + 8 (P - H)    = 16 P - 4 H
    ddp:   P = N                        (every rank a full replica)
    fsdp:  P = sum_t rows_r(t) * cols(t) (rank r's dim-0 slice of every tensor t; H likewise)

FSDP2 splits dim 0 of each tensor into world_size chunks of ceil(d0 / world_size) rows (the last
may be shorter or empty), so P is about N / world_size; rank 0 always has full chunks and is the
largest. Not counted: activations, DDP's gradient buckets (another 4 N), the transient
all-gathered copy of the unit (one block, or the root) that FSDP is running, and Muon's
transient buffers during its step (under FSDP the rank's rows of the matrices, sent and received,
and the whole matrices it orthogonalizes: each about H / world_size elements).

`--check` trains one step of a small config with 2 gloo processes on this CPU under each strategy
and counts the bytes of the tensors each rank really holds, next to the computed numbers.

    python bench/memory.py [--presets gpt2,gpt2-xl,gptj-6b] [--world_sizes 2,8] [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket

import torch
import torch.multiprocessing as mp

from minigpt.model.config import GPTConfig
from minigpt.model.gpt import GPT
from minigpt.train.distributed import shard
from minigpt.train.muon import MuonAdamW, hidden_matrices
from minigpt.train.optim import make_optimizer

OPTIMIZERS = ("muon", "adamw")
STATE = {"momentum": "muon", "exp_avg": "adamw", "exp_avg_sq": "adamw"}  # state key -> part
CHECK_CONFIG = dict(vocab_size=515, block_size=32, n_layer=3, n_head=4, n_embd=100)  # odd sizes


def rows_on_rank(rows: int, rank: int, world_size: int) -> int:
    """Rows of a dim-0 split that land on `rank` (torch.chunk's rule, which FSDP2 uses)."""
    chunk = math.ceil(rows / world_size)
    return max(0, min(chunk, rows - rank * chunk))


def elements_on_rank(params: list[torch.Tensor], strategy: str, rank: int, world_size: int) -> int:
    """Elements of `params` that `rank` holds (pass a tied matrix once, as `parameters()` does)."""
    if strategy == "ddp":
        return sum(p.numel() for p in params)
    total = 0
    for p in params:
        total += rows_on_rank(p.shape[0], rank, world_size) * (p[0].numel() if p.dim() > 1 else 1)
    return total


def computed(
    config: GPTConfig, strategy: str, rank: int, world_size: int, optimizer: str = "adamw"
) -> dict[str, int]:
    """Bytes of the module docstring's equation, by part."""
    with torch.device("meta"):
        model = GPT(config)
    params = list(model.parameters())
    hidden, rest = hidden_matrices(model) if optimizer == "muon" else ([], params)
    P, H, R = (elements_on_rank(t, strategy, rank, world_size) for t in (params, hidden, rest))
    parts = {"params": 4 * P, "grads": 4 * P, "muon": 4 * H, "adamw": 8 * R}
    return {**parts, "total": sum(parts.values())}


def preset_rows(presets: list[str], world_sizes: list[int]) -> list[dict]:
    rows = []
    for name in presets:
        config = GPTConfig.from_preset(name)
        for world_size in world_sizes:
            for optimizer in OPTIMIZERS:
                ddp = computed(config, "ddp", 0, world_size, optimizer)["total"]
                fsdp = computed(config, "fsdp", 0, world_size, optimizer)["total"]
                rows.append({"preset": name, "world_size": world_size, "optimizer": optimizer,
                             "ddp_GiB_per_rank": round(ddp / 2**30, 2),
                             "fsdp_GiB_per_rank": round(fsdp / 2**30, 2),
                             "ratio": round(ddp / fsdp, 3)})  # fmt: skip
    return rows


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t  # a DTensor's own shard


def held_bytes(model: GPT, optimizer: torch.optim.Optimizer | MuonAdamW) -> dict[str, int]:
    """Bytes of the parameter, gradient, Muon momentum and AdamW moment tensors this rank
    really holds."""
    params = list(model.parameters())
    counts = {
        "params": sum(_local(p).numel() * p.element_size() for p in params),
        "grads": sum(_local(p.grad).numel() * p.grad.element_size() for p in params),
        "muon": 0,
        "adamw": 0,
    }
    parts = optimizer.parts if isinstance(optimizer, MuonAdamW) else (optimizer,)
    for state in (s for part in parts for s in part.state.values()):
        for key, tensor in state.items():
            if key in STATE:  # not AdamW's step counts
                counts[STATE[key]] += _local(tensor).numel() * tensor.element_size()
    return {**counts, "total": sum(counts.values())}


def _check_rank(rank: int, world_size: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    config = GPTConfig(**CHECK_CONFIG)
    for strategy in ("ddp", "fsdp"):
        for name in OPTIMIZERS:
            torch.manual_seed(0)
            model = GPT(config)
            runner = model
            if strategy == "fsdp":
                shard(model, torch.device("cpu"), torch.float32)
            else:
                runner = torch.nn.parallel.DistributedDataParallel(model)
            optimizer = make_optimizer(name, model, 1e-3, 0.1, (0.9, 0.95), torch.device("cpu"))
            idx = torch.randint(0, config.vocab_size, (2, config.block_size))
            runner(idx, idx).loss.backward()
            optimizer.step()  # creates the state
            results[(strategy, name, rank)] = {
                "measured": held_bytes(model, optimizer),
                "computed": computed(config, strategy, rank, world_size, name),
            }
    torch.distributed.destroy_process_group()


def check(world_size: int = 2) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_check_rank, args=(world_size, port, results), nprocs=world_size)
        ranks = [{"strategy": strategy, "optimizer": name, "rank": rank, **value,
                  "match": value["measured"] == value["computed"]}
                 for (strategy, name, rank), value in sorted(results.items())]  # fmt: skip
    return {"config": CHECK_CONFIG, "ranks": ranks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="gpt2,gpt2-medium,gpt2-xl,gptj-6b,gpt3-175b")
    parser.add_argument("--world_sizes", default="2,8")
    parser.add_argument("--check", action="store_true", help="also measure a real 2-rank run")
    args = parser.parse_args()
    sizes = [int(w) for w in args.world_sizes.split(",")]
    report = {"per_rank": preset_rows(args.presets.split(","), sizes)}
    if args.check:
        report["check_2_ranks_cpu"] = check()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
