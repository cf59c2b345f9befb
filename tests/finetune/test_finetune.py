"""finetune.py end to end on a tiny GPT and a tiny labelled set: every method, the reports, the
frozen weights, save -> predict, and the one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import finetune
from minigpt.checkpoint import load_model
from minigpt.data.prepare import ensure_dataset
from minigpt.data.tokenizer import Tokenizer
from minigpt.finetune.classifier import GPTClassifier, load_classifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.data import LengthGroupedBatches, load_splits, split_paths
from minigpt.finetune.loop import Finetuner, evaluate
from minigpt.finetune.run import base_model, pretrain_config, run
from minigpt.settings import parse_settings
from tests.finetune.conftest import WORDS, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
METHODS = ["head", "top", "full", "lora", "adapter", "prefix"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: no thread pool


def _config(toy, out_dir, *flags: str) -> FinetuneConfig:
    return parse_settings(
        FinetuneConfig,
        [f"--init_from={toy / 'base'}", f"--data_dir={toy}", f"--out_dir={out_dir}",
         "--label_column=sentiment", "--epochs=25", "--batch_size=4", "--dropout=0",
         "--patience=0", "--progress=False", "--device=cpu", "--learning_rate=3e-3",
         "--seed=0", "--threads=1", *flags],
    )  # fmt: skip


def _splits(cfg: FinetuneConfig, toy):
    return load_splits(cfg, split_paths(cfg, toy), Tokenizer.from_name("bytes"), 32)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_learns_a_separable_toy_task(method, toy, tmp_path):
    cfg = _config(toy, tmp_path, f"--method={method}", "--n_prefix=2", "--adapter_size=4")
    metrics = run(cfg)
    splits = _splits(cfg, toy)
    model, _ = load_classifier(tmp_path)
    train = evaluate(model, splits.loader("train", 64), torch.device("cpu"))
    assert train.accuracy == 1.0, metrics["epochs"][-1]
    assert metrics["test"]["accuracy"] == 1.0


@pytest.mark.parametrize("method", ["head", "top", "lora", "adapter", "prefix"])
def test_frozen_weights_are_bit_identical_after_training(method, toy, tmp_path):
    cfg = _config(toy, tmp_path, f"--method={method}", "--epochs=2", "--weight_decay=0.5")
    splits = _splits(cfg, toy)
    model = GPTClassifier.from_pretrained(
        toy / "base", splits.labels, method=cfg.method_config(), dropout=0.0
    )
    params = dict(model.named_parameters())
    frozen = {n: p.clone() for n, p in params.items() if not p.requires_grad}
    trained = {n: p.clone() for n, p in params.items() if p.requires_grad}
    assert frozen and trained
    device = torch.device("cpu")
    Finetuner(model, cfg, splits.loader("train", 4), splits.loader("val", 64), device).train()
    for name, before in frozen.items():
        assert torch.equal(params[name], before), f"frozen {name} changed"
    assert any(not torch.equal(params[n], before) for n, before in trained.items())
    if method == "top":  # the last block trains, the first stays
        assert "gpt.h.0.mlp.c_fc.weight" in frozen and "gpt.h.1.mlp.c_fc.weight" in trained


def test_metrics_json_has_the_test_report_and_baselines(toy, tmp_path):
    run(_config(toy, tmp_path, "--method=lora", "--epochs=2", "--export_merged"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    test = metrics["test"]
    assert set(test) >= {"loss", "accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert test["labels"] == ["neg", "pos"]
    assert set(test["per_class"]["pos"]) == {"precision", "recall", "f1", "support"}
    assert sum(map(sum, test["confusion_matrix"])) == 2 * len(WORDS)
    assert metrics["baselines"]["majority"]["accuracy"] == 0.5
    assert 0.0 <= metrics["baselines"]["untrained_head"]["accuracy"] <= 1.0
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2]
    assert metrics["trainable_params"] < metrics["total_params"]
    assert (tmp_path / "merged" / "model.safetensors").is_file()


def test_predict_prints_each_label_with_probabilities(toy, tmp_path, capsys):
    run(_config(toy, tmp_path / "clf", "--method=head"))
    texts = tmp_path / "texts.txt"
    texts.write_text("the cast yes\n\nthe plot no\n")
    capsys.readouterr()
    assert finetune.main(["predict", f"--out_dir={tmp_path / 'clf'}", f"--file={texts}"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    assert lines[0].split("\t")[2] == "the cast yes" and "neg 0." in lines[0]
    assert finetune.main(["predict", f"--out_dir={tmp_path / 'clf'}", "--text", "  "]) == 1
    assert "empty text" in capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(toy, tmp_path, capsys):
    write_jsonl(tmp_path / "val.jsonl", [{"text": "the film maybe", "sentiment": "meh"}])
    args = [f"--init_from={toy / 'base'}", f"--train_file={toy / 'train.jsonl'}",
            f"--val_file={tmp_path / 'val.jsonl'}", f"--test_file={toy / 'test.jsonl'}",
            "--label_column=sentiment", f"--out_dir={tmp_path}", "--progress=False"]  # fmt: skip
    assert finetune.main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "label 'meh' is not in the label set" in err
    assert finetune.main([*args[:2], "--method=lorra"]) == 2  # a bad setting
    assert "--method='lorra' must be one of" in capsys.readouterr().err


def test_the_pretraining_run_is_the_recipe_then_the_pretrain_args(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe is found in the checkout from anywhere
    cfg = FinetuneConfig(pretrain_args="--max_iters=7 --n_layer=1")
    train_cfg = pretrain_config(cfg, tmp_path / "lm")
    assert (train_cfg.dataset, train_cfg.objective) == ("movie_reviews_4k", "mlm")
    assert train_cfg.out_dir == str(tmp_path / "lm")
    assert (train_cfg.max_iters, train_cfg.n_layer) == (7, 1)


def test_the_default_fine_tunes_a_masked_lm_base_with_mean_pooling_on_val_macro_f1(tmp_path):
    """`python finetune.py` as a user meets it, with the pre-training cut to 2 steps of a tiny
    model and the training split to 40 texts."""
    ensure_dataset(ROOT / "data" / "movie_reviews")  # the labelled splits
    rows = (ROOT / "data" / "movie_reviews" / "train.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(rows[::212]) + "\n")  # all 5 classes
    tiny = "--max_iters=2 --n_layer=1 --n_head=2 --n_embd=16 --eval_iters=1 --progress=False"
    args = [sys.executable, "finetune.py", f"--pretrain_args={tiny}", "--epochs=2",
            f"--pretrain_out={tmp_path / 'lm'}", f"--out_dir={tmp_path / 'clf'}",
            f"--train_file={tmp_path / 'train.jsonl'}", "--progress=False",
            "--threads=1"]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    base, tokenizer = load_model(tmp_path / "lm")
    assert base.config.attention == "bidirectional" and base.config.block_size == 64
    assert tokenizer.name == "gpt2:4096" and tokenizer.special_tokens == ("[MASK]",)
    metrics = json.loads((tmp_path / "clf" / "metrics.json").read_text())
    assert metrics["config"]["select_on"] == "macro_f1" and metrics["method"]["method"] == "full"
    model, _ = load_classifier(tmp_path / "clf")
    assert model.pooling == "mean" and model.prompt is None


def test_an_existing_pretrained_model_is_reused(toy, tmp_path):
    cfg = FinetuneConfig(pretrain_out=str(toy / "base"))
    assert base_model(cfg) == toy / "base"  # no train.py run: it would take minutes


def test_length_grouped_batches_cover_every_text_once_with_little_padding():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 60, (1000,), generator=g).tolist()
    sampler = LengthGroupedBatches(lengths, batch_size=16, seed=0, group=10)
    epochs = [list(sampler) for _ in range(2)]
    for batches in epochs:
        assert len(batches) == len(sampler) == 63
        assert sorted(i for b in batches for i in b) == list(range(1000))
    assert epochs[0] != epochs[1]  # reshuffled every epoch

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    random_batches = torch.randperm(1000, generator=g).split(16)
    assert padded(epochs[0]) < 0.6 * padded([b.tolist() for b in random_batches])
