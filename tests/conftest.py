"""Shared pytest setup: point tiktoken at the project's cached BPE files.

tiktoken downloads its BPE files on first use; machines here cannot. `../shared/tiktoken-cache`
(next to the repository) holds r50k_base and cl100k_base under tiktoken's cache names. An
explicitly set TIKTOKEN_CACHE_DIR is left alone.
"""

import os
from pathlib import Path

_CACHE = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken-cache"
if _CACHE.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_CACHE))
