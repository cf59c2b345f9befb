"""nanoGPT users switch without editing: its settings, its config/*.py files, its sample flags."""

import pytest

from minigpt.settings import ConfigError, load_python, to_flags
from minigpt.train.config import TrainConfig, parse_config

# Every setting of nanoGPT's train.py, by name.
NANOGPT_TRAIN_SETTINGS = (
    "out_dir", "eval_interval", "log_interval", "eval_iters", "eval_only",
    "always_save_checkpoint", "init_from", "wandb_log", "wandb_project", "wandb_run_name",
    "dataset", "gradient_accumulation_steps", "batch_size", "block_size", "n_layer", "n_head",
    "n_embd", "dropout", "bias", "learning_rate", "max_iters", "weight_decay", "beta1", "beta2",
    "grad_clip", "decay_lr", "warmup_iters", "lr_decay_iters", "min_lr", "backend", "device",
    "dtype", "compile",
)  # fmt: skip

# A recipe in the shape of nanoGPT's config/train_shakespeare_char.py: plain assignments,
# comments, commented-out lines, and the arithmetic its GPT-2 recipe uses.
CHAR_RECIPE = """\
# a small character-level model on the works of Shakespeare

out_dir = 'out-shakespeare-char'
eval_interval = 250  # evaluate often: this one overfits
eval_iters = 200
log_interval = 10

always_save_checkpoint = False  # save only when val improves

wandb_log = False
wandb_project = 'shakespeare-char'
wandb_run_name = 'mini-gpt'

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1 * 1
batch_size = 64
block_size = 256  # characters of context

n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2

learning_rate = 1e-3
max_iters = 5000
lr_decay_iters = 5000
min_lr = 1e-3 / 10
beta2 = 0.99
warmup_iters = 100

# device = 'cpu'
# compile = False
"""


def test_every_nanogpt_train_setting_is_a_setting_here():
    # a group's setting is also its plain name: --compute.device is --device
    plain = {flag.partition("=")[0][2:].split(".")[-1] for flag in to_flags(TrainConfig())}
    assert set(NANOGPT_TRAIN_SETTINGS) - plain == set()


def test_nanogpt_flags_parse_with_nanogpt_spelling():
    cfg = parse_config(["--always_save_checkpoint=False", "--decay_lr=False", "--compile=False",
                        "--backend=gloo", "--init_from=gpt2-medium", "--wandb_log=True",
                        "--wandb_project=owt", "--wandb_run_name=gpt2"])  # fmt: skip
    assert (cfg.always_save_checkpoint, cfg.decay_lr, cfg.compile, cfg.backend) == (
        False, False, False, "gloo")  # fmt: skip
    assert (cfg.init_from, cfg.wandb_log, cfg.wandb_project) == ("gpt2-medium", True, "owt")


def test_nanogpt_config_file_is_read_like_its_flags(tmp_path):
    recipe = tmp_path / "train_shakespeare_char.py"
    recipe.write_text(CHAR_RECIPE)
    cfg = parse_config([str(recipe), "--max_iters=100"])  # flags still override the file
    assert cfg.out_dir == "out-shakespeare-char" and cfg.always_save_checkpoint is False
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.batch_size) == (
        6, 6, 384, 256, 64)  # fmt: skip
    assert (cfg.dropout, cfg.beta2, cfg.min_lr, cfg.max_iters) == (0.2, 0.99, 1e-4, 100)
    assert cfg.gradient_accumulation_steps == 1 and cfg.wandb_run_name == "mini-gpt"
    assert cfg.compute.device == TrainConfig().compute.device  # commented-out lines stay comments


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("import time", "only `name = value` lines are allowed in a config .py file, found "
                        "'import time'"),
        ("wandb_run_name = 'ft-' + str(time.time())", "is not a literal"),
        ("batch_size = open('/etc/passwd')", "\"open('/etc/passwd')\" is not a literal"),
        ("n_layer = n_head", "'n_head' is not a literal"),
        ("n_layer, n_head = 2, 2", "only `name = value` lines"),
        ("def f(): pass", "only `name = value` lines"),
        ("batch_size = 'big' * 3", "is not a literal"),
        ("n_layer = 2 +", "invalid Python"),
    ],
)  # fmt: skip
def test_anything_but_literal_assignments_is_refused_with_its_line(tmp_path, line, message):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(f"# a recipe\nbatch_size = 12\n{line}\n")
    with pytest.raises(ConfigError, match=r"recipe\.py:3: ") as error:
        load_python(TrainConfig, recipe)
    assert message in str(error.value)


def test_config_file_keys_and_types_are_checked_like_flags(tmp_path):
    recipe = tmp_path / "recipe.py"
    recipe.write_text("n_layers = 4\n")
    with pytest.raises(ConfigError, match="unknown setting --n_layers; did you mean --n_layer?"):
        parse_config([str(recipe)])
    recipe.write_text("batch_size = 12.5\n")
    with pytest.raises(ConfigError, match=r"recipe.py:1: batch_size = 12.5 is a float"):
        parse_config([str(recipe)])


def test_sample_takes_a_nanogpt_sample_config(tmp_path):
    import sample

    recipe = tmp_path / "sample_char.py"
    recipe.write_text("init_from = 'resume'\nout_dir = 'out-shakespeare-char'\nstart = 'FILE:p.txt'"
                      "\nnum_samples = 10\nmax_new_tokens = 500\ntemperature = 0.8\ntop_k = 200\n"
                      "seed = 1337\ndevice = 'cpu'\ndtype = 'float32'\n")  # fmt: skip
    cfg = sample.parse_settings(sample.SampleConfig, [str(recipe), "--num_samples=2"])
    assert (cfg.out_dir, cfg.start, cfg.num_samples, cfg.sampling.top_k) == (
        "out-shakespeare-char", "FILE:p.txt", 2, 200)  # fmt: skip


@pytest.mark.parametrize(("always", "saved_at"), [(True, 10), (False, 5)])
def test_always_save_checkpoint_false_saves_only_when_val_loss_improves(
    tmp_path, one_thread, always, saved_at
):
    from minigpt.train.state import load_train_state
    from minigpt.train.trainer import Trainer
    from tests.train.fixtures import make_dataset, tiny_train_config

    cfg = tiny_train_config(tmp_path / "out", make_dataset(tmp_path / "data"), max_iters=10,
                            eval_interval=5, always_save_checkpoint=always)  # fmt: skip
    trainer = Trainer(cfg)
    val_losses = iter([3.0, 3.5])  # better, then worse
    trainer.evaluate = lambda: {"train": 3.0, "val": next(val_losses)}
    trainer.train()
    assert load_train_state(cfg.out_dir)["iter_num"] == saved_at
