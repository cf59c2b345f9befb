"""Generation: KV cache == recomputation, sliding past block_size, sampling filters, eos; the
static cache and the compiled decode step give the same tokens, compiled once for all of them."""

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import minigpt
import minigpt.model.generate as generation
from minigpt.model.attention import StaticKVCache
from minigpt.model.generate import SamplingConfig, filter_logits, generate, sample_next
from tests.tiny_models import VARIANTS, tiny_gpt_config


def _model(variant: str, **overrides) -> minigpt.GPT:
    torch.manual_seed(0)
    cfg = tiny_gpt_config(block_size=16, **{**VARIANTS[variant], **overrides})
    model = minigpt.GPT(cfg).eval()
    with torch.no_grad():  # sharper distributions than the init, so a wrong cache shows
        for p in model.parameters():
            p.mul_(8.0)
    return model


def assert_rounding_only(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """The two differ by fp32 rounding alone: another summation order (a cache, or AVX2 against
    AVX-512 kernels) moves logits by about 1e-5 of their scale (measured up to 7e-6), while a
    wrong mask or position moves them by whole units."""
    scale = expected.abs().max().item()
    assert (actual - expected).abs().max().item() < 3e-5 * scale


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
    assert_rounding_only(torch.cat(steps, dim=1), full)


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


# ---- static cache and compiled decoding -------------------------------------------------------

# every architectural switch, plus a prefix model (its prompt is the prefix): (variant, overrides)
CASES = {**{v: (v, {}) for v in VARIANTS}, "prefix": ("gpt2", {"attention": "prefix"})}


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_static_cache_logits_equal_full_forward(case, impl):
    """Attention over all 20 slots, the empty ones masked: each step equals the full pass."""
    variant, overrides = CASES[case]
    model = _model(variant, **overrides, attn_impl=impl)
    idx = torch.randint(0, 67, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(idx).logits
        cache = StaticKVCache(model.config.n_layer, 20, "cpu")
        steps = [model(idx[:, :6], cache=cache).logits]
        steps += [model(idx[:, t : t + 1], cache=cache).logits for t in range(6, 16)]
    assert_rounding_only(torch.cat(steps, dim=1), full)
    assert cache.length.item() == 16


@pytest.mark.parametrize("case", sorted(CASES))
def test_static_cache_gives_the_growing_caches_tokens_past_block_size(case):
    variant, overrides = CASES[case]
    model = _model(variant, **overrides)
    prompt = torch.randint(0, 67, (3, 5), generator=torch.Generator().manual_seed(0))
    cache = StaticKVCache(model.config.n_layer, model.config.block_size, "cpu")
    static = generate(model, prompt, SamplingConfig(40, temperature=0), cache=cache)
    assert torch.equal(static, model.generate(prompt, 40, temperature=0))


@pytest.mark.parametrize("variant", ["gpt2", "local"])
def test_static_cache_with_prefixes_equals_the_growing_one(variant):
    """Prefix tuning's learned keys/values first, then tokens (and, banded, out of the window)."""
    model = _model(variant)
    cfg, n_prefix = model.config, 3
    prefix = torch.randn(2, 2, cfg.n_head, n_prefix, cfg.head_dim)  # (k|v, B, H, P, D)
    caches = [model.new_cache(n_prefix), StaticKVCache(cfg.n_layer, 12 + n_prefix, "cpu", n_prefix)]
    for cache in caches:
        for layer in range(cfg.n_layer):
            cache.update(layer, *prefix)
        cache.advance(n_prefix)
    idx = torch.randint(0, 67, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        growing, static = ([model(idx[:, :4], cache=c).logits] for c in caches)
        for t in range(4, 12):
            growing.append(model(idx[:, t : t + 1], cache=caches[0]).logits)
            static.append(model(idx[:, t : t + 1], cache=caches[1]).logits)
    assert_rounding_only(torch.cat(static, 1), torch.cat(growing, 1))


def _prompt_and_tokens(model, compile: bool, batch: int = 2, **sampling):
    prompt = torch.randint(0, 67, (batch, 3), generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    return model.generate(prompt, 20, generator=g, compile=compile, **sampling)


@pytest.mark.parametrize("batch", [1, 2])  # a (1, 1) token's strides are easy to get wrong
@torch._dynamo.config.patch(error_on_recompile=True)
def test_compiled_decode_traces_one_graph_for_every_token(monkeypatch, batch):
    """No recompiles: dynamo's guards decide them (the backend only turns the graph into code),
    so the eager backend proves it in a second. 3 + 20 tokens slide past block_size=16; the
    slid window's prefill runs eagerly, the one-token step stays compiled."""
    step = torch.compile(generation.decode_step, backend="eager", fullgraph=True)
    monkeypatch.setattr(generation, "compiled_decode_step", lambda: step)
    torch._dynamo.reset()
    counters.clear()
    model = _model("gptj")
    eager = _prompt_and_tokens(model, compile=False, batch=batch, temperature=0)
    for _ in range(2):
        assert torch.equal(_prompt_and_tokens(model, True, batch=batch, temperature=0), eager)
    assert counters["stats"]["unique_graphs"] == 1
    assert counters["stats"]["calls_captured"] > 0  # the step really was traced


@pytest.mark.compile
@torch._dynamo.config.patch(error_on_recompile=True)
def test_compiled_decode_gives_eager_tokens():
    """With inductor (about 25 s of compiling on 2 busy CPU cores): greedy tokens equal eager's.
    Sampling draws the same uniforms from the generator; the compiled logits differ from eager
    ones by rounding only (< 1e-5 on logits up to 19 here), so a sampled token can differ only
    when a draw lands within that rounding of a boundary of the CDF: not for this seed."""
    torch._dynamo.reset()
    counters.clear()
    model = _model("gptj", layer_types=("global", "local"), window_size=5)  # rotary + banded
    for sampling in (dict(temperature=0), dict(temperature=1.0, top_k=20, top_p=0.95)):
        eager = _prompt_and_tokens(model, compile=False, **sampling)
        assert torch.equal(_prompt_and_tokens(model, compile=True, **sampling), eager)
    assert counters["stats"]["unique_graphs"] == 1
    logits = []
    for step in (generation.decode_step, generation.compiled_decode_step()):
        with torch.inference_mode():  # inputs as generate makes them (else dynamo recompiles)
            cache = StaticKVCache(model.config.n_layer, 16, "cpu")  # min(3 + 20 - 1, block)
            model.hidden_states(torch.zeros(2, 3, dtype=torch.long), cache)
            logits.append(step(model, torch.tensor([[7], [9]]), cache))
    torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=1e-5)  # measured 3.8e-6


def test_compile_needs_a_static_cache_that_fits():
    model = _model("gpt2")
    prompt = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="compile=True needs use_cache=True"):
        SamplingConfig(compile=True, use_cache=False)
    with pytest.raises(ValueError, match="compile=True needs a StaticKVCache"):
        generate(model, prompt, SamplingConfig(3, compile=True), cache=model.new_cache())
    small = StaticKVCache(model.config.n_layer, 5, "cpu")
    with pytest.raises(ValueError, match="holds 5 tokens after its prefixes; this call stores 6"):
        generate(model, prompt, SamplingConfig(3), cache=small)
