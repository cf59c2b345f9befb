"""bench/memory.py's per-rank arithmetic: FSDP's dim-0 split, checked against the whole model,
and against the bytes a real 2-rank run holds."""

import json
import subprocess
import sys

import pytest

from minigpt.model.config import GPTConfig
from tests.benches import load_bench
from tests.train.cli import ROOT, environment

memory = load_bench("memory")


SPLITS = [(8, 2, [4, 4]), (5, 2, [3, 2]), (3, 4, [1, 1, 1, 0]), (10, 4, [3, 3, 3, 1])]


@pytest.mark.parametrize(("rows", "world", "split"), SPLITS)
def test_rows_split_like_torch_chunk(rows, world, split):
    assert [memory.rows_on_rank(rows, r, world) for r in range(world)] == split


GPT2_PARAMS, GPT2_HIDDEN = 124_439_808, 12 * 12 * 768**2  # Muon's: 12 blocks of 12 C^2 each
# 8 bytes of weight and gradient per parameter; 8 of AdamW moments, or Muon's 4 per hidden one
GPT2_BYTES = {"adamw": 16 * GPT2_PARAMS, "muon": 16 * GPT2_PARAMS - 4 * GPT2_HIDDEN}


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
@pytest.mark.parametrize("world_size", [2, 3, 8])
def test_fsdp_shards_add_up_to_one_ddp_replica(world_size, optimizer):
    config = GPTConfig.from_preset("gpt2")
    ddp = memory.computed(config, "ddp", 0, world_size, optimizer)
    shards = [memory.computed(config, "fsdp", r, world_size, optimizer) for r in range(world_size)]
    assert sum(s["total"] for s in shards) == ddp["total"] == GPT2_BYTES[optimizer]
    assert sum(s["muon"] for s in shards) == ddp["muon"]
    assert shards[0]["total"] == max(s["total"] for s in shards)  # rank 0 is the largest


def test_muon_keeps_one_momentum_per_hidden_matrix_element_and_adamw_two_for_the_rest():
    state = memory.computed(GPTConfig.from_preset("gpt2"), "ddp", 0, 1, "muon")
    assert state["muon"] == 4 * GPT2_HIDDEN
    assert state["adamw"] == 8 * (GPT2_PARAMS - GPT2_HIDDEN)


def test_the_state_a_2_rank_run_holds_is_the_computed_state_for_each_strategy_and_optimizer():
    command = [sys.executable, str(ROOT / "bench" / "memory.py"), "--check", "--presets=gpt2",
               "--world_sizes=2"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=environment(), check=True)
    ranks = json.loads(result.stdout)["check_2_ranks_cpu"]["ranks"]
    runs = {(r["strategy"], r["optimizer"], r["rank"]): r for r in ranks}
    assert len(runs) == 8 and all(r["match"] for r in ranks)
    for optimizer in ("adamw", "muon"):
        ddp = runs["ddp", optimizer, 0]["measured"]
        for part in ("params", "muon", "adamw"):  # each FSDP rank holds its share of each part
            shards = [runs["fsdp", optimizer, rank]["measured"][part] for rank in (0, 1)]
            assert sum(shards) == ddp[part] and (min(shards) > 0 or ddp[part] == 0)
