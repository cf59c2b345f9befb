"""minigpt: the GPT family (GPT-2, GPT-3, GPT-Neo, GPT-J) in a small, exact, fast library.

import minigpt
model = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2"))
logits, loss = model(idx, targets)

The subpackages, in reading order: model (the math), data, checkpoint, train, finetune, eval.
"""

from minigpt.checkpoint import (
    CheckpointError,
    export_hf_gpt2,
    load_pretrained,
    load_tokenizer,
    save_pretrained,
)
from minigpt.data import Tokenizer
from minigpt.model import GPT, GPTConfig, GPTOutput, KVCache, SamplingConfig, lm_loss, perplexity

# The model math imports no file formats; saving and loading are functions of minigpt.checkpoint.
# They are bound here, where both layers are loaded, so `model.save_pretrained(dir)` and
# `GPT.from_pretrained(dir)` work as in Hugging Face. Importing any minigpt module runs this file.
GPT.save_pretrained = save_pretrained
GPT.from_pretrained = staticmethod(load_pretrained)

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
    "load_pretrained",
    "load_tokenizer",
    "perplexity",
    "save_pretrained",
]
