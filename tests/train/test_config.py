"""Settings: defaults < TOML < flags, typed values, and one clear line for every bad input."""

import pytest

import train
from minigpt.settings import ConfigError, to_flags
from minigpt.train.config import TrainConfig, parse_config, train_help


def test_defaults_without_arguments():
    assert parse_config([]) == TrainConfig()


def test_flags_equals_and_space_forms():
    cfg = parse_config(
        ["--n_layer=2", "--n_embd", "64", "--n_head=4", "--learning_rate=3e-4", "--min_lr=3e-5",
         "--compile"]
    )  # fmt: skip
    assert (cfg.n_layer, cfg.n_embd, cfg.learning_rate, cfg.compile) == (2, 64, 3e-4, True)
    assert parse_config(["--compile=False", "--bias", "true"]).compile is False
    assert parse_config(["--max_iters=5e3"]).max_iters == 5000  # a whole number written as 5e3


def test_toml_then_flags_override(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('n_layer = 3\nlearning_rate = 1\ndataset = "shakespeare"\n')
    cfg = parse_config([str(recipe), "--n_layer=5"])
    assert (cfg.n_layer, cfg.learning_rate, cfg.dataset) == (5, 1.0, "shakespeare")
    assert isinstance(cfg.learning_rate, float)  # an int in TOML may set a float


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n_emb=3"], "unknown setting --n_emb; did you mean --n_embd?"),
        (["--learnig_rate=1"], "did you mean --learning_rate?"),
        (["--zzz=1"], "unknown setting --zzz; see --help"),
        (["--n_layer=two"], "--n_layer='two' is not a valid int"),
        (["--n_layer=2.5"], "is not a valid int"),
        (["--compile=maybe"], "is not a valid bool"),
        (["--n_layer"], "--n_layer needs a value"),
        (["--dtype=fp8"], "--dtype='fp8' must be one of auto, float32, bfloat16, float16"),
        (["--n_embd=100", "--n_head=3"], "--n_embd=100 must be divisible by --n_head=3"),
        (["--batch_size=0"], "--batch_size=0 must be positive"),
        (["--dropout=1.5"], "--dropout=1.5 must be in [0, 1)"),
        (["--min_lr=1", "--learning_rate=0.1"], "--min_lr=1.0 must be in [0, learning_rate"),
        (["--warmup_iters=10", "--lr_decay_iters=5"], "--warmup_iters=10 must be in"),
        (["missing.toml"], "config file missing.toml not found"),
    ],
)
def test_bad_inputs_are_one_line(argv, message):
    with pytest.raises(ConfigError) as err:
        parse_config(argv)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_toml_wrong_type_and_unknown_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('n_layer = "four"\n')
    with pytest.raises(ConfigError, match=r"n_layer = 'four' is a str, expected int"):
        parse_config([str(bad)])
    bad.write_text("compile = 1\n")
    with pytest.raises(ConfigError, match="is a int, expected bool"):
        parse_config([str(bad)])
    bad.write_text("n_heads = 4\n")
    with pytest.raises(ConfigError, match="did you mean --n_head"):
        parse_config([str(bad)])
    bad.write_text("n_layer = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_config([str(bad)])


def test_help_lists_every_key_with_default(capsys):
    assert train.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == train_help().strip()
    for flag in to_flags(TrainConfig()):
        name, _, value = flag.partition("=")
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{name} "))
        assert f"default {value!r}" in line if value == "" else f"default {value}" in line


def test_cli_reports_bad_flag_as_one_line_error(capsys):
    assert train.main(["--n_emb=3"]) == 2
    assert capsys.readouterr().err == "error: unknown setting --n_emb; did you mean --n_embd?\n"


def test_recipes_parse():
    from pathlib import Path

    recipes = sorted((Path(train.__file__).parent / "config").glob("*.toml"))
    names = {r.stem for r in recipes}
    expected = {"shakespeare_char", "shakespeare", "movie_reviews_lm", "gpt2_124m",
                "finetune_shakespeare", "cpu_quick"}  # fmt: skip
    assert expected <= names
    for recipe in recipes:
        parse_config([str(recipe)])
