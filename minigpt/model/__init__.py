"""The GPT family as equations. Imports only torch, the standard library and itself.

Read in this order:
    config.py     GPTConfig and presets (GPT-2, GPT-3 Table 2.1, GPT-J, GPT-Neo)
    attention.py  softmax(q k^T / sqrt(d) + mask) v, explicit and fused; causal, bidirectional
                  or prefix visibility; rotary; bands; padding; KV cache
    gpt.py        embeddings -> pre-norm blocks -> final LayerNorm -> LM head
    loss.py       L = -sum_i log p(x_{i+1} | x_1..x_i), perplexity = exp(L / N)
    generate.py   sampling: temperature, top-k, top-p, eos, streaming, the sliding window
"""

from minigpt.model.attention import KVCache
from minigpt.model.config import GPTConfig
from minigpt.model.generate import SamplingConfig
from minigpt.model.gpt import GPT, GPTOutput
from minigpt.model.loss import lm_loss, perplexity

__all__ = ["GPT", "GPTConfig", "GPTOutput", "KVCache", "SamplingConfig", "lm_loss", "perplexity"]
