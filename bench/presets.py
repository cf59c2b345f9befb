"""Parameter counts of every preset, computed on the meta device (no memory is allocated).

python bench/presets.py              # JSON
python bench/presets.py --markdown   # the README's preset table
"""

from __future__ import annotations

import argparse
import json

import torch
from common import markdown_table

import minigpt
from minigpt.model.config import PUBLISHED_PARAMS


def preset_rows() -> list[dict]:
    rows = []
    for name in minigpt.GPTConfig.preset_names():
        cfg = minigpt.GPTConfig.from_preset(name)
        with torch.device("meta"):
            n = minigpt.GPT(cfg).num_params()
        published = PUBLISHED_PARAMS[name]
        rows.append({
            "preset": name, "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head,
            "block_size": cfg.block_size, "params": n, "published": published,
            "diff_percent": round(100 * (n - published) / published, 2),
        })  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    header = ("preset", "n_layer", "n_embd", "n_head", "context", "params", "published", "diff")
    cells = [(r["preset"], r["n_layer"], r["n_embd"], r["n_head"], r["block_size"],
              f"{r['params']:,}", f"{r['published']:,}", f"{r['diff_percent']:+.2f}%")
             for r in rows]  # fmt: skip
    return markdown_table(header, cells, "lrrrrrrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    rows = preset_rows()
    print(markdown(rows) if parser.parse_args().markdown else json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
