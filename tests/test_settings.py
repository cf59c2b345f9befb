"""The shared settings layer: groups declared once, set by `--group.key`, a plain alias, or TOML."""

from dataclasses import dataclass

import pytest

from minigpt.settings import ConfigError, help_text, parse_settings, setting


@dataclass
class Knobs:
    rank: int = setting(8, "rank r")
    targets: tuple[str, ...] = setting(("q", "v"), "comma-separated targets")
    kind: str = setting("full", "what trains", ("full", "lora"))
    seed: int = 0  # no help text: set by the owner, not by a flag


@dataclass
class Run:
    epochs: int = setting(3, "passes over the data")
    seed: int = setting(1, "the run's seed")
    knobs: Knobs = setting(Knobs(), "the method")


def test_group_fields_are_set_by_dotted_or_plain_flags():
    run = parse_settings(Run, ["--knobs.rank=4", "--targets", "q,k, v", "--kind=lora"])
    assert run.knobs == Knobs(rank=4, targets=("q", "k", "v"), kind="lora")
    assert Run().knobs == Knobs()  # the default group is a fresh copy, not shared


def test_a_top_level_name_wins_over_a_group_field_and_unflagged_fields_stay_hidden():
    run = parse_settings(Run, ["--seed=5"])
    assert (run.seed, run.knobs.seed) == (5, 0)
    with pytest.raises(ConfigError, match="unknown setting --knobs.seed"):
        parse_settings(Run, ["--knobs.seed=3"])


def test_toml_tables_and_dotted_keys_set_group_fields(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('epochs = 2\ntargets = ["k"]\n[knobs]\nrank = 2\n')
    run = parse_settings(Run, [str(recipe), "--knobs.rank=6"])
    assert (run.epochs, run.knobs.rank, run.knobs.targets) == (2, 6, ("k",))


def test_choices_are_checked_where_the_value_is_given():
    with pytest.raises(ConfigError, match=r"--kind='qlora' must be one of full, lora"):
        parse_settings(Run, ["--kind=qlora"])


def test_help_lists_group_fields_with_their_plain_alias():
    text = help_text(Run, "usage")
    assert "--knobs.rank" in text and "(also --rank)" in text
    assert "default q,v" in text
    assert "knobs.seed" not in text
