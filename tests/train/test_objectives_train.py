"""Every pre-training objective through train.py: train, save, load, resume exactly, fine-tune;
and bench/objectives.py --quick end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train
from minigpt import GPT
from minigpt.checkpoint import load_tokenizer
from minigpt.data.objectives import ATTENTION, MASK_TOKEN, OBJECTIVES, SENTINELS
from minigpt.device import DeviceConfig
from minigpt.finetune.classifier import GPTClassifier, load_classifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.run import run
from minigpt.settings import ConfigError, to_flags
from minigpt.train.metrics import read_metrics
from minigpt.train.trainer import Trainer
from tests.tiny_models import THREADED_SHAPE
from tests.train.fixtures import tiny_train_config

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("module_one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """One 20-step run per objective: {objective: out_dir}."""
    runs = {}
    for objective in OBJECTIVES:
        out = tmp_path_factory.mktemp(objective)
        Trainer(tiny_train_config(out, data_dir, objective=objective, dropout=0.1)).train()
        runs[objective] = out
    return runs


def _losses(out_dir, kind=None):
    return [(r["iter"], r["loss"]) for r in read_metrics(out_dir) if r.get("kind") == kind]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_each_objective_lowers_its_loss_and_saves_its_attention_mode(objective, trained):
    model = GPT.from_pretrained(trained[objective])
    untrained = math.log(model.config.vocab_size)  # the loss of uniform predictions
    assert _losses(trained[objective])[-1][1] < untrained - 0.5
    assert model.config.attention == ATTENTION[objective]
    needed = {"mlm": (MASK_TOKEN,), "span": SENTINELS}.get(objective, ())
    assert load_tokenizer(trained[objective]).special_tokens == needed


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_perplexity_is_logged_only_where_the_loss_is_a_language_models(objective, trained):
    evals = [r for r in read_metrics(trained[objective]) if r.get("kind") == "eval"]
    assert ("val_ppl" in evals[-1]) == (objective in ("causal", "prefix_lm"))


@pytest.mark.parametrize("objective", ["prefix_lm", "span", "mlm"])
def test_resume_is_exact_for_every_objective(objective, tmp_path, data_dir, default_threads):
    """Their batches draw masks, splits and spans: resume must redraw exactly the same ones."""
    common = dict(objective=objective, dropout=0.1, log_interval=2, eval_interval=5,
                  **THREADED_SHAPE)  # fmt: skip
    Trainer(tiny_train_config(tmp_path / "a", data_dir, **common)).train()
    Trainer(tiny_train_config(tmp_path / "b", data_dir, **common, max_iters=10)).train()
    Trainer(tiny_train_config(tmp_path / "b", data_dir, **common, init_from="resume")).train()
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_train_py_resumes_an_mlm_run_exactly_in_a_subprocess(tmp_path, data_dir, default_threads):
    flags = to_flags(tiny_train_config(tmp_path / "x", data_dir, **THREADED_SHAPE))
    flags += ["--objective=mlm", "--log_interval=2", "--eval_interval=5"]
    assert train.main([*flags, f"--out_dir={tmp_path / 'a'}"]) == 0
    assert train.main([*flags, f"--out_dir={tmp_path / 'b'}", "--max_iters=10"]) == 0
    done = subprocess.run(
        [sys.executable, "train.py", "--init_from=resume", f"--out_dir={tmp_path / 'b'}",
         "--max_iters=20"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mlm train loss" in done.stdout and "ppl" not in done.stdout
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_a_checkpoint_with_the_wrong_attention_is_refused(trained, tmp_path, data_dir):
    cfg = tiny_train_config(tmp_path, data_dir, init_from=str(trained["causal"]), objective="mlm")
    with pytest.raises(ConfigError, match="--objective=mlm trains bidirectional attention"):
        Trainer(cfg)


def test_help_says_where_perplexity_means_something(capsys):
    assert train.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "mlm (BERT masked LM" in out and "Perplexity is printed for causal and prefix_lm" in out


def _toy_task(root: Path) -> Path:
    """A separable 2-class task in the training verse's characters."""
    verdicts = (("day", "pos"), ("buds", "neg"))
    rows = [
        {"text": f"thou art {w} {v}", "sentiment": label}
        for w in ("more", "too", "all")
        for v, label in verdicts
    ]
    for split in ("train", "val", "test"):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_fine_tunes_into_a_classifier_that_saves_and_loads(
    objective, trained, tmp_path
):
    cfg = FinetuneConfig(
        init_from=str(trained[objective]), data_dir=str(_toy_task(tmp_path)),
        out_dir=str(tmp_path / "clf"), label_column="sentiment", epochs=15, batch_size=4,
        dropout=0.0, patience=0, progress=False, compute=DeviceConfig("cpu", "float32"),
        learning_rate=3e-3, seed=0, threads=1,
    )  # fmt: skip
    metrics = run(cfg)
    assert metrics["test"]["accuracy"] == 1.0
    model, tokenizer = load_classifier(tmp_path / "clf")
    assert model.gpt.config.attention == ATTENTION[objective]
    probs = model.predict_proba(["thou art too day", "thou art all buds"], tokenizer)
    assert probs.argmax(-1).tolist() == [model.labels.index("pos"), model.labels.index("neg")]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_classifier_features_ignore_the_padding(objective, trained):
    model = GPTClassifier(GPT.from_pretrained(trained[objective]), ["a", "b"]).eval()
    ids = torch.randint(10, (1, 6), generator=torch.Generator().manual_seed(0))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    lengths = torch.tensor([6])
    with torch.no_grad():
        alone, with_pad = model(ids, lengths).logits, model(padded, lengths).logits
    torch.testing.assert_close(alone, with_pad, atol=1e-5, rtol=0)


def test_bidirectional_classifier_pools_the_mean_of_the_real_tokens(trained):
    model = GPTClassifier(GPT.from_pretrained(trained["mlm"]), ["a", "b"]).eval()
    ids = torch.randint(10, (1, 6), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([6])
    with torch.no_grad():
        h = model.hidden_states(ids, lengths)
        torch.testing.assert_close(model(ids, lengths).logits, model.head(h.mean(1)))


def test_aux_lm_loss_is_refused_for_a_model_that_sees_the_future(trained):
    model = GPTClassifier(GPT.from_pretrained(trained["mlm"]), ["a", "b"])
    ids, lengths, labels = torch.zeros(1, 4, dtype=torch.long), torch.tensor([4]), torch.tensor([0])
    with pytest.raises(ValueError, match="the auxiliary LM loss needs a causal model"):
        model(ids, lengths, labels, aux_lm_weight=0.5)


@pytest.mark.bench
def test_bench_objectives_quick_runs_end_to_end_in_under_3_minutes(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/objectives.py", "--quick", f"--out_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert list(result["rows"]) == [*OBJECTIVES, "none"]
    params = {row["params"] for row in result["rows"].values()}
    assert len(params) == 1  # the same model size for every objective and the baseline
    for row in result["rows"].values():
        assert 0.0 <= row["test_accuracy"]["mean"] <= 1.0
        assert 0.0 <= row["test_macro_f1"]["mean"] <= 1.0


def test_bench_objectives_refuses_an_unknown_row_in_one_line():
    done = subprocess.run(
        [sys.executable, "bench/objectives.py", "--rows=mlm,bert"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("--rows: unknown bert; choose from causal, prefix_lm, span, mlm, none")
    )
