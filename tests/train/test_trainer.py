"""The training loop on a tiny model: loss falls, exact resume, checkpoints, signals, NaN."""

import json
import math
import signal

import pytest
import torch

import train
from minigpt import GPT
from minigpt.data.prepare import ensure_dataset
from minigpt.settings import ConfigError, to_flags
from minigpt.train.metrics import read_metrics
from minigpt.train.optim import lr_at, param_groups
from minigpt.train.state import STATE_FILE, load_train_state
from minigpt.train.trainer import Trainer, TrainingDiverged
from tests.tiny_models import THREADED_SHAPE
from tests.train.fixtures import tiny_train_config

pytestmark = pytest.mark.usefixtures("module_one_thread")


def train_losses(out_dir):
    return [(r["iter"], r["loss"]) for r in read_metrics(out_dir) if r.get("kind") != "eval"]


def test_lr_schedule_warmup_cosine_floor():
    kw = dict(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    assert lr_at(0, **kw) == pytest.approx(1 / 11)  # linear warmup, never exactly 0
    assert lr_at(9, **kw) == pytest.approx(10 / 11)
    assert lr_at(10, **kw) == pytest.approx(1.0)  # peak where warmup ends
    assert lr_at(60, **kw) == pytest.approx(0.55)  # half way down the cosine: the midpoint
    assert lr_at(110, **kw) == lr_at(10_000, **kw) == 0.1  # then min_lr for good
    assert lr_at(60, **kw, decay_lr=False) == 1.0


def test_param_groups_decay_only_matrices():
    model = GPT(_tiny_gpt_config())
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and decay["params"]
    assert all(p.dim() < 2 for p in no_decay["params"]) and no_decay["params"]
    counted = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert counted == model.num_params()  # the tied head appears once, nothing is missing


def _tiny_gpt_config():
    from minigpt import GPTConfig

    return GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32)


def test_loss_falls_and_checkpoint_round_trips(tmp_path, data_dir):
    cfg = tiny_train_config(tmp_path / "out", data_dir, max_iters=60, lr_decay_iters=60,
                      eval_interval=20, batch_size=16, n_embd=64, learning_rate=3e-3)  # fmt: skip
    trainer = Trainer(cfg)
    result = trainer.train()
    losses = train_losses(cfg.out_dir)
    assert losses[0][1] > 2.5  # ~log(vocab) at the start
    assert losses[-1][1] < 1.9, losses  # from ~ln(35) for 35 characters
    assert result.iter_num == 60 and math.isfinite(result.best_val_loss)

    # model: safetensors + config + tokenizer, loadable on its own, equal to the trained weights
    loaded = GPT.from_pretrained(cfg.out_dir)
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert (tmp_path / "out" / "tokenizer_spec.json").is_file()
    assert (tmp_path / "out" / "best" / "model.safetensors").is_file()
    # train state: weights_only-loadable, complete
    state = load_train_state(cfg.out_dir)
    assert state["iter_num"] == 60 and state["best_val_loss"] == result.best_val_loss
    assert set(state) >= {"optimizer", "scaler", "rng", "sampler", "model_sha256"}
    # atomic writes leave no temp files behind
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    evals = [r for r in read_metrics(cfg.out_dir) if r.get("kind") == "eval"]
    assert [r["iter"] for r in evals] == [20, 40, 60]
    assert evals[-1]["val_ppl"] == pytest.approx(math.exp(evals[-1]["val_loss"]))


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_is_exact(tmp_path, data_dir, optimizer, default_threads):
    """2N steps straight == N steps, stop, resume for N more: same loss at every logged step
    (fp32 on CPU, dropout on, so the RNG and sampler states must be restored too), with the
    default threads on a model whose ops they split."""
    common = dict(dropout=0.2, max_iters=20, lr_decay_iters=20, log_interval=2, eval_interval=5,
                  optimizer=optimizer, **THREADED_SHAPE)  # fmt: skip
    straight = tiny_train_config(tmp_path / "a", data_dir, **common)
    Trainer(straight).train()
    first = tiny_train_config(tmp_path / "b", data_dir, **{**common, "max_iters": 10})
    Trainer(first).train()
    resumed = train.resolve_config(["--init_from=resume", f"--out_dir={tmp_path / 'b'}",
                                    "--max_iters=20"])  # fmt: skip
    assert resumed.dropout == 0.2 and resumed.data_dir == str(data_dir)  # saved settings kept
    Trainer(resumed).train()
    a, b = train_losses(tmp_path / "a"), train_losses(tmp_path / "b")
    assert [i for i, _ in a] == list(range(2, 21, 2))
    assert a == b  # bit-identical, not just close
    weights_a = GPT.from_pretrained(tmp_path / "a").state_dict()
    weights_b = GPT.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_resume_rejects_torn_checkpoint(tmp_path, data_dir):
    cfg = tiny_train_config(tmp_path / "out", data_dir, max_iters=5, eval_interval=5)
    trainer = Trainer(cfg)
    trainer.train()
    trainer.step()
    trainer.model.save_pretrained(cfg.out_dir)  # a new model beside the old train state
    with pytest.raises(ValueError, match="does not belong to train_state.pt"):
        Trainer(tiny_train_config(tmp_path / "out", data_dir, init_from="resume"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_step_saves_and_says_how_to_resume(tmp_path, data_dir, capsys, signum):
    before = signal.getsignal(signum)
    cfg = tiny_train_config(tmp_path / "out", data_dir, max_iters=1000, eval_interval=500)
    trainer = Trainer(cfg)
    step = trainer.step

    def step_then_signal():
        loss = step()
        if trainer.iter_num == 7:
            signal.raise_signal(signum)  # arrives mid-run, as Ctrl-C or `kill` would
        return loss

    trainer.step = step_then_signal
    result = trainer.train()
    assert (result.iter_num, result.interrupted) == (7, signum.name)
    assert load_train_state(cfg.out_dir)["iter_num"] == 7
    out = capsys.readouterr().out
    assert f"stopped by {signum.name} at iter 7" in out
    assert f"python train.py --init_from=resume --out_dir={cfg.out_dir}" in out
    assert signal.getsignal(signum) is before  # the previous handler is back


def test_nan_loss_stops_and_names_last_good_checkpoint(tmp_path, data_dir):
    cfg = tiny_train_config(
        tmp_path / "out", data_dir, max_iters=30, eval_interval=10, log_interval=5
    )
    trainer = Trainer(cfg)
    step = trainer.step
    trainer.step = lambda: step() * (math.nan if trainer.iter_num > 12 else 1.0)
    with pytest.raises(TrainingDiverged) as err:
        trainer.train()
    assert str(err.value).startswith("loss is nan at iter 15; stopping.")
    assert f"last good checkpoint: {cfg.out_dir} (iter 10)" in str(err.value)
    assert load_train_state(cfg.out_dir)["iter_num"] == 10  # the bad state was never saved


def test_grad_accumulation_matches_one_big_batch(tmp_path, data_dir):
    """k micro-batches of B with loss/k == one batch of k*B: the same update."""
    big = Trainer(tiny_train_config(tmp_path / "a", data_dir, batch_size=8))
    small = Trainer(tiny_train_config(tmp_path / "b", data_dir, batch_size=4,
                                gradient_accumulation_steps=2))  # fmt: skip
    # same windows: the big sampler's 8 rows == the small sampler's two draws of 4
    w8 = big.sampler.get_windows()
    batches = iter([w8[:4], w8[4:]])
    small.sampler.get_windows = lambda: next(batches)
    big.sampler.get_windows = lambda: w8
    loss_big, loss_small = big.step(), small.step()
    torch.testing.assert_close(loss_big, loss_small)
    for p, q in zip(big.model.parameters(), small.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_step_runs_on_cpu(tmp_path, data_dir):
    trainer = Trainer(tiny_train_config(tmp_path / "out", data_dir, dtype="bfloat16"))
    assert math.isfinite(trainer.step().item())
    assert trainer.model.lm_head.weight.dtype == torch.float32  # master weights stay fp32


def test_block_size_beyond_checkpoint_is_an_error(tmp_path, data_dir):
    Trainer(tiny_train_config(tmp_path / "m", data_dir, max_iters=0)).save()
    cfg = tiny_train_config(
        tmp_path / "out", data_dir, init_from=str(tmp_path / "m"), block_size=32
    )
    with pytest.raises(ConfigError, match="--block_size=32 exceeds the model's 16"):
        Trainer(cfg)


def test_cli_default_path_end_to_end(tmp_path, data_dir, capsys):
    argv = to_flags(tiny_train_config(tmp_path / "out", data_dir))
    assert train.main([*argv, "--sample_tokens=30"]) == 0
    out = capsys.readouterr().out
    assert "---- sample (30 tokens) ----" in out
    config = json.loads((tmp_path / "out" / "train_config.json").read_text())
    assert config["max_iters"] == 20
    assert (tmp_path / "out" / STATE_FILE).is_file()


def test_eval_only_evaluates_and_writes_no_checkpoint(tmp_path, data_dir):
    out = tmp_path / "out"
    Trainer(tiny_train_config(out, data_dir, max_iters=5, eval_interval=5)).train()
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != "metrics.jsonl"}
    result = Trainer(tiny_train_config(out, data_dir, init_from="resume", eval_only=True)).train()
    assert result.iter_num == 5
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != "metrics.jsonl"} == files
    last = read_metrics(out)[-1]
    assert (last["kind"], last["iter"]) == ("eval", 5)


def test_missing_dataset_is_prepared_by_its_own_script(tmp_path):
    toy = tmp_path / "toy"
    toy.mkdir()
    script = "from tests.train.fixtures import make_dataset\n\n\ndef prepare(out_dir):\n"
    (toy / "prepare.py").write_text(script + "    make_dataset(out_dir)\n")
    ensure_dataset(toy)
    assert {"train.bin", "val.bin", "meta.json"} <= {p.name for p in toy.iterdir()}
    with pytest.raises(FileNotFoundError, match="no .*/nowhere/prepare.py to make it"):
        ensure_dataset(tmp_path / "nowhere")


def test_init_from_a_checkpoint_dir_continues_from_its_weights(tmp_path, data_dir):
    first = Trainer(tiny_train_config(tmp_path / "m", data_dir, max_iters=5, eval_interval=5))
    first.train()
    cfg = tiny_train_config(tmp_path / "ft", data_dir, init_from=str(tmp_path / "m"), n_layer=3)
    second = Trainer(cfg)
    assert second.iter_num == 0  # a new run (fresh optimizer and schedule)...
    assert second.model.config.n_layer == 1  # ...of the checkpoint's model, not --n_layer
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], tensor), name
