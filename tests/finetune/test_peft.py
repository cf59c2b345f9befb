"""LoRA, adapters and prefix tuning: the equations, their initial no-op, merging, freezing."""

import pytest
import torch
from torch import nn

import minigpt
from minigpt.finetune.classifier import GPTClassifier
from minigpt.finetune.peft import (
    LoRALinear,
    MethodConfig,
    count_params,
    lora_layers,
    merge_lora,
    merged_copy,
    unmerge_lora,
)
from tests.tiny_models import VARIANTS, tiny_gpt_config

LABELS = ("neg", "pos")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: no thread pool


def _gpt(variant: str = "gpt2", **overrides) -> minigpt.GPT:
    torch.manual_seed(0)
    return minigpt.GPT(tiny_gpt_config(**VARIANTS[variant], **overrides)).eval()


def _classifier(method: str, variant: str = "gpt2", **knobs) -> GPTClassifier:
    return GPTClassifier(_gpt(variant), LABELS, method=MethodConfig(method=method, **knobs)).eval()


def _batch(B: int = 3, T: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 67, (B, T), generator=g), torch.tensor([T, T - 3, 1])[:B]


def _randomize_lora_b(model: nn.Module) -> None:
    """B starts at zero; give it values so that the LoRA branch does something."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in lora_layers(model):
            for b in layer.lora_B.values():
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)


def test_lora_on_fused_qkv_moves_only_the_targeted_slices():
    """Targets q and v of the fused c_attn (C -> 3C): the k rows of the output must not move,
    and the whole output must equal x W'^T + b with W' = W + (alpha/r) [B_q A_q; 0; B_v A_v]."""
    C = 8
    torch.manual_seed(0)
    base = nn.Linear(C, 3 * C)
    reference = nn.Linear(C, 3 * C)
    reference.load_state_dict(base.state_dict())
    lora = LoRALinear(base, {"q": (0, C), "v": (2 * C, 3 * C)}, r=2, alpha=4.0)
    _randomize_lora_b(lora)
    x = torch.randn(5, C)
    y, y0 = lora(x), reference(x)
    assert torch.equal(y[:, C : 2 * C], y0[:, C : 2 * C])  # k untouched, bit for bit
    assert not torch.allclose(y[:, :C], y0[:, :C])
    assert not torch.allclose(y[:, 2 * C :], y0[:, 2 * C :])
    delta = torch.zeros(3 * C, C)
    delta[:C] = 2.0 * lora.lora_B["q"] @ lora.lora_A["q"]  # alpha / r = 2
    delta[2 * C :] = 2.0 * lora.lora_B["v"] @ lora.lora_A["v"]
    expected = x @ (reference.weight + delta).T + reference.bias
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("variant", ["gpt2", "gptj"])
def test_lora_starts_as_the_base_model_because_b_is_zero(variant):
    idx, lengths = _batch()
    plain = _classifier("head", variant)
    lora = _classifier("lora", variant, lora_targets=("q", "k", "v", "proj", "mlp"))
    lora.head.load_state_dict(plain.head.state_dict())
    assert all(not b.any() for m in lora_layers(lora) for b in m.lora_B.values())
    assert torch.equal(lora(idx, lengths).logits, plain(idx, lengths).logits)


def test_lora_merge_matches_and_unmerge_restores_weights_exactly():
    idx, lengths = _batch()
    model = _classifier("lora", lora_targets=("q", "v", "mlp"))
    _randomize_lora_b(model)
    before = {n: p.clone() for n, p in model.named_parameters()}
    unmerged_logits = model(idx, lengths).logits
    merge_lora(model)
    merged_logits = model(idx, lengths).logits
    torch.testing.assert_close(merged_logits, unmerged_logits, atol=1e-5, rtol=1e-5)
    assert not torch.equal(
        model.gpt.h[0].attn.c_attn.base.weight, before["gpt.h.0.attn.c_attn.base.weight"]
    )
    unmerge_lora(model)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert torch.equal(model(idx, lengths).logits, unmerged_logits)


def test_merged_model_refuses_to_train():
    model = _classifier("lora")
    merge_lora(model)
    model.train()
    with pytest.raises(RuntimeError, match="unmerge"):
        model(*_batch())


def test_merged_copy_is_a_plain_gpt_with_the_same_function():
    model = _classifier("lora", lora_targets=("q", "k", "proj", "mlp"))
    _randomize_lora_b(model)
    plain = merged_copy(model.gpt)
    assert not lora_layers(plain) and lora_layers(model.gpt)  # the original keeps its LoRA
    assert set(plain.state_dict()) == set(_gpt().state_dict())
    idx, _ = _batch()
    torch.testing.assert_close(plain(idx).logits, model.gpt(idx).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["gpt2", "gptj"])
def test_adapters_start_as_the_identity(variant):
    idx, lengths = _batch()
    plain = _classifier("head", variant)
    adapted = _classifier("adapter", variant, adapter_size=4)
    adapted.head.load_state_dict(plain.head.state_dict())
    assert torch.equal(adapted(idx, lengths).logits, plain(idx, lengths).logits)
    n_adapters = sum(type(m).__name__ == "Adapter" for m in adapted.modules())
    assert n_adapters == 2 * adapted.gpt.config.n_layer  # after attention and after the MLP


def test_prefix_changes_attention_and_padding_still_does_not_matter():
    idx, lengths = _batch()
    plain = _classifier("head")
    prefixed = _classifier("prefix", n_prefix=3)
    prefixed.head.load_state_dict(plain.head.state_dict())
    assert not torch.allclose(prefixed(idx, lengths).logits, plain(idx, lengths).logits)
    padded = prefixed(idx, lengths).logits
    for row in range(len(idx)):
        alone = prefixed(idx[row : row + 1, : lengths[row]], lengths[row : row + 1]).logits
        torch.testing.assert_close(alone[0], padded[row], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["gpt2", "gptj"])
def test_prefix_trains_under_bf16_autocast(variant):
    """Under autocast the tokens' keys are bf16; prefixes written in fp32 would make the cache
    reallocate and silently drop them, leaving them with no gradient."""
    model = _classifier("prefix", variant, n_prefix=2).train()
    idx, lengths = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(idx, lengths, torch.tensor([0, 1, 1])).loss
    loss.backward()
    assert model.prefix.key.grad.abs().sum() > 0 and model.prefix.value.grad.abs().sum() > 0


def _lora_count(cfg: minigpt.GPTConfig, r: int, targets: tuple[str, ...]) -> int:
    """r (in + out) per adapted matrix: q, k, v are C x C slices; proj C x C; mlp two C x d_ff."""
    C, d_ff = cfg.n_embd, cfg.d_ff
    per_layer = sum(r * 2 * C for t in targets if t in "qkv" or t == "proj")
    if "mlp" in targets:
        per_layer += 2 * r * (C + d_ff)
    return cfg.n_layer * per_layer


@pytest.mark.parametrize(
    "method, knobs",
    [
        ("head", {}),
        ("top", {"trainable_blocks": 1}),
        ("full", {}),
        ("lora", {"lora_r": 4, "lora_targets": ("q", "v", "mlp")}),
        ("adapter", {"adapter_size": 4}),
        ("prefix", {"n_prefix": 3}),
    ],
)
def test_trainable_parameter_counts(method, knobs):
    model = _classifier(method, **knobs)
    cfg, base_total = model.gpt.config, _gpt().num_params()
    C, L, K = cfg.n_embd, cfg.n_layer, len(LABELS)
    head = C * K + K
    block = sum(p.numel() for p in _gpt().h[-1].parameters())
    expected_new = {
        "head": 0,
        "top": 0,
        "full": 0,
        "lora": _lora_count(cfg, 4, ("q", "v", "mlp")),
        "adapter": L * 2 * (2 * C * 4 + 4 + C),
        "prefix": 2 * L * 3 * C,  # K^P and V^P: (L, H, P, D) each with H * D = C
    }[method]
    expected_trainable = {
        "head": head,
        "top": head + block + 2 * C,  # + ln_f weight and bias
        "full": head + base_total,
    }.get(method, head + expected_new)
    assert count_params(model) == (expected_trainable, base_total + head + expected_new)


def test_method_config_rejects_unknown_values():
    with pytest.raises(ValueError, match="unknown method 'lorax'"):
        MethodConfig(method="lorax")
    with pytest.raises(ValueError, match="LoRA targets"):
        MethodConfig(method="lora", lora_targets=("q", "o"))
    with pytest.raises(ValueError, match="lora_r=0 must be positive"):
        MethodConfig(method="lora", lora_r=0)
