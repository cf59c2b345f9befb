"""bench/memory.py's per-rank arithmetic: FSDP's dim-0 split, checked against the whole model."""

import importlib.util

import pytest

from minigpt.model.config import GPTConfig
from tests.train.cli import ROOT

spec = importlib.util.spec_from_file_location("memory", ROOT / "bench" / "memory.py")
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)


SPLITS = [(8, 2, [4, 4]), (5, 2, [3, 2]), (3, 4, [1, 1, 1, 0]), (10, 4, [3, 3, 3, 1])]


@pytest.mark.parametrize(("rows", "world", "split"), SPLITS)
def test_rows_split_like_torch_chunk(rows, world, split):
    assert [memory.rows_on_rank(rows, r, world) for r in range(world)] == split


@pytest.mark.parametrize("world_size", [2, 3, 8])
def test_fsdp_shards_add_up_to_one_ddp_replica(world_size):
    config = GPTConfig.from_preset("gpt2")
    ddp = memory.computed(config, "ddp", 0, world_size)
    shards = [memory.computed(config, "fsdp", r, world_size) for r in range(world_size)]
    assert sum(s["total"] for s in shards) == ddp["total"] == 16 * 124_439_808
    assert shards[0]["total"] == max(s["total"] for s in shards)  # rank 0 is the largest
