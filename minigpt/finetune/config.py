"""FinetuneConfig: every setting of a `finetune.py` run, with its default and meaning.

Filled by minigpt.settings (defaults < TOML files < `--key=value` flags); `--help` prints them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from minigpt.device import DeviceConfig
from minigpt.finetune.peft import PROMPT_METHOD, MethodConfig
from minigpt.finetune.prompt import LABEL_WORDS, TEMPLATE
from minigpt.settings import require, setting

# Peak learning rates for the small in-domain GPTs this CLI pre-trains (measured: full at 1e-4
# stays at the majority class for an epoch, 1e-3 learns). Fewer, newer trained weights tolerate
# larger steps. A well-trained large checkpoint such as GPT-2 wants ~5e-5 for full fine-tuning.
DEFAULT_LR = {
    "head": 2e-3,
    "top": 1e-3,
    "full": 1e-3,
    "lora": 1e-3,
    "adalora": 1e-3,
    "adapter": 1e-3,
    "prefix": 3e-3,
}

# The best recipe measured (docs/results.md): a BERT-style masked LM over GPT-2 BPE cut to 4,096
# ids, fine-tuned whole with mean pooling, keeping the epoch with the best val macro-F1.
PRETRAIN_CONFIG = "config/movie_reviews_mlm.toml"


@dataclass
class FinetuneConfig:
    """One fine-tuning run. `python finetune.py --help` prints every field with its default."""

    # ---- I/O -----------------------------------------------------------------------------------
    out_dir: str = setting("out-finetune", "where the classifier, metrics.json and logs go")
    init_from: str = setting(
        "",
        "base GPT: a minigpt or HF gpt2/gpt_neo/gptj checkpoint dir; '' pre-trains (or reuses) "
        f"an in-domain LM with train.py and {PRETRAIN_CONFIG}",
    )
    pretrain_config: str = setting(PRETRAIN_CONFIG, "train.py recipe used when init_from is ''")
    pretrain_args: str = setting(
        "--progress=False", "train.py flags after the recipe (e.g. --max_iters=600 for two passes)"
    )
    pretrain_out: str = setting(
        "out-finetune-mlm", "pre-training out_dir; reused when it already holds a model"
    )
    # ---- data ----------------------------------------------------------------------------------
    dataset: str = setting("movie_reviews", "data/<dataset>/ holds train/val/test.jsonl")
    data_dir: str = setting("", "folder with the split files; '' = data/<dataset>")
    train_file: str = setting("", "JSONL/CSV/TSV training file; '' = data_dir/train.jsonl")
    val_file: str = setting("", "validation file; '' = data_dir/val.jsonl")
    test_file: str = setting("", "test file; '' = data_dir/test.jsonl")
    text_column: str = setting("text", "column (JSONL key or CSV/TSV header) with the text")
    label_column: str = setting("label5", "column with the label")
    labels: tuple[str, ...] = setting(
        (), "comma-separated label values in class order; '' = from the data"
    )
    label_names: tuple[str, ...] = setting(
        (), "comma-separated display names; '' = from meta.json or labels"
    )
    max_len: int = setting(128, "keep the first max_len tokens of each text (<= block_size)")
    pooling: str = setting(
        "auto", "text feature: the last token's hidden state, or the mean over tokens; auto ="
        " mean for bidirectional models, last otherwise", ("auto", "last", "mean"),
    )  # fmt: skip
    # ---- method --------------------------------------------------------------------------------
    tuning: MethodConfig = setting(MethodConfig(), "the fine-tuning method and its knobs")
    readout: str = setting(
        "head", "how a class is scored: head = a new linear head on the pooled text (head swap);"
        " prompt = its label word in --template, through the LM head (PET / LM-BFF)",
        ("head", "prompt"),
    )  # fmt: skip
    template: str = setting(TEMPLATE, "prompt readout: the text and the label word's [MASK] slot")
    label_words: tuple[str, ...] = setting(
        LABEL_WORDS, "prompt readout: comma-separated words, one token each, in label order"
    )
    # ---- optimisation --------------------------------------------------------------------------
    epochs: int = setting(3, "passes over the training set")
    batch_size: int = setting(32, "examples per micro-batch")
    gradient_accumulation_steps: int = setting(1, "micro-batches per optimizer step")
    learning_rate: float | None = setting(None, "peak learning rate; none = the method's default")
    warmup_frac: float = setting(0.06, "share of the optimizer steps spent warming up linearly")
    decay_lr: bool = setting(True, "cosine decay to learning_rate / 10 after warmup")
    weight_decay: float = setting(0.01, "AdamW decay on weights of 2 or more dimensions")
    grad_clip: float = setting(1.0, "clip the global gradient norm to this; 0 disables")
    dropout: float = setting(0.1, "dropout in the GPT while fine-tuning")
    aux_lm_weight: float = setting(0.0, "lambda of GPT-1's L3 = L2 + lambda L1 (GPT-1: 0.5)")
    patience: int = setting(2, "stop after this many epochs without improvement; 0 = never")
    select_on: str = setting(
        "macro_f1", "validation metric that picks the best epoch (and that patience watches)",
        ("loss", "accuracy", "macro_f1"),
    )  # fmt: skip
    class_weight: str = setting(
        "none", "balanced: weigh each class's training loss by N / (K n_k)", ("none", "balanced")
    )
    seed: int = setting(1337, "seed for the head, the new modules, shuffling and dropout")
    # ---- system --------------------------------------------------------------------------------
    compute: DeviceConfig = setting(
        DeviceConfig(dtype="float32"), "where it fine-tunes and in which precision"
    )
    threads: int | None = setting(
        None, "CPU threads for torch; none = torch's default (one per core), whatever the load"
    )
    eval_batch_size: int = setting(64, "examples per evaluation batch")
    progress: bool = setting(True, "show progress bars")
    export_merged: bool = setting(False, "also write out_dir/merged: LoRA merged into the base")

    def __post_init__(self) -> None:
        if self.tuning.method == PROMPT_METHOD:  # PET's recipe: every weight, the LM head's scores
            self.tuning = dataclasses.replace(self.tuning, method="full")
            self.readout = "prompt"

    def validate(self) -> None:
        """Raise ConfigError on the first value that cannot work."""
        for name in ("max_len", "epochs", "batch_size", "gradient_accumulation_steps",
                     "eval_batch_size"):  # fmt: skip
            require(getattr(self, name) > 0, f"--{name}={getattr(self, name)} must be positive")
        checks = [
            (self.learning_rate is None or self.learning_rate > 0, "--learning_rate must be > 0"),
            (0.0 <= self.warmup_frac < 1.0, f"--warmup_frac={self.warmup_frac} must be in [0, 1)"),
            (0.0 <= self.dropout < 1.0, f"--dropout={self.dropout} must be in [0, 1)"),
            (self.aux_lm_weight >= 0, f"--aux_lm_weight={self.aux_lm_weight} must be >= 0"),
            (self.patience >= 0, f"--patience={self.patience} must be >= 0"),
            (self.grad_clip >= 0, f"--grad_clip={self.grad_clip} must be >= 0 (0 disables)"),
            (bool(self.init_from or self.pretrain_out), "--pretrain_out must name a folder"),
            (
                self.readout == "head" or self.tuning.method != "head",
                "--readout=prompt adds no head, so --method=head would train nothing; pick a method"
                " that trains the GPT (full, lora, top, ...)",
            ),
        ]
        for ok, message in checks:
            require(ok, message)

    @property
    def method_learning_rate(self) -> float:
        """The peak learning rate: --learning_rate, or the method's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LR[self.tuning.method]

    def method_config(self) -> MethodConfig:
        """The method as the model applies it: its new modules are seeded by the run's seed."""
        return dataclasses.replace(self.tuning, seed=self.seed)


@dataclass
class PredictConfig:
    """`python finetune.py predict`: classify texts with a saved classifier."""

    out_dir: str = setting("out-finetune", "the classifier directory a training run wrote")
    text: str = setting("", "one text to classify")
    file: str = setting("", "a file of texts, one per line")
    base: str = setting("", "base checkpoint dir, if it moved since training ('' = as saved)")
    compute: DeviceConfig = setting(
        DeviceConfig(dtype="float32"), "where it classifies and in which precision"
    )
    batch_size: int = setting(64, "texts per batch")

    def validate(self) -> None:
        require(bool(self.text or self.file), 'nothing to classify: pass --text "..." or --file=F')
