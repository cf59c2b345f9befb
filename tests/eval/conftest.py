"""Checkpoints and files shared by the eval CLI tests (built once per session: training is slow)."""

import json

import pytest

import minigpt
from minigpt.train.trainer import Trainer
from tests.eval.models import random_model
from tests.tiny_models import one_thread
from tests.train.fixtures import VERSE, make_dataset, tiny_train_config


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """A trained char checkpoint, an HF gpt2 directory (no tokenizer file), a text, a task."""
    tmp = tmp_path_factory.mktemp("eval_files")
    with one_thread():
        Trainer(tiny_train_config(tmp / "char", make_dataset(tmp / "data"), max_iters=10)).train()
    minigpt.export_hf_gpt2(random_model(50257, block_size=32), tmp / "hf")
    (tmp / "verse.txt").write_text(VERSE * 3, encoding="utf-8")
    item = {"context": "Shall I compare thee", "choices": [" to", " xq"], "label": 0}
    (tmp / "task.jsonl").write_text(json.dumps(item) + "\n" + json.dumps({**item, "label": 1}))
    return tmp
