"""AdaLoRA: the budget schedule, masking, the final rank, save/load of the rank pattern, and
frozen base weights."""

import json

import pytest
import torch

import minigpt
from minigpt.finetune.adalora import (
    AdaLoRALinear,
    BudgetSchedule,
    adalora_slices,
    make_allocator,
    orthogonality_penalty,
)
from minigpt.finetune.classifier import GPTClassifier, load_classifier, save_classifier
from minigpt.finetune.loop import Finetuner
from minigpt.finetune.peft import MethodConfig
from minigpt.finetune.run import run
from tests.finetune.test_finetune import _config, _splits
from tests.tiny_models import tiny_gpt_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: no thread pool

# 6 epochs of 3 steps: 18 optimizer steps, pruning from step 3 to step 12
SCHEDULE_FLAGS = ("--method=adalora", "--epochs=6", "--adalora_init_r=4", "--adalora_target_r=2",
                  "--adalora_tinit=2", "--adalora_tfinal=6", "--adalora_delta_t=2")  # fmt: skip


def test_budget_follows_the_cubic_schedule_of_the_reference_code():
    s = BudgetSchedule(init_budget=120, target_budget=80, total_steps=100, tinit=10, tfinal=20,
                       delta_t=5)  # fmt: skip
    # b(t) = int(80 + 40 (1 - (t - 10) / 70)^3) between the phases
    expected = {0: 120, 10: 120, 11: 118, 45: 85, 66: 80, 80: 80, 81: 80, 100: 80}
    assert {t: s.budget(t) for t in expected} == expected
    assert [t for t in range(101) if s.reallocates(t)] == [15, 20, 25, 30, 35, 40, 45, 50, 55,
                                                          60, 65, 70, 75, 80, 81]  # fmt: skip
    assert s.updates_importance(80) and not s.updates_importance(81)


def test_a_schedule_longer_than_the_run_is_a_clear_error():
    with pytest.raises(ValueError, match="lower --adalora_tinit/--adalora_tfinal"):
        BudgetSchedule(24, 16, total_steps=30, tinit=10, tfinal=20, delta_t=5)


def _classifier(**method) -> GPTClassifier:
    torch.manual_seed(0)
    gpt = minigpt.GPT(tiny_gpt_config(vocab_size=256))
    cfg = MethodConfig(method="adalora", adalora_init_r=4, adalora_target_r=2, **method)
    return GPTClassifier(gpt, ("neg", "pos"), method=cfg)


def test_update_starts_at_zero_and_is_p_diag_lambda_q():
    model = _classifier()
    layer = next(m for m in model.modules() if isinstance(m, AdaLoRALinear))
    x = torch.randn(2, 3, layer.base.in_features)
    assert torch.equal(layer(x), layer.base(x))  # lambda = 0
    with torch.no_grad():
        layer.lora_E["q"].copy_(torch.tensor([1.0, -2.0, 0.0, 0.5]))
    P, lam, Q = layer.lora_B["q"], layer.lora_E["q"], layer.lora_A["q"]
    start, stop = layer.parts["q"]
    by_hand = layer.base(x)
    by_hand[..., start:stop] += layer.scale * x @ (P @ torch.diag(lam) @ Q).T
    torch.testing.assert_close(layer(x), by_hand)


def test_orthogonality_penalty_is_zero_for_orthonormal_factors_only():
    Q = torch.linalg.qr(torch.randn(6, 3)).Q  # (6 x 3), orthonormal columns
    assert orthogonality_penalty(Q, Q.T).item() == pytest.approx(0.0, abs=1e-6)
    P = torch.eye(6, 3) * 2  # P^T P = 4 I: ||3 I||_F = 3 sqrt(3)
    assert orthogonality_penalty(P, Q.T).item() == pytest.approx(3 * 3**0.5, rel=1e-5)


def test_masked_lambdas_stay_zero_after_optimizer_steps():
    model = _classifier()
    allocator = make_allocator(model, 4, 2, total_steps=20, tinit=2, tfinal=4, delta_t=2,
                               orth_reg=0.1)  # fmt: skip
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    ids, lengths, labels = torch.randint(256, (4, 8)), torch.full((4,), 8), torch.tensor([0, 1] * 2)
    for t in range(1, 9):  # momentum builds up, then step 4's and 6's re-allocations prune
        loss = model(ids, lengths, labels).loss + allocator.penalty()
        loss.backward()
        allocator.before_step(t)
        optimizer.step()
        optimizer.zero_grad()
        allocator.after_step(t)
        for key, layer, part in adalora_slices(model):
            lam = layer.lora_E[part]
            assert torch.all(lam[~allocator.masks[key]] == 0), (t, key)
    assert allocator.total_rank() == allocator.schedule.budget(8) < 4 * len(allocator.masks)
    assert any(m.sum() != 2 for m in allocator.masks.values())  # ranks moved between weights


def test_final_total_rank_is_the_target_budget_and_loading_rebuilds_the_pattern(toy, tmp_path):
    cfg = _config(toy, tmp_path / "clf", *SCHEDULE_FLAGS)
    metrics = run(cfg)
    ranks = metrics["adalora"]
    n_slices = len(ranks["rank_pattern"])  # q and v of 2 blocks
    assert n_slices == 4
    assert ranks["initial_total_rank"] == 4 * n_slices
    assert ranks["final_total_rank"] == sum(ranks["rank_pattern"].values()) == 2 * n_slices
    saved = json.loads((tmp_path / "clf" / "classifier.json").read_text())
    assert saved["method"]["adalora_rank_pattern"] == ranks["rank_pattern"]

    model, _ = load_classifier(tmp_path / "clf")
    for key, layer, part in adalora_slices(model):
        assert layer.lora_E[part].shape == (ranks["rank_pattern"][key],)
    assert metrics["test"]["accuracy"] == 1.0
    assert (tmp_path / "clf" / "confusion.png").is_file()
    assert (tmp_path / "clf" / "learning_curves.png").is_file()


def test_logits_are_identical_before_save_and_after_load(toy, tmp_path):
    cfg = _config(toy, tmp_path, *SCHEDULE_FLAGS)
    splits = _splits(cfg, toy)
    model = GPTClassifier.from_pretrained(
        toy / "base", splits.labels, method=cfg.method_config(), dropout=0.0
    )
    device = torch.device("cpu")
    Finetuner(model, cfg, splits.loader("train", 4), splits.loader("val", 64), device).train()
    save_classifier(model, tmp_path / "clf")
    loaded, _ = load_classifier(tmp_path / "clf")
    batch = next(iter(splits.loader("test", 64)))
    model.eval()
    with torch.no_grad():
        before = model(batch.input_ids, batch.lengths).logits
        after = loaded(batch.input_ids, batch.lengths).logits
    assert torch.equal(before, after)
    assert sum(model.method.adalora_rank_pattern.values()) == 8


def test_frozen_base_weights_are_bit_identical_after_training(toy, tmp_path):
    cfg = _config(toy, tmp_path, *SCHEDULE_FLAGS, "--weight_decay=0.5")
    splits = _splits(cfg, toy)
    model = GPTClassifier.from_pretrained(
        toy / "base", splits.labels, method=cfg.method_config(), dropout=0.0
    )
    params = dict(model.named_parameters())
    frozen = {n: p.clone() for n, p in params.items() if not p.requires_grad}
    assert "gpt.h.0.attn.c_attn.base.weight" in frozen
    device = torch.device("cpu")
    Finetuner(model, cfg, splits.loader("train", 4), splits.loader("val", 64), device).train()
    for name, before in frozen.items():
        assert torch.equal(params[name], before), f"frozen {name} changed"
