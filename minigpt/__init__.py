"""minigpt: the GPT family (GPT-2, GPT-3, GPT-Neo, GPT-J) in a small, exact, fast library.

import minigpt
model = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2"))
logits, loss = model(idx, targets)
"""

from minigpt.attention import KVCache
from minigpt.checkpoint import CheckpointError, export_hf_gpt2, load_tokenizer
from minigpt.config import GPTConfig
from minigpt.loss import lm_loss, perplexity
from minigpt.model import GPT, GPTOutput
from minigpt.tokenizer import Tokenizer

__all__ = [
    "GPT",
    "CheckpointError",
    "GPTConfig",
    "GPTOutput",
    "KVCache",
    "export_hf_gpt2",
    "lm_loss",
    "load_tokenizer",
    "perplexity",
    "Tokenizer",
]
