"""FLOPs per token, MFU, and the peak it is measured against."""

import pytest
import torch

from minigpt import GPT, GPTConfig
from minigpt.train import perf
from minigpt.train.perf import device_peak_flops, flops_per_token, matmul_params, mfu


def test_flops_per_token_is_6n_plus_attention():
    cfg = GPTConfig(vocab_size=100, block_size=64, n_layer=2, n_head=4, n_embd=32)
    # 6N + 12 L H Q T with L=2, H=4, Q=8, T=64
    assert flops_per_token(cfg, 1000, 64) == 6 * 1000 + 12 * 2 * 4 * 8 * 64


def test_gpt2_124m_flops_match_the_published_estimate():
    with torch.device("meta"):
        model = GPT(GPTConfig.from_preset("gpt2"))
    n = matmul_params(model)
    # all 124.4M parameters minus the 0.8M position table: the tied head is a real matmul
    assert n == model.num_params() - 1024 * 768
    assert n == 123_653_376
    # 6 N + 12 L H Q T at T = 1024: 742M + 113M, about 0.86 GFLOP per token
    assert flops_per_token(model.config, n, 1024) == 6 * n + 12 * 12 * 12 * 64 * 1024


def test_untied_head_counts_once():
    cfg = GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=2, n_embd=16,
                    tie_word_embeddings=False)  # fmt: skip
    model = GPT(cfg)
    # the separate token table is a lookup, the head a matmul: only the head counts
    assert matmul_params(model) == model.num_params() - 64 * 16 - 8 * 16


def test_mfu_is_achieved_over_peak():
    assert mfu(tokens_per_s=1000.0, flops_per_token=2e6, peak=4e9) == pytest.approx(0.5)


def test_cpu_peak_is_measured_not_a_gpu_constant():
    peak = device_peak_flops("cpu", torch.float32)
    assert 1e8 < peak < 1e14  # some real CPU rate
    assert peak not in {row[torch.float32] for row in perf.GPU_PEAK_FLOPS.values()}


@pytest.mark.parametrize(
    "name, dtype, expected",
    [
        ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312e12),
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989e12),
        ("NVIDIA H100 PCIe", torch.bfloat16, 756e12),
        ("NVIDIA H200", torch.bfloat16, 989e12),
        ("NVIDIA H100 80GB HBM3", torch.float32, 494.5e12),  # TF32
    ],
)
def test_gpu_table(monkeypatch, name, dtype, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert device_peak_flops(torch.device("cuda", 0), dtype) == expected


def test_unknown_gpu_is_measured(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L4")
    monkeypatch.setattr(perf, "measure_matmul_peak", lambda device, dtype, **kw: 1.23e14)
    assert device_peak_flops(torch.device("cuda", 0), torch.bfloat16) == 1.23e14


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_measured_gpu_peak_is_below_table_peak():
    device = torch.device("cuda", 0)
    measured = perf.measure_matmul_peak(device, torch.bfloat16, size=4096, seconds=0.5)
    assert measured > 0
    name = torch.cuda.get_device_name(device)
    known = [v[torch.bfloat16] for k, v in perf.GPU_PEAK_FLOPS.items() if k in name]
    if known:
        assert measured < 1.05 * known[0]
