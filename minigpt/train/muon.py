"""Muon for the hidden weight matrices, AdamW for everything else, stepped as one optimizer.

Muon (momentum orthogonalized by Newton-Schulz) keeps a momentum M of each matrix's gradient G and
steps along the nearest semi-orthogonal matrix to it, U V^T where M = U S V^T:

    M <- mu M + (1 - mu) G
    N  = G + mu (M - G)                         Nesterov look-ahead
    X  = N / |N|_F                              every singular value now <= 1
    X <- a X + (b X X^T + c (X X^T)^2) X        ns_steps times: singular values -> about 1
    W <- W (1 - lr wd) - lr * 0.2 sqrt(max(A, B)) * X

(a, b, c) = (3.4445, -4.7750, 2.0315), the quintic of the modded-nanogpt speedrun records, which
pushes small singular values up fast rather than converging exactly. The 0.2 sqrt(max(A, B))
factor gives the update of an (A x B) matrix the root-mean-square size of an AdamW update, so
both halves share one learning rate and one schedule. Every direction of the update moves by the
same amount, so the rare directions that AdamW barely moves learn as fast as the common ones.

Orthogonalizing only makes sense for matrices that map activations to activations: the Linear
weights inside the blocks. Embedding tables (and the LM head, often the same tied matrix) are
lookups by token, and 1-D gains and biases are not matrices; those stay on AdamW.

Why not `torch.optim.Muon`: it runs Newton-Schulz in bf16 unconditionally, which on a CPU
without native bf16 made a step of the default model 6x slower than AdamW's. Here the iteration
runs in `ns_dtype` (bf16 on GPUs and on CPUs that train in native bf16, fp32 elsewhere: see
minigpt.train.optim) and matrices of one shape are orthogonalized together in one batched matmul
chain instead of one at a time.

Under FSDP each parameter is a DTensor of which this rank holds some rows. Momentum, decay and the
step run on those rows; the orthogonalization, which needs whole matrices, is dealt out over the
ranks (minigpt.train.muon_sharded). Muon's state (one momentum per matrix) is sharded the same way.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from minigpt.train.muon_sharded import map_whole_matrices

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(
    G: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Approximately U V^T for each matrix of G (..., A, B), by `steps` Newton-Schulz steps."""
    a, b, c = NS_COEFFICIENTS
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:  # iterate on the wide side: X X^T is then the smaller Gram matrix
        X = X.mT
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    for _ in range(steps):
        gram = X @ X.mT  # (..., min(A, B), min(A, B))
        X = a * X + (b * gram + c * gram @ gram) @ X
    return (X.mT if tall else X).to(G.dtype)


def _local(t: torch.Tensor) -> torch.Tensor:
    """This rank's rows of a DTensor (in place edits reach it), or `t` itself."""
    return t.to_local() if isinstance(t, DTensor) else t


class Muon(torch.optim.Optimizer):
    """The update of the module docstring for 2-D parameters."""

    def __init__(
        self,
        params: list[nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.95,
        ns_steps: int = 5,
        ns_dtype: torch.dtype = torch.float32,
    ) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, ns_steps=ns_steps)
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        dealt = 0  # matrices handed out so far: under FSDP the next one goes to rank dealt % N
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            by_shape: dict[torch.Size, list[nn.Parameter]] = defaultdict(list)
            for p in params:
                by_shape[p.shape].append(p)  # the global shape of a DTensor
            for shape, same in by_shape.items():
                self._update(same, group, 0.2 * max(shape) ** 0.5, dealt)
                dealt += len(same)

    def _update(
        self, params: list[nn.Parameter], group: dict, rms_scale: float, first_owner: int
    ) -> None:
        """One Muon step for matrices of one shape, orthogonalized as one batch; under FSDP on
        this rank's rows, with the batch spread over the ranks (minigpt.train.muon_sharded)."""
        grads = [_local(p.grad) for p in params]
        bufs = []
        for p in params:
            if "momentum" not in self.state[p]:
                self.state[p]["momentum"] = torch.zeros_like(p)  # sharded like p
            bufs.append(_local(self.state[p]["momentum"]))
        mu = group["momentum"]
        torch._foreach_lerp_(bufs, grads, 1 - mu)
        nesterov = torch._foreach_lerp(grads, bufs, mu)  # G + mu (M - G)
        steps, dtype = group["ns_steps"], self.ns_dtype
        if isinstance(params[0], DTensor):
            ns = partial(orthogonalize, steps=steps, dtype=dtype)
            update = map_whole_matrices(ns, params, nesterov, dtype, first_owner)
        else:
            update = orthogonalize(torch.stack(nesterov), steps, dtype).unbind(0)
        weights = [_local(p) for p in params]
        lr = group["lr"]
        torch._foreach_mul_(weights, 1 - lr * group["weight_decay"])
        torch._foreach_add_(weights, update, alpha=-lr * rms_scale)


def hidden_matrices(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split trainable parameters into (hidden matrices for Muon, the rest for AdamW).

    Hidden = 2-D weights of nn.Linear layers, except the LM head and anything that is also an
    embedding table (a tied head is both)."""
    embeddings = {
        id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
    }
    head = getattr(model, "lm_head", None)
    embeddings |= {id(p) for p in head.parameters()} if head is not None else set()
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear) and m is not head}
    params = [p for p in model.parameters() if p.requires_grad]
    hidden = [p for p in params if id(p) in linear and id(p) not in embeddings and p.dim() == 2]
    hidden_ids = {id(p) for p in hidden}
    return hidden, [p for p in params if id(p) not in hidden_ids]


class MuonAdamW:
    """Muon over `hidden_matrices`, AdamW over the rest; one optimizer to the training loop.

    `param_groups` lists both optimizers' groups (the same dicts), so setting a group's "lr"
    reaches the optimizer that owns it; the state dict holds both halves. `adamw_kernel` picks
    AdamW's implementation (minigpt.train.optim.adamw_kernel; foreach when not given)."""

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float,
        weight_decay: float,
        betas: tuple[float, float],
        ns_dtype: torch.dtype = torch.float32,
        adamw_kernel: dict[str, bool] | None = None,
    ) -> None:
        hidden, rest = hidden_matrices(model)
        self.muon = Muon(hidden, learning_rate, weight_decay, ns_dtype=ns_dtype)
        decay = [p for p in rest if p.dim() >= 2]
        no_decay = [p for p in rest if p.dim() < 2]
        self.adamw = torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=learning_rate, betas=betas, **(adamw_kernel or {"foreach": True}),
        )  # fmt: skip

    @property
    def parts(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """The two torch optimizers (for torch.distributed.checkpoint's state dicts)."""
        return self.muon, self.adamw

    @property
    def param_groups(self) -> list[dict]:
        # read each time: load_state_dict replaces an optimizer's group dicts with new ones
        return self.muon.param_groups + self.adamw.param_groups

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])
