"""The minigpt checkpoint format, and the one loader every program uses.

    config.json          {"model_type": "minigpt", <GPTConfig fields>}
    model.safetensors    the weights (a tied LM head is stored once, as wte.weight)
    tokenizer_spec.json  the tokenizer, when one was given

`load_pretrained` also reads Hugging Face gpt2 / gpt_neo / gptj directories (minigpt.checkpoint.hf)
and hub names when online; it backs `GPT.from_pretrained` and `GPT.save_pretrained`, which this
module plugs into the model class. `load_model` adds the tokenizer to read the model with, checked
against the model's vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from minigpt.checkpoint.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    MissingCheckpointError,
    atomic_write,
    check_tensors,
    minigpt_state_dict,
    read_json,
    read_weights,
    write_json,
    write_tensors,
)
from minigpt.checkpoint.hf import SUPPORTED_HF_TYPES, download_from_hub, read_hf_checkpoint
from minigpt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from minigpt.model.config import GPTConfig
from minigpt.model.gpt import GPT, use_checkpoint_format


def save_pretrained(model: GPT, path: str | Path, tokenizer: Tokenizer | None = None) -> None:
    """Write config.json, model.safetensors and (optionally) tokenizer_spec.json into `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_tensors(path / WEIGHTS_FILE, minigpt_state_dict(model))
    write_json(path / CONFIG_FILE, {"model_type": "minigpt", **asdict(model.config)})
    if tokenizer is not None:
        atomic_write(path / TOKENIZER_FILE, lambda p: tokenizer.save(p))


def _build(config: GPTConfig, state: dict[str, torch.Tensor], dtype: torch.dtype) -> GPT:
    """Create the model without random init (meta device), then adopt the checkpoint tensors."""
    with torch.device("meta"):
        model = GPT(config)
    tied = config.tie_word_embeddings
    expected = minigpt_state_dict(model)  # a tied head is the embedding: stored once
    check_tensors(expected, state, "checkpoint", ignore=frozenset({"lm_head.weight"}))
    state = {k: state[k].to(dtype) for k in expected}
    model.load_state_dict(state, strict=not tied, assign=True)
    model.materialize_buffers(torch.device("cpu"))
    return model


# a hub repo id: `name` or `owner/name`, letters, digits, '-', '_' and '.'
HUB_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?")


def is_hub_name(source: str | Path) -> bool:
    """Whether a `source` that is not on disk may be a hub repo id. A path (a leading '.', '~'
    or separator, two separators, or an `a/b` whose `a` is a local folder) never is, so a typo
    in it is reported as a missing checkpoint instead of being sent to the hub."""
    text = str(source)
    if isinstance(source, Path) or text.startswith((".", "~")) or not HUB_NAME.fullmatch(text):
        return False
    owner = text.partition("/")[0]
    return "/" not in text or not Path(owner).is_dir()


def checkpoint_dir(source: str | Path) -> Path:
    """The local directory of a checkpoint: `source` itself, or its hub download."""
    directory = Path(source).expanduser()
    if not directory.exists():
        if not is_hub_name(source):
            raise MissingCheckpointError(f"no checkpoint at {source} (no {CONFIG_FILE})")
        directory = download_from_hub(str(source))
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is a file; pass the checkpoint directory")
    if not (directory / CONFIG_FILE).is_file():
        raise MissingCheckpointError(f"no checkpoint at {source} (no {CONFIG_FILE})")
    return directory


def load_pretrained(
    path_or_name: str | Path, dtype: torch.dtype = torch.float32, **overrides: Any
) -> GPT:
    """Load a minigpt or HF-format checkpoint dir (or a hub name, online with the `hub` extra).

    `overrides` replace config fields that do not change tensor shapes (dropout, attn_impl...).
    """
    directory = checkpoint_dir(path_or_name)
    raw = read_json(directory / CONFIG_FILE)
    if raw.get("model_type") == "minigpt":
        try:
            config = GPTConfig.from_dict({k: v for k, v in raw.items() if k != "model_type"})
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None
        state = read_weights(directory)
    else:
        hf = read_hf_checkpoint(directory, raw)
        if hf is None:
            known = ", ".join(["minigpt", *SUPPORTED_HF_TYPES])
            raise CheckpointError(
                f"{directory / CONFIG_FILE}: unknown model_type {raw.get('model_type')!r}; "
                f"supported: {known}"
            )
        config, state = hf
    if overrides:
        config = GPTConfig.from_dict({**asdict(config), **overrides})
    return _build(config, state, dtype)


use_checkpoint_format(load_pretrained, save_pretrained)


def load_tokenizer(directory: str | Path) -> Tokenizer | None:
    """The tokenizer saved beside a minigpt checkpoint, or None if there is none."""
    file = Path(directory) / TOKENIZER_FILE
    return Tokenizer.load(file) if file.is_file() else None


def load_model(
    source: str | Path,
    fallback_tokenizer: str | Tokenizer = "gpt2",
    dtype: torch.dtype = torch.float32,
    **overrides: Any,
) -> tuple[GPT, Tokenizer]:
    """A checkpoint (see `load_pretrained`) and the tokenizer to read it with: the one saved
    beside it, else `fallback_tokenizer` (HF checkpoints carry none). Raises CheckpointError if
    the tokenizer does not fit the model's vocabulary."""
    directory = checkpoint_dir(source)
    model = load_pretrained(directory, dtype, **overrides)
    tokenizer = load_tokenizer(directory)
    if tokenizer is None:
        fallback = fallback_tokenizer
        tokenizer = Tokenizer.from_name(fallback) if isinstance(fallback, str) else fallback
    check_vocab(model, tokenizer, str(source))
    return model, tokenizer


def check_vocab(model: GPT, tokenizer: Tokenizer, name: str) -> None:
    """Raise if `tokenizer` makes ids that `model` has no embedding rows for, or the model was
    trained with another vocabulary size: it would read the ids as other tokens."""
    config = model.config
    trained_with = config.n_vocab or config.vocab_size
    fits = tokenizer.n_vocab <= config.vocab_size and config.n_vocab in (None, tokenizer.n_vocab)
    if not fits:
        raise CheckpointError(
            f"tokenizer mismatch: {name} was built for {trained_with} token ids, but tokenizer"
            f" {tokenizer.name!r} makes {tokenizer.n_vocab}; save the model's tokenizer beside it"
            " (tokenizer_spec.json) or pass --tokenizer"
        )
