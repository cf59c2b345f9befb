"""TrainConfig: every setting of a training run in one dataclass.

Settings are applied in order, each layer overriding the one before (see minigpt.settings):

    dataclass defaults  <  config/*.toml or nanoGPT-style config/*.py files (in the order given)
                        <  --key=value / --key value

Every setting of nanoGPT's train.py exists here with the same name and meaning (`--n_layer`,
`--lr_decay_iters`, `--always_save_checkpoint`, `--gradient_accumulation_steps` counted over all
processes, ...), so its users can switch without relearning; only some defaults differ. The
defaults are the default run of `python train.py`, a CPU speedrun: nanoGPT's CPU quick model
(0.8M parameters, 64 characters of context, batch 12) on shakespeare_char, trained with Muon (see
minigpt.train.muon) at a 10x higher learning rate for 650 steps instead of AdamW's 2000,
evaluated once at the end: val loss below 1.88 in under half the time of nanoGPT's own train.py
with its recipe (`python bench/nanogpt.py`, `python bench/speedrun.py`). config/cpu_quick.toml
is that recipe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from minigpt.data.objectives import OBJECTIVES
from minigpt.device import DeviceConfig
from minigpt.settings import ConfigError, from_dict, help_text, parse_settings, require, setting


@dataclass
class TrainConfig:
    """One training run. `python train.py --help` prints every field with its default."""

    # ---- I/O -----------------------------------------------------------------------------------
    out_dir: str = setting("out", "checkpoint directory: model + train_state.pt + metrics.jsonl")
    init_from: str = setting(
        "scratch",
        "'scratch', 'resume' (continue out_dir exactly), a minigpt or HF checkpoint dir, "
        "or a hub name such as gpt2",
    )
    dataset: str = setting("shakespeare_char", "dataset name: data/<dataset>/ holds the bins")
    data_dir: str = setting("", "folder with train.bin/val.bin/meta.json; '' = data/<dataset>")
    seed: int = setting(1337, "seed for weights, dropout and batch sampling")
    # ---- model (ignored when init_from loads a checkpoint, whose config wins) -------------------
    n_layer: int = setting(4, "transformer blocks")
    n_head: int = setting(4, "attention heads per block")
    n_embd: int = setting(128, "model width d_model (divisible by n_head)")
    block_size: int = setting(64, "context length T in tokens")
    dropout: float = setting(0.0, "dropout probability (also applied to a loaded checkpoint)")
    bias: bool = setting(False, "bias in Linear layers and LayerNorms")
    attn_impl: str = setting("sdpa", "attention kernel: fused or explicit", ("sdpa", "math"))
    objective: str = setting(
        "causal",
        "pre-training objective and its attention: causal (GPT), prefix_lm (prefix LM), span (T5"
        " span corruption, prefix attention), mlm (BERT masked LM, bidirectional). Perplexity is"
        " printed for causal and prefix_lm only, whose loss is the NLL of text continuing text",
        OBJECTIVES,
    )
    # ---- optimisation ----------------------------------------------------------------------------
    batch_size: int = setting(12, "sequences per micro-batch per process")
    gradient_accumulation_steps: int = setting(
        1, "micro-batches per optimizer step over all processes, split across them (rounded up)"
    )
    max_iters: int = setting(650, "optimizer steps to run in total")
    optimizer: str = setting(
        "muon",
        "'muon': Muon for the blocks' weight matrices + AdamW for the rest; 'adamw': AdamW only",
        ("muon", "adamw"),
    )
    learning_rate: float = setting(1e-2, "peak learning rate after warmup")
    min_lr: float = setting(1e-3, "learning rate at the end of the cosine decay")
    warmup_iters: int = setting(50, "linear warmup steps")
    lr_decay_iters: int = setting(650, "step where the cosine reaches min_lr (then stays)")
    decay_lr: bool = setting(True, "warmup + cosine schedule; False keeps learning_rate")
    weight_decay: float = setting(0.1, "AdamW decay on weights of 2 or more dimensions")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(
        0.99, "AdamW beta2 (0.99: few tokens per step, a longer average; GPT-3 used 0.95)"
    )
    grad_clip: float = setting(1.0, "clip the global gradient norm to this; 0 disables")
    # ---- evaluation, logging, checkpoints -----------------------------------------------------
    eval_interval: int = setting(650, "evaluate and save a checkpoint every this many steps")
    eval_iters: int = setting(20, "batches per split in each evaluation")
    log_interval: int = setting(10, "report the training loss every this many steps")
    eval_only: bool = setting(False, "evaluate once and exit")
    always_save_checkpoint: bool = setting(
        True, "save at every evaluation; False saves only when val loss improves"
    )
    progress: bool = setting(True, "show a progress bar (else one line per log step)")
    sample_tokens: int = setting(500, "tokens to generate after training; 0 skips the sample")
    tensorboard_log: bool = setting(False, "also log to TensorBoard (out_dir/tensorboard)")
    wandb_log: bool = setting(False, "also log to Weights & Biases")
    wandb_project: str = setting("minigpt", "W&B project")
    wandb_run_name: str = setting("run", "W&B run name")
    # ---- system --------------------------------------------------------------------------------
    compute: DeviceConfig = setting(DeviceConfig(), "where it trains and in which precision")
    compile: bool = setting(False, "torch.compile the model")
    backend: str = setting(
        "auto", "torchrun backend: nccl on CUDA, gloo on CPU", ("auto", "nccl", "gloo")
    )
    strategy: str = setting(
        "ddp", "under torchrun: replicate the model (ddp) or shard it (fsdp)", ("ddp", "fsdp")
    )

    def validate(self) -> None:
        """Raise ConfigError on the first value that cannot work."""
        positive = ("n_layer", "n_head", "n_embd", "block_size", "batch_size",
                    "gradient_accumulation_steps", "eval_interval", "eval_iters", "log_interval",
                    "lr_decay_iters")  # fmt: skip
        for name in positive:
            require(getattr(self, name) > 0, f"--{name}={getattr(self, name)} must be positive")
        checks = [
            (self.n_embd % self.n_head == 0,
             f"--n_embd={self.n_embd} must be divisible by --n_head={self.n_head}"),
            (0.0 <= self.dropout < 1.0, f"--dropout={self.dropout} must be in [0, 1)"),
            (self.max_iters >= 0, f"--max_iters={self.max_iters} must be >= 0"),
            (not self.decay_lr or 0 <= self.warmup_iters <= self.lr_decay_iters,
             f"--warmup_iters={self.warmup_iters} must be in [0, lr_decay_iters]"),
            (not self.decay_lr or 0.0 <= self.min_lr <= self.learning_rate,
             f"--min_lr={self.min_lr} must be in [0, learning_rate={self.learning_rate}]"),
            (self.grad_clip >= 0, f"--grad_clip={self.grad_clip} must be >= 0 (0 disables)"),
            (self.sample_tokens >= 0, f"--sample_tokens={self.sample_tokens} must be >= 0"),
        ]  # fmt: skip
        for ok, message in checks:
            require(ok, message)


SAVED_CONFIG_FILE = "train_config.json"  # the settings of a run, beside its checkpoint


def load_saved_config(out_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run saved into out_dir (what `init_from=resume` starts from)."""
    path = Path(out_dir) / SAVED_CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found: --init_from=resume needs a train.py out_dir")
    return from_dict(TrainConfig, json.loads(path.read_text()), str(path))


USAGE = "usage: python train.py [config/NAME.toml|.py ...] [--key=value | --key value ...]"


def parse_config(argv: Sequence[str], base: TrainConfig | None = None) -> TrainConfig:
    """TrainConfig from `base` (or the defaults), then config files, then flags; validated."""
    return parse_settings(TrainConfig, argv, base)


def resolve_config(argv: Sequence[str]) -> TrainConfig:
    """Settings from argv; a resumed run starts from the settings it saved, then the flags."""
    config = parse_config(argv)
    if config.init_from == "resume":
        config = parse_config(argv, base=load_saved_config(config.out_dir))
    return config


def train_help() -> str:
    return help_text(TrainConfig, USAGE)
