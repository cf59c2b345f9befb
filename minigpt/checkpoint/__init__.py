"""Checkpoints: safe files, the minigpt format, and Hugging Face import/export.

files.py       atomic writes, safetensors + JSON, strict tensor checks (CheckpointError)
pretrained.py  the minigpt directory format: save_pretrained / load_pretrained
hf.py          Hugging Face gpt2 / gpt_neo / gptj checkpoints and hub downloads
"""

from minigpt.checkpoint.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_write,
    check_tensors,
    read_json,
    read_tensor_file,
    write_json,
    write_tensors,
)
from minigpt.checkpoint.hf import export_hf_gpt2
from minigpt.checkpoint.pretrained import load_pretrained, load_tokenizer, save_pretrained

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "atomic_write",
    "check_tensors",
    "export_hf_gpt2",
    "load_pretrained",
    "load_tokenizer",
    "read_json",
    "read_tensor_file",
    "save_pretrained",
    "write_json",
    "write_tensors",
]
