"""CUDA-only checks (marked `cuda`; `python bench/gpu.py` runs them and fails if any is skipped)."""

import pytest
import torch

import minigpt
from tests.tiny_models import VARIANTS, tiny_gpt_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# bf16 keeps 8 mantissa bits: logits of order 1 agree to about 2^-8 after a few layers
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("dtype", sorted(TOLERANCE, key=str))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_math_and_sdpa_agree_on_cuda(variant, dtype):
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config(**VARIANTS[variant])).to("cuda", dtype).eval()
    idx = torch.randint(0, 67, (3, 32), device="cuda")
    with torch.no_grad():
        fused = model(idx).logits.float()
        for block in model.h:
            block.attn.impl = "math"
        explicit = model(idx).logits.float()
    assert (fused - explicit).abs().max().item() <= TOLERANCE[dtype]


def test_cached_decode_matches_uncached_on_cuda():
    torch.manual_seed(0)
    model = minigpt.GPT(tiny_gpt_config()).to("cuda").eval()
    idx = torch.randint(0, 67, (2, 5), device="cuda")
    cached = model.generate(idx, 20, temperature=0, use_cache=True)
    uncached = model.generate(idx, 20, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached)
