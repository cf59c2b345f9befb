"""Attention visibility: causal, bidirectional and prefix, on both attention paths."""

import pytest
import torch

import minigpt
from minigpt.model.attention import visible_keys
from tests.tiny_models import VARIANTS, tiny_gpt_config

T = 10
PREFIX = torch.tensor([4, 7])  # per-row prefix lengths of the batch of 2


def expected_visible(mode: str, i: int, j: int, prefix: int) -> bool:
    """Who sees whom, stated directly from the definitions (no banding, no padding)."""
    if mode == "bidirectional":
        return True
    if mode == "prefix" and j < prefix:
        return True
    return j <= i


def _model(mode: str, impl: str = "math", **overrides) -> minigpt.GPT:
    torch.manual_seed(0)
    return minigpt.GPT(tiny_gpt_config(attention=mode, attn_impl=impl, **overrides)).eval()


def _logits(model, idx, prefix_len=None, lengths=None):
    with torch.no_grad():
        return model(idx, prefix_len=prefix_len, lengths=lengths).logits


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("mode", ["causal", "bidirectional", "prefix"])
def test_changing_token_j_changes_position_i_exactly_when_j_is_visible(mode, impl):
    model = _model(mode, impl)
    idx = torch.randint(67, (2, T), generator=torch.Generator().manual_seed(1))
    prefix_len = PREFIX if mode == "prefix" else None
    base = _logits(model, idx, prefix_len)
    for j in range(T):
        changed = idx.clone()
        changed[:, j] = (changed[:, j] + 1) % 67
        moved = (_logits(model, changed, prefix_len) - base).abs().amax(-1) > 1e-6  # (B, T)
        for b in range(2):
            for i in range(T):
                want = i == j or expected_visible(mode, i, j, int(PREFIX[b]))
                assert bool(moved[b, i]) == want, (b, i, j)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["causal", "bidirectional", "prefix"])
def test_math_and_sdpa_agree_in_every_mode(mode, variant):
    idx = torch.randint(67, (2, 20), generator=torch.Generator().manual_seed(2))
    prefix_len = torch.tensor([3, 12]) if mode == "prefix" else None
    lengths = torch.tensor([20, 14])
    for pad in (None, lengths):
        outs = [
            _logits(_model(mode, impl, **VARIANTS[variant]), idx, prefix_len, pad)
            for impl in ("math", "sdpa")
        ]
        torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)


def test_local_layers_band_bidirectional_attention_on_both_sides():
    mask = visible_keys(6, 6, window=2, prefix_len=torch.tensor([6]))[0, 0]
    want = torch.tensor([[abs(i - j) < 2 for j in range(6)] for i in range(6)])
    assert torch.equal(mask, want)


def test_padding_is_invisible_to_real_tokens_of_a_bidirectional_model():
    model = _model("bidirectional")
    idx = torch.randint(67, (1, T), generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([6])
    other_padding = idx.clone()
    other_padding[:, 6:] = 0
    a = _logits(model, idx, lengths=lengths)[:, :6]
    b = _logits(model, other_padding, lengths=lengths)[:, :6]
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    unpadded = _logits(model, idx[:, :6])
    torch.testing.assert_close(a, unpadded, atol=1e-5, rtol=0)


def test_a_prefix_model_without_prefix_len_is_causal():
    causal, prefix = _model("causal"), _model("prefix")
    idx = torch.randint(67, (2, T), generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(_logits(causal, idx), _logits(prefix, idx))


def test_prefix_len_is_refused_by_a_model_that_has_no_prefix():
    with pytest.raises(ValueError, match="only a model built with attention='prefix'"):
        _model("causal")(torch.zeros(2, 4, dtype=torch.long), prefix_len=torch.tensor([1, 2]))


def test_prefix_len_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match=r"prefix_len values must be in \[0, 4\], got \[1, 5\]"):
        _model("prefix")(torch.zeros(2, 4, dtype=torch.long), prefix_len=torch.tensor([1, 5]))


def test_unknown_attention_mode_is_rejected():
    with pytest.raises(ValueError, match="attention='encoder' must be one of"):
        tiny_gpt_config(attention="encoder")


@pytest.mark.parametrize("variant", VARIANTS)
def test_prefix_model_cached_generation_equals_uncached_past_block_size(variant):
    model = _model("prefix", "sdpa", **VARIANTS[variant])
    prompt = torch.randint(67, (2, 9), generator=torch.Generator().manual_seed(5))
    n_new = 40  # past block_size=32: the window slides and the prefix shrinks
    cached = model.generate(prompt, n_new, temperature=0, use_cache=True)
    uncached = model.generate(prompt, n_new, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached)


def test_prefix_model_reads_the_prompt_as_its_prefix():
    model = _model("prefix")
    prompt = torch.randint(67, (1, 6), generator=torch.Generator().manual_seed(6))
    token = model.generate(prompt, 1, temperature=0)[:, -1]
    logits = _logits(model, prompt, prefix_len=torch.tensor([6]))[:, -1]
    assert torch.equal(token, logits.argmax(-1))


def test_a_bidirectional_model_refuses_to_generate():
    with pytest.raises(ValueError, match="a bidirectional model cannot generate"):
        _model("bidirectional").generate(torch.zeros(1, 3, dtype=torch.long), 2)


def test_checkpoints_record_the_attention_mode(tmp_path):
    _model("prefix").save_pretrained(tmp_path)
    assert minigpt.GPT.from_pretrained(tmp_path).config.attention == "prefix"
