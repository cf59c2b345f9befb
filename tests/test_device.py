"""dtype="auto" on a CPU: no native bf16 means float32; otherwise the model's own training step,
optimizer included, is timed in both dtypes in interleaved rounds. Muon's Newton-Schulz follows."""

from functools import partial

import pytest
import torch

import minigpt
import minigpt.device as device_module
import minigpt.train.optim as optim_module
from minigpt.device import BF16_MARGIN, PROBE_ROUNDS, choose_dtype, fastest_dtype, resolve_dtype
from minigpt.train.optim import make_optimizer, newton_schulz_dtype
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
    [(1.0 / 1.5, torch.bfloat16), (1.0 / (BF16_MARGIN * 1.01), torch.bfloat16),
     (1.0 / (BF16_MARGIN * 0.99), torch.float32), (2.0, torch.float32)],
)  # fmt: skip
def test_bf16_is_picked_only_when_its_step_beats_fp32_by_the_margin(bf16_seconds, expected):
    probe, clock, calls = fake_probe({torch.float32: 1.0, torch.bfloat16: bf16_seconds})
    choice = fastest_dtype(probe, rounds=5, clock=clock)
    assert choice.dtype == expected
    assert calls == [torch.float32, torch.bfloat16] * 6  # one warm-up each, then alternating
    assert f"{1e3:.1f} ms in float32, {1e3 * bf16_seconds:.1f} ms in bfloat16" in choice.reason


def test_a_burst_of_load_in_one_round_does_not_flip_the_choice():
    """bf16 is 1.2x faster, but a burst makes one bf16 call 10x slower: the median holds."""
    durations = iter([1.0, 0.8] + [1.0, 0.8] * 2 + [1.0, 8.0] + [1.0, 0.8] * 2)
    now = [0.0]

    def probe(dtype):
        now[0] += next(durations)

    assert fastest_dtype(probe, rounds=5, clock=lambda: now[0]).dtype == torch.bfloat16


def test_without_native_bf16_auto_is_float32_without_running_the_model(monkeypatch):
    monkeypatch.setattr(device_module, "native_bf16", lambda device: False)
    probe, _, calls = fake_probe({torch.float32: 1.0, torch.bfloat16: 0.1})
    choice = choose_dtype("auto", CPU, probe)
    assert choice.dtype == torch.float32 and "no native bf16" in choice.reason
    assert calls == []


def test_native_bf16_defers_to_the_model_step(monkeypatch):
    monkeypatch.setattr(device_module, "native_bf16", lambda device: True)
    peaks = {torch.float32: 100e9, torch.bfloat16: 400e9}
    monkeypatch.setattr(
        device_module, "measure_matmul_peak", lambda device, dtype, **kw: peaks[dtype]
    )
    slower_in_bf16, clock, calls = fake_probe({torch.float32: 1.0, torch.bfloat16: 1.0})
    monkeypatch.setattr(device_module, "fastest_dtype", partial(fastest_dtype, clock=clock))
    assert resolve_dtype("auto", CPU, slower_in_bf16) == torch.float32
    assert len(calls) == 2 + 2 * PROBE_ROUNDS
    assert resolve_dtype("auto", CPU) == torch.bfloat16  # no model (sampling): the matmul rule
    assert resolve_dtype("float32", CPU, slower_in_bf16) == torch.float32


@pytest.mark.parametrize(
    ("device", "dtype", "native", "expected"),
    [("cpu", torch.bfloat16, True, torch.bfloat16), ("cpu", torch.bfloat16, False, torch.float32),
     ("cpu", torch.float32, True, torch.float32), ("cuda", torch.float32, True, torch.bfloat16)],
)  # fmt: skip
def test_newton_schulz_runs_in_bf16_only_where_bf16_is_native_and_trained_in(
    monkeypatch, device, dtype, native, expected
):
    monkeypatch.setattr(optim_module, "native_bf16", lambda device: native)
    assert newton_schulz_dtype(torch.device(device), dtype) == expected


def test_training_probe_leaves_no_trace_on_the_model_or_the_rng():
    """The probe runs whole steps, optimizer included, on a copy: weights, gradients and the
    RNG are as they were."""
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(dropout=0.1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    stepped = []

    def muon(module, dtype):
        stepped.append(dtype)
        return make_optimizer("muon", module, 0.1, 0.1, (0.9, 0.99), CPU, dtype)

    probe = training_probe(model, muon, 2, 8, CPU)
    for dtype in (torch.float32, torch.bfloat16, torch.float32):
        probe(dtype)
    assert stepped == [torch.float32, torch.bfloat16]  # one optimizer per dtype
    assert torch.equal(torch.rand(3), expected)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
