"""minigpt: the GPT family (GPT-2, GPT-3, GPT-Neo, GPT-J) in a small, exact, fast library.

import minigpt
model = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2"))
logits, loss = model(idx, targets)

The subpackages, in reading order: model (the math), data, checkpoint, train, finetune, eval;
beside them settings.py (every CLI's settings and exit codes), device.py (device and dtype) and
paths.py (where a checkout's datasets and recipes are).
"""

# minigpt.checkpoint plugs the file formats into GPT.from_pretrained / save_pretrained as it loads
from minigpt.checkpoint import (
    CheckpointError,
    export_hf_gpt2,
    load_model,
    load_pretrained,
    load_tokenizer,
    save_pretrained,
)
from minigpt.data import Tokenizer
from minigpt.model import GPT, GPTConfig, GPTOutput, KVCache, SamplingConfig, lm_loss, perplexity

__all__ = [
    "GPT",
    "CheckpointError",
    "GPTConfig",
    "GPTOutput",
    "KVCache",
    "SamplingConfig",
    "Tokenizer",
    "export_hf_gpt2",
    "lm_loss",
    "load_model",
    "load_pretrained",
    "load_tokenizer",
    "perplexity",
    "save_pretrained",
]
