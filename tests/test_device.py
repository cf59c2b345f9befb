"""dtype="auto" on a CPU: decided by timing the model's own training step, never a guess."""

import pytest
import torch

import minigpt
import minigpt.device as device_module
from minigpt.device import BF16_MARGIN, fastest_dtype, resolve_dtype
from minigpt.train.precision import training_probe
from tests.tiny_models import tiny_gpt_config

CPU = torch.device("cpu")


def fake_probe(seconds: dict[torch.dtype, float]):
    """A probe and a clock: each probe call of `dtype` advances the clock by seconds[dtype]."""
    now = [0.0]
    calls = []

    def probe(dtype):
        calls.append(dtype)
        now[0] += seconds[dtype]

    return probe, (lambda: now[0]), calls


@pytest.mark.parametrize(
    ("bf16_seconds", "expected"),
    [(1.0 / 1.5, torch.bfloat16), (1.0 / (BF16_MARGIN * 0.99), torch.float32),
     (2.0, torch.float32)],
)  # fmt: skip
def test_bf16_is_picked_only_when_its_step_beats_fp32_by_the_margin(bf16_seconds, expected):
    probe, clock, calls = fake_probe({torch.float32: 1.0, torch.bfloat16: bf16_seconds})
    assert fastest_dtype(probe, repeats=3, clock=clock) == expected
    assert calls == [torch.float32, torch.bfloat16] * 4  # one warm-up each, then alternating


def test_emulated_bf16_matmul_settles_float32_without_running_the_model(monkeypatch):
    peaks = {torch.float32: 100e9, torch.bfloat16: 1e9}
    monkeypatch.setattr(
        device_module, "measure_matmul_peak", lambda device, dtype, **kw: peaks[dtype]
    )
    probe, _, calls = fake_probe({torch.float32: 1.0, torch.bfloat16: 0.1})
    assert resolve_dtype("auto", CPU, probe) == torch.float32
    assert calls == []


def test_fast_bf16_matmul_defers_to_the_model_step(monkeypatch):
    peaks = {torch.float32: 100e9, torch.bfloat16: 400e9}
    monkeypatch.setattr(
        device_module, "measure_matmul_peak", lambda device, dtype, **kw: peaks[dtype]
    )
    slower_in_bf16, _, _ = fake_probe({torch.float32: 1.0, torch.bfloat16: 1.0})
    monkeypatch.setattr(device_module, "fastest_dtype", lambda probe: torch.float32)
    assert resolve_dtype("auto", CPU, slower_in_bf16) == torch.float32
    assert resolve_dtype("auto", CPU) == torch.bfloat16  # no model (sampling): the matmul rule
    assert resolve_dtype("float32", CPU, slower_in_bf16) == torch.float32


def test_training_probe_leaves_no_gradients_and_no_rng_trace():
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(dropout=0.1))
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    training_probe(model, 2, 8, CPU)(torch.float32)
    assert torch.equal(torch.rand(3), expected)
    assert all(p.grad is None for p in model.parameters())
