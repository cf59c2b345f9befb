"""Parity with Hugging Face transformers (a test-only oracle) for GPT-2, GPT-Neo and GPT-J.

Each test builds a tiny random HF model, saves it with `save_pretrained`, loads the directory with
minigpt and compares logits over the full context and greedy generations token for token.
"""

import dataclasses

import pytest
import torch

import minigpt

transformers = pytest.importorskip("transformers")

VOCAB, CONTEXT = 101, 48


def _randomise(model: torch.nn.Module) -> None:
    """Weights larger than HF's init (std 0.02) so attention is far from uniform and any
    mis-mapped tensor, mask or rotation shows up in the logits."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3 if p.dim() > 1 else 0.1)


def _hf_gpt2():
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=CONTEXT, n_embd=64, n_layer=2, n_head=4
    )
    return transformers.GPT2LMHeadModel(cfg)


def _hf_neo():
    cfg = transformers.GPTNeoConfig(
        vocab_size=VOCAB, max_position_embeddings=CONTEXT, hidden_size=64, num_layers=2,
        num_heads=4, attention_types=[[["global", "local"], 1]], window_size=8,
    )  # fmt: skip
    return transformers.GPTNeoForCausalLM(cfg)


def _hf_gptj():
    cfg = transformers.GPTJConfig(
        vocab_size=VOCAB, n_positions=CONTEXT, n_embd=64, n_layer=2, n_head=4, rotary_dim=8
    )
    return transformers.GPTJForCausalLM(cfg)


FAMILIES = {"gpt2": _hf_gpt2, "gpt_neo": _hf_neo, "gptj": _hf_gptj}


@pytest.fixture(scope="module", params=list(FAMILIES))
def hf_pair(request, tmp_path_factory):
    hf = FAMILIES[request.param]().eval()
    _randomise(hf)
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path)
    return request.param, hf, path


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_logits_match_hf_over_full_context(hf_pair, impl):
    _, hf, path = hf_pair
    model = minigpt.GPT.from_pretrained(path, attn_impl=impl).eval()
    idx = torch.randint(0, VOCAB, (3, CONTEXT), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = hf(idx).logits
        got = model(idx).logits
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


def test_greedy_generation_matches_hf(hf_pair):
    _, hf, path = hf_pair
    model = minigpt.GPT.from_pretrained(path).eval()
    prompt = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))
    expected = hf.generate(
        prompt, max_new_tokens=30, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    got = model.generate(prompt, max_new_tokens=30, temperature=0)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("hf_pair", ["gpt_neo"], indirect=True)
def test_neo_banding_changes_the_result(hf_pair):
    """The window (8) is smaller than the sequence (48): ignoring it must change the logits,
    so the parity above really exercises the banded mask."""
    _, _, path = hf_pair
    model = minigpt.GPT.from_pretrained(path).eval()
    dense_cfg = dataclasses.replace(model.config, layer_types=None)
    dense = minigpt.GPT(dense_cfg).eval()
    dense.load_state_dict(model.state_dict())
    idx = torch.randint(0, VOCAB, (1, CONTEXT), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        diff = (model(idx).logits - dense(idx).logits).abs()
    assert diff[:, :8].max() < 1e-5  # inside the window the two agree
    assert diff[:, 8:].max() > 1e-2


def test_export_gpt2_loads_in_hf(tmp_path):
    cfg = minigpt.GPTConfig(vocab_size=VOCAB, block_size=CONTEXT, n_layer=2, n_head=4, n_embd=64)
    torch.manual_seed(0)
    model = minigpt.GPT(cfg).eval()
    minigpt.export_hf_gpt2(model, tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, VOCAB, (2, CONTEXT))
    with torch.no_grad():
        assert (hf(idx).logits - model(idx).logits).abs().max().item() <= 1e-5
    back = minigpt.GPT.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
