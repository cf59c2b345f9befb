"""minigpt: the GPT family (GPT-2, GPT-3, GPT-Neo, GPT-J) in a small, exact, fast library.

import minigpt
model = minigpt.GPT(minigpt.GPTConfig.from_preset("gpt2"))
logits, loss = model(idx, targets)

The subpackages, in reading order: model (the math), data, checkpoint, train, finetune, eval;
beside them settings.py (every CLI's settings and exit codes), device.py (device and dtype),
paths.py (where a checkout's datasets and recipes are) and threads.py (how OpenMP threads wait).
"""

from minigpt import threads

threads.choose_wait_policy()  # before torch loads: libgomp reads OMP_WAIT_POLICY once

# minigpt.checkpoint plugs the file formats into GPT.from_pretrained / save_pretrained as it loads
from minigpt.checkpoint import (  # noqa: E402
    CheckpointError,
    export_hf_gpt2,
    load_model,
    load_pretrained,
    load_tokenizer,
    save_pretrained,
)
from minigpt.data import Tokenizer  # noqa: E402
from minigpt.model import (  # noqa: E402
    GPT,
    GPTConfig,
    GPTOutput,
    KVCache,
    SamplingConfig,
    lm_loss,
    perplexity,
)

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
