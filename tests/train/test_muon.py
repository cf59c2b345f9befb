"""Muon + AdamW: which parameters each gets, the orthogonalized update, and exact resume."""

import copy
import math

import pytest
import torch

import minigpt
from minigpt.train.muon import Muon, MuonAdamW, hidden_matrices, orthogonalize
from minigpt.train.optim import make_optimizer
from tests.tiny_models import VARIANTS, tiny_gpt_config


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
    opt_a = make_optimizer("muon", a, 1e-2, 0.1, (0.9, 0.99), "cpu")
    opt_b = make_optimizer("muon", b, 1e-2, 0.1, (0.9, 0.99), "cpu")
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
