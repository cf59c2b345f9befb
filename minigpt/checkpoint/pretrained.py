"""The minigpt checkpoint format: a directory any minigpt program can load.

    config.json          {"model_type": "minigpt", <GPTConfig fields>}
    model.safetensors    the weights (a tied LM head is stored once, as wte.weight)
    tokenizer_spec.json  the tokenizer, when one was given

`load_pretrained` also reads Hugging Face gpt2 / gpt_neo / gptj directories (minigpt.checkpoint.hf)
and hub names when online.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from minigpt.checkpoint.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
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
from minigpt.model.gpt import GPT


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


def load_pretrained(
    path_or_name: str | Path, dtype: torch.dtype = torch.float32, **overrides: Any
) -> GPT:
    """Load a minigpt or HF-format checkpoint dir (or a hub name, online with the `hub` extra).

    `overrides` replace config fields that do not change tensor shapes (dropout, attn_impl...).
    """
    directory = Path(path_or_name)
    if not directory.exists():
        directory = download_from_hub(str(path_or_name))
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is a file; pass the checkpoint directory")
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


def load_tokenizer(directory: str | Path) -> Tokenizer | None:
    """The tokenizer saved beside a minigpt checkpoint, or None if there is none."""
    file = Path(directory) / TOKENIZER_FILE
    return Tokenizer.load(file) if file.is_file() else None
