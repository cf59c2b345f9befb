"""EvalConfig: every setting of an `eval.py` run, with its default and meaning."""

from __future__ import annotations

from dataclasses import dataclass

from minigpt.device import DeviceConfig
from minigpt.settings import ConfigError, setting


def names(value: str) -> list[str]:
    """The non-empty items of a comma-separated setting."""
    return [name.strip() for name in value.split(",") if name.strip()]


@dataclass
class EvalConfig:
    init_from: str = setting("out", "checkpoint dirs, comma-separated: minigpt or HF gpt2/neo/j")
    dataset: str = setting(
        "shakespeare_char", "comma-separated prepared data/<name> dirs or UTF-8 text files"
    )
    split: str = setting("val", "split of a prepared dataset to score")
    max_bytes: int = setting(0, "score only the first N bytes of each dataset; 0 = all")
    block_size: int | None = setting(None, "window: context tokens per pass; none = the model's")
    stride: int | None = setting(None, "tokens the window moves per pass; none = half the window")
    batch_size: int = setting(8, "windows or choices per forward pass")
    tasks: str = setting("", "multiple-choice task JSONL files, comma-separated")
    limit: int = setting(0, "score only the first N items of each task; 0 = all")
    num_fewshot: int = setting(0, "solved examples before each item (harness: its own split)")
    fewshot_file: str = setting("", "task JSONL the few-shot examples are drawn from")
    seed: int = setting(1337, "seed that draws the few-shot examples")
    harness_tasks: str = setting("", "lm-evaluation-harness task names, comma-separated")
    harness_include: str = setting("", "folder of local harness task YAMLs; '' = built-in tasks")
    tokenizer: str = setting("gpt2", "tokenizer of an HF checkpoint without tokenizer_spec.json")
    json: bool = setting(False, "print JSON instead of the table")
    compute: DeviceConfig = setting(
        DeviceConfig(dtype="float32"), "where it scores and in which precision"
    )

    def validate(self) -> None:
        checks = [
            (bool(names(self.init_from)), "--init_from needs at least one checkpoint dir"),
            (self.block_size is None or self.block_size > 0, "--block_size must be positive"),
            (self.stride is None or self.stride > 0, "--stride must be positive"),
            (self.batch_size > 0, f"--batch_size={self.batch_size} must be positive"),
            (self.num_fewshot >= 0, f"--num_fewshot={self.num_fewshot} must be >= 0"),
            (self.num_fewshot == 0 or bool(self.fewshot_file) or not names(self.tasks),
             "--tasks with --num_fewshot needs --fewshot_file: examples come from another split"),
            (bool(names(self.dataset) or names(self.tasks) or names(self.harness_tasks)),
             "nothing to evaluate: give --dataset, --tasks or --harness_tasks"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
