"""Model core: presets, attention implementations, loss, gradients, precision, bad inputs."""

import math

import pytest
import torch

import minigpt
from minigpt.model.config import PUBLISHED_PARAMS
from tests.tiny_models import VARIANTS, tiny_gpt_config


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_preset_counts_on_meta_device_within_2_percent(name):
    with torch.device("meta"):
        model = minigpt.GPT(minigpt.GPTConfig.from_preset(name))
    published = PUBLISHED_PARAMS[name]
    assert abs(model.num_params() - published) / published < 0.02


def test_exact_counts_of_released_checkpoints():
    with torch.device("meta"):
        gpt2 = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2"))
        neo = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt-neo-125m"))
    assert gpt2.num_params() == 124_439_808
    assert gpt2.num_params(non_embedding=True) == 124_439_808 - 50257 * 768 - 1024 * 768
    assert neo.num_params() == 125_198_592


def test_every_preset_is_listed_and_unknown_preset_suggests():
    assert set(minigpt.GPTConfig.preset_names()) == set(PUBLISHED_PARAMS)
    with pytest.raises(ValueError, match="did you mean 'gpt2-xl'"):
        minigpt.GPTConfig.from_preset("gpt2-xxl")


def test_bad_config_is_one_clear_line():
    with pytest.raises(ValueError, match="divisible by n_head"):
        tiny_gpt_config(n_embd=30)
    with pytest.raises(ValueError, match="layer_types has 1 entries"):
        tiny_gpt_config(layer_types=("global",))
    with pytest.raises(ValueError, match="did you mean 'n_embd'"):
        minigpt.GPTConfig.from_dict({"n_emb": 3})


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_math_and_sdpa_agree(variant):
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(**VARIANTS[variant])).eval()
    idx = torch.randint(0, 67, (3, 32))
    with torch.no_grad():
        fused = model(idx).logits
        for block in model.h:
            block.attn.impl = "math"
        explicit = model(idx).logits
    assert (fused - explicit).abs().max().item() <= 1e-5


def test_loss_is_mean_negative_log_likelihood_by_hand():
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config())
    idx = torch.randint(0, 67, (2, 5))
    targets = torch.randint(0, 67, (2, 5))
    targets[0, 1] = targets[1, 4] = -100  # ignored positions drop out of sum and count
    logits, loss = model(idx, targets)
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    terms = [
        -log_probs[b, t, targets[b, t]] for b in range(2) for t in range(5) if targets[b, t] != -100
    ]
    assert len(terms) == 8
    assert loss.item() == pytest.approx(sum(terms).item() / 8, abs=1e-5)
    assert minigpt.perplexity(loss) == pytest.approx(math.exp(loss.item()))


def test_untrained_loss_is_near_log_vocab():
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config())
    idx, targets = torch.randint(0, 67, (2, 8, 32))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(67)) < 0.1


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_parameter_receives_a_gradient(variant):
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(dropout=0.1, **VARIANTS[variant]))
    idx = torch.randint(0, 67, (2, 32))
    model(idx, idx).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_init_follows_gpt2():
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(n_embd=256, n_head=4, n_layer=8))
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.h[0].mlp.c_proj.weight.std().item() == pytest.approx(0.02 / 4.0, rel=0.05)
    assert model.h[0].attn.c_attn.bias.abs().sum() == 0
    assert model.lm_head.weight is model.wte.weight


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_autocast_keeps_loss_in_fp32(dtype, impl):
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(attn_impl=impl, **VARIANTS["local"]))
    idx = torch.randint(0, 67, (2, 32))
    with torch.autocast("cpu", dtype=dtype):
        logits, loss = model(idx, idx)
    assert logits.dtype == dtype
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(model(idx, idx).loss.item(), abs=0.05)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_inputs_fail_with_clear_messages():
    model = minigpt.GPT(tiny_gpt_config())
    with pytest.raises(ValueError, match="exceeds block_size=32; crop"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="token id 67 is outside the vocabulary"):
        model(torch.tensor([[1, 67]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="2-D"):
        model(torch.zeros(4, dtype=torch.long))
