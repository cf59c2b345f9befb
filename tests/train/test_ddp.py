"""DDP on CPU: 2 gloo processes with batch B == 1 process with batch 2B, step for step."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from minigpt.train.distributed import init_distributed, micro_batches_per_rank, shutdown
from minigpt.train.metrics import read_metrics
from minigpt.train.trainer import Trainer
from tests.tiny_models import one_thread
from tests.train.fixtures import make_dataset, tiny_train_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, config: dict, weights_dir: str) -> None:
    """One torchrun-like process: the environment torchrun would set, then a normal run."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    dist = init_distributed("cpu", "gloo")
    try:
        trainer = Trainer(config, dist)
        trainer.train()
        state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        state.pop("lm_head.weight")  # tied to wte.weight
        save_file(state, os.path.join(weights_dir, f"rank{rank}.safetensors"))
    finally:
        shutdown(dist)


def test_two_gloo_ranks_match_one_process_with_the_global_batch(tmp_path):
    data_dir = make_dataset(tmp_path / "data")
    common = dict(max_iters=8, lr_decay_iters=8, eval_interval=4, log_interval=2)
    single = tiny_train_config(tmp_path / "single", data_dir, batch_size=8, **common)
    # 2 ranks x 4 rows; accumulation 2 means one micro-batch per rank per step
    ddp = tiny_train_config(tmp_path / "ddp", data_dir, batch_size=4, gradient_accumulation_steps=2,
                      **common)  # fmt: skip
    mp.spawn(_rank_main, args=(2, _free_port(), ddp, str(tmp_path)), nprocs=2)
    with one_thread():
        reference = Trainer(single)
        reference.train()

    rank0 = load_file(tmp_path / "rank0.safetensors")
    rank1 = load_file(tmp_path / "rank1.safetensors")
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), f"ranks disagree on {name}"
        expected = reference.model.state_dict()[name]
        torch.testing.assert_close(tensor, expected, rtol=1e-5, atol=1e-5, msg=name)
    # rank 0 alone logged; its (all-reduced) train and val losses are the global-batch ones
    logged, expected = read_metrics(ddp.out_dir), read_metrics(single.out_dir)
    assert [r["iter"] for r in logged] == [r["iter"] for r in expected]
    for got, want in zip(logged, expected, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
        assert got.get("val_loss", 0) == pytest.approx(want.get("val_loss", 0), rel=1e-5)


@pytest.mark.parametrize(
    ("steps", "world", "per_rank"), [(1, 1, 1), (8, 2, 4), (1, 2, 1), (3, 2, 2), (40, 3, 14)]
)
def test_accumulation_steps_are_global_and_rounded_up_per_rank(steps, world, per_rank):
    assert micro_batches_per_rank(steps, world) == per_rank
