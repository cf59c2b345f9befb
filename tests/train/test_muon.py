"""Muon + AdamW: which parameters each gets, the orthogonalized update, and exact resume."""

import copy
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor

import minigpt
from minigpt.train.muon import Muon, MuonAdamW, hidden_matrices, orthogonalize
from minigpt.train.optim import make_optimizer
from tests.tiny_models import VARIANTS, tiny_gpt_config
from tests.train.cli import free_port


def test_block_linear_weights_go_to_muon_embeddings_head_and_gains_to_adamw():
    model = minigpt.GPT(tiny_gpt_config())  # 2 layers, tied head
    hidden, rest = hidden_matrices(model)
    names = {id(p): name for name, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in hidden) == sorted(
        f"h.{layer}.{m}.weight"
        for layer in range(2)
        for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    )
    assert {names[id(p)] for p in rest} >= {"wte.weight", "wpe.weight", "ln_f.weight"}
    assert len(hidden) + len(rest) == len(list(model.parameters()))


def test_untied_lm_head_stays_on_adamw():
    model = minigpt.GPT(tiny_gpt_config(**VARIANTS["gptj"]))
    hidden, rest = hidden_matrices(model)
    assert any(p is model.lm_head.weight for p in rest)
    assert not any(p is model.lm_head.weight for p in hidden)


@pytest.mark.parametrize("shape", [(3, 16, 48), (3, 48, 16)])
def test_orthogonalize_pushes_every_singular_value_near_one(shape):
    torch.manual_seed(0)
    U, _, Vh = torch.linalg.svd(torch.randn(shape), full_matrices=False)
    G = U @ torch.diag_embed(torch.logspace(-2, 0, 16).expand(3, 16)) @ Vh  # sigma 0.01 .. 1
    singular = torch.linalg.svdvals(orthogonalize(G))
    assert singular.min() > 0.6 and singular.max() < 1.2  # the quintic's band, not exactly 1
    one_at_a_time = torch.stack([orthogonalize(g) for g in G])
    torch.testing.assert_close(orthogonalize(G), one_at_a_time)


def test_muon_step_follows_the_update_equation_by_hand():
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(8, 32))
    start = W.detach().clone()
    grads = [torch.randn(8, 32), torch.randn(8, 32)]
    lr, wd, mu = 0.1, 0.5, 0.9
    opt = Muon([W], lr=lr, weight_decay=wd, momentum=mu)
    expected, M = start, torch.zeros(8, 32)
    for G in grads:
        W.grad = G
        opt.step()
        M = mu * M + (1 - mu) * G
        step = orthogonalize(G + mu * (M - G))
        expected = expected * (1 - lr * wd) - lr * 0.2 * math.sqrt(32) * step
    torch.testing.assert_close(W.detach(), expected)


def test_muon_adamw_state_dict_resumes_exactly():
    def train(model, optimizer, steps):
        for i in range(steps):
            torch.manual_seed(i)
            idx = torch.randint(0, 67, (2, 8))
            model(idx, idx).loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    torch.manual_seed(0)
    a = minigpt.GPT(tiny_gpt_config())
    b = minigpt.GPT(tiny_gpt_config())
    b.load_state_dict(a.state_dict())
    opt_a = make_optimizer("muon", a, 1e-2, 0.1, (0.9, 0.99), torch.device("cpu"))
    opt_b = make_optimizer("muon", b, 1e-2, 0.1, (0.9, 0.99), torch.device("cpu"))
    assert isinstance(opt_a, MuonAdamW)
    train(a, opt_a, 2)
    b.load_state_dict(a.state_dict())
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as if read back from disk
    train(a, opt_a, 1)
    train(b, opt_b, 1)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_learning_rate_reaches_both_halves_also_after_loading_a_state():
    model = minigpt.GPT(tiny_gpt_config())
    opt = MuonAdamW(model, 1e-2, 0.1, (0.9, 0.99))
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # new group dicts inside both halves
    for group in opt.param_groups:
        group["lr"] = 3e-4
    assert {g["lr"] for g in opt.muon.param_groups + opt.adamw.param_groups} == {3e-4}


# ---- under FSDP: each rank orthogonalizes a share of the matrices -------------------------------

# over 3 ranks: rows 2/2/1 (rank 0 orthogonalizes two of these), 1/1/0 (an empty shard), 3/3/1
SHARDED_SHAPES = [(5, 4)] * 4 + [(2, 6), (7, 3)]


def _sharded_muon_rank(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    mesh = init_device_mesh("cpu", (world_size,))
    results = {}
    for ns_dtype in (torch.float32, torch.bfloat16):  # bf16: the slices travel in bf16
        torch.manual_seed(0)  # the same matrices and gradients on every rank
        weights = [torch.randn(shape) for shape in SHARDED_SHAPES]
        grads = [[torch.randn(shape) for shape in SHARDED_SHAPES] for _ in range(2)]
        shards = [nn.Parameter(distribute_tensor(w, mesh, [Shard(0)])) for w in weights]
        whole = [nn.Parameter(w.clone()) for w in weights]
        sharded_opt = Muon(shards, lr=0.1, weight_decay=0.5, ns_dtype=ns_dtype)
        plain_opt = Muon(whole, lr=0.1, weight_decay=0.5, ns_dtype=ns_dtype)
        for step in grads:
            for shard, full, grad in zip(shards, whole, step, strict=True):
                shard.grad, full.grad = distribute_tensor(grad, mesh, [Shard(0)]), grad.clone()
            sharded_opt.step()
            plain_opt.step()
        gathered = [p.full_tensor() for p in shards]  # a collective: every rank takes part
        results[str(ns_dtype)] = {"sharded": gathered, "plain": [p.detach() for p in whole]}
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def test_muon_on_row_shards_equals_muon_on_whole_matrices_with_uneven_and_empty_shards(tmp_path):
    out = tmp_path / "result.pt"
    mp.spawn(_sharded_muon_rank, args=(3, free_port(), str(out)), nprocs=3)
    results = torch.load(out, weights_only=True)
    assert sorted(results) == ["torch.bfloat16", "torch.float32"]
    for result in results.values():
        for sharded, plain in zip(result["sharded"], result["plain"], strict=True):
            torch.testing.assert_close(sharded, plain, rtol=0, atol=0)
