"""The language-modelling objective: negative log-likelihood of the next token.

A GPT factorises the probability of a sequence x_1..x_n left to right,

    p(x_1..x_n) = prod_i p(x_{i+1} | x_1..x_i),

and is trained to maximise it, i.e. to minimise

    L = -sum_i log p(x_{i+1} | x_1..x_i).

The model emits a score vector z_i = logits[b, i, :] at every position; the probability of token
v is the softmax p(v | x_1..x_i) = exp(z_{i,v}) / sum_u exp(z_{i,u}), so

    -log p(x_{i+1} | x_1..x_i) = logsumexp(z_i) - z_{i, x_{i+1}},

which is exactly the cross-entropy between z_i and the target x_{i+1} = targets[b, i].
We report the mean over the N positions whose target is not `IGNORE_INDEX` (padding, prompts),
L / N, so the value does not depend on batch size or sequence length.

Symbols -> variables:  z_i -> logits[b, i],  x_{i+1} -> targets[b, i],  N -> number of targets
that are not IGNORE_INDEX.  The sum runs over both the batch and the time axis.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL. logits (B, T, V), targets (B, T) -> scalar fp32 tensor.

    Logits are upcast to fp32 first: under bf16/fp16 autocast, logsumexp over a 50k vocab loses
    most of its precision otherwise.
    """
    V = logits.size(-1)
    return F.cross_entropy(
        logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def perplexity(loss: float | torch.Tensor) -> float:
    """exp(L / N): the effective number of equally likely next tokens the model hesitates among."""
    if isinstance(loss, torch.Tensor):
        loss = loss.detach().item()
    return math.exp(loss)
