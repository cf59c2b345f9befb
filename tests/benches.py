"""Import a bench script as a module, as `python bench/NAME.py` would run it (bench/ first on
the path, so it finds its sibling helpers such as bench/common.py)."""

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)
