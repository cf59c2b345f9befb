"""Generation: KV cache == recomputation, sliding past block_size, sampling filters, eos."""

import pytest
import torch

import minigpt
from minigpt.model.generate import SamplingConfig, filter_logits, sample_next
from tests.tiny_models import VARIANTS, tiny_gpt_config


def _model(variant: str, **overrides) -> minigpt.GPT:
    torch.manual_seed(0)
    cfg = tiny_gpt_config(block_size=16, **{**VARIANTS[variant], **overrides})
    model = minigpt.GPT(cfg).eval()
    with torch.no_grad():  # sharper distributions than the init, so a wrong cache shows
        for p in model.parameters():
            p.mul_(8.0)
    return model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cached_and_uncached_greedy_tokens_match_past_block_size(variant):
    model = _model(variant)
    prompt = torch.randint(0, 67, (3, 5), generator=torch.Generator().manual_seed(0))
    # 5 + 40 tokens: the 16-token window slides 29 times
    cached = model.generate(prompt, max_new_tokens=40, temperature=0, use_cache=True)
    uncached = model.generate(prompt, max_new_tokens=40, temperature=0, use_cache=False)
    assert cached.shape == (3, 45)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cached_logits_equal_full_forward(variant):
    """Prefill 6 tokens then decode one at a time: each step's logits equal the full pass."""
    model = _model(variant)
    idx = torch.randint(0, 67, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(idx).logits
        cache = model.new_cache()
        steps = [model(idx[:, :6], cache=cache).logits]
        steps += [model(idx[:, t : t + 1], cache=cache).logits for t in range(6, 16)]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() < 1e-4


def test_sampling_is_reproducible_with_a_generator():
    model = _model("gpt2")
    prompt = torch.zeros(2, 1, dtype=torch.long)

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return model.generate(prompt, 20, temperature=1.0, top_k=10, top_p=0.9, generator=g)

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    # 0.5 + 0.3 = 0.8 < 0.85, so the nucleus needs the third token too
    kept = ~torch.isinf(filter_logits(logits, top_p=0.85))
    assert kept.tolist() == [[True, True, True, False]]
    kept = ~torch.isinf(filter_logits(logits, top_p=0.1))
    assert kept.tolist() == [[True, False, False, False]]  # the top token always survives
    assert sample_next(logits, SamplingConfig(temperature=0)).item() == 0
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-1)


def test_padded_vocab_is_never_sampled():
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(n_vocab=3)).eval()
    with torch.no_grad():
        model.lm_head.weight[3:] += 5.0  # make padding rows the most likely
    g = torch.Generator().manual_seed(0)
    out = model.generate(torch.zeros(4, 1, dtype=torch.long), 30, generator=g)
    assert out.max().item() < 3


def test_eos_stops_rows_and_pads_them():
    model = _model("gpt2")
    prompt = torch.randint(0, 67, (2, 3), generator=torch.Generator().manual_seed(5))
    greedy = model.generate(prompt, max_new_tokens=10, temperature=0)
    eos = greedy[0, 3].item()  # the first token row 0 emits
    out = model.generate(prompt, max_new_tokens=10, temperature=0, eos_id=eos)
    assert out[0, 3:].eq(eos).all()
    row1_eos = (greedy[1, 3:] == eos).nonzero()
    if len(row1_eos):  # both rows finished: the stream stops right there
        assert out.size(1) == 3 + max(1, row1_eos[0].item() + 1)


def test_streaming_yields_one_column_per_step():
    model = _model("gptj")
    prompt = torch.zeros(2, 2, dtype=torch.long)
    columns = list(model.generate_stream(prompt, max_new_tokens=7, temperature=0))
    assert len(columns) == 7 and all(c.shape == (2, 1) for c in columns)
    assert torch.equal(torch.cat([prompt, *columns], 1), model.generate(prompt, 7, temperature=0))


def test_gradients_flow_through_cache_prefixes():
    """Prefix tuning writes learned keys/values into the cache first; they must train."""
    model = _model("gptj")
    cfg, n_prefix = model.config, 3
    shape = (2, cfg.n_head, n_prefix, cfg.head_dim)
    prefix_k = torch.randn(shape, requires_grad=True)
    prefix_v = torch.randn(shape, requires_grad=True)
    cache = model.new_cache(n_prefix=n_prefix)
    for layer in range(cfg.n_layer):
        cache.update(layer, prefix_k, prefix_v)
    cache.advance(n_prefix)
    idx = torch.randint(0, 67, (2, cfg.block_size))  # a full block still fits after the prefix
    model(idx, idx, cache=cache).loss.backward()
    assert prefix_k.grad.abs().sum() > 0 and prefix_v.grad.abs().sum() > 0
