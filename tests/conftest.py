"""Shared pytest setup: tiktoken's cached BPE files, and OpenMP threads that do not spin.

tiktoken downloads its BPE files on first use; machines here cannot. `../shared/tiktoken-cache`
(next to the repository) holds r50k_base and cl100k_base under tiktoken's cache names. An
explicitly set TIKTOKEN_CACHE_DIR is left alone.

Idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE, read when torch loads, so before any test
imports it): on a shared 2-core machine spinning threads made tiny training steps 12x slower.
The `one_thread` fixture is for tests of tiny models, where a thread pool costs more than the math.
"""

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from tests.tiny_models import one_thread  # noqa: E402

_CACHE = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken-cache"
if _CACHE.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_CACHE))


@pytest.fixture(name="one_thread")
def one_thread_fixture():
    with one_thread():
        yield
