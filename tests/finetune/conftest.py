"""Fixtures shared by the fine-tuning tests."""

import json

import pytest
import torch

import minigpt
from minigpt.data.tokenizer import Tokenizer
from tests.tiny_models import tiny_gpt_config

WORDS = ["film", "plot", "cast", "score", "scene", "story"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A separable 2-class task: the verdict word at the end decides the label. Returns the
    folder with base/ (a tiny byte-level GPT) and train/val/test.jsonl."""
    root = tmp_path_factory.mktemp("toy")
    torch.manual_seed(0)
    minigpt.GPT(tiny_gpt_config(vocab_size=256)).save_pretrained(
        root / "base", Tokenizer.from_name("bytes")
    )
    rows = [
        {"text": f"the {w} {v}", "sentiment": label}
        for w in WORDS
        for v, label in (("yes", "pos"), ("no", "neg"))
    ]
    for split in ("train", "val", "test"):
        write_jsonl(root / f"{split}.jsonl", rows)
    return root
