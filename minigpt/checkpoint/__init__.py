"""Checkpoints: safe files, the minigpt format, and Hugging Face import/export.

files.py       atomic writes, safetensors + JSON, strict tensor checks (CheckpointError)
pretrained.py  the minigpt directory format behind GPT.from_pretrained / save_pretrained, and
               load_model: a model with the tokenizer that fits it
hf.py          Hugging Face gpt2 / gpt_neo / gptj checkpoints and hub downloads
"""

from minigpt.checkpoint.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    MissingCheckpointError,
    atomic_write,
    check_tensors,
    read_json,
    read_tensor_file,
    write_json,
    write_tensors,
)
from minigpt.checkpoint.hf import export_hf_gpt2
from minigpt.checkpoint.pretrained import (
    check_vocab,
    load_model,
    load_pretrained,
    load_tokenizer,
    save_pretrained,
)

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "MissingCheckpointError",
    "atomic_write",
    "check_tensors",
    "check_vocab",
    "export_hf_gpt2",
    "load_model",
    "load_pretrained",
    "load_tokenizer",
    "read_json",
    "read_tensor_file",
    "save_pretrained",
    "write_json",
    "write_tensors",
]
