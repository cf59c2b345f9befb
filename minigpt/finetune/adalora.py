"""AdaLoRA (Zhang et al., ICLR 2023): LoRA whose rank budget moves to the weights that need it.

Every adapted weight slice W0 (out x in) gets an update in SVD form

    W = W0 + scale * P diag(lambda) Q      P: (out x r),  lambda: (r,),  Q: (r x in)

with scale = alpha / init_r. P and Q start N(0, 0.02^2) and lambda at 0, so W = W0 at step 0.
A triplet (lambda_i, column i of P, row i of Q) is pruned by setting lambda_i to 0, which leaves
P and Q free to keep training and the triplet free to return. A penalty keeps P and Q close to
orthogonal, so that the lambda_i act as singular values:

    R(P, Q) = ||P^T P - I||_F + ||Q Q^T - I||_F
    L = L_task + orth_reg * mean over slices of R(P, Q)

Importance. The sensitivity of a trainable entry w is I = |w * dL/dw|; at every step t

    Ibar_t = beta1 Ibar_{t-1} + (1 - beta1) I_t               smoothed sensitivity
    U_t    = beta2 U_{t-1}    + (1 - beta2) |I_t - Ibar_t|    its uncertainty
    s(w)   = Ibar_t * U_t

and triplet i of a slice scores S_i = s(lambda_i) + mean_j s(P_ji) + mean_j s(Q_ij).

Budget. b(t) is the number of unpruned triplets over all n slices, from b0 = init_r * n down to
bT = target_r * n over T optimizer steps (the cubic form of the authors' code):

    b(t) = b0                                                           t <= tinit
    b(t) = bT + (b0 - bT) * (1 - (t - tinit) / (T - tinit - tfinal))^3   tinit < t <= T - tfinal
    b(t) = bT                                                           t >  T - tfinal

truncated to an integer. Every delta_t steps between the two phases, and at the first step of
the final phase, the b(t) triplets with the highest S_i stay and the others are masked
(lambda_i = 0, kept at 0 after every later step). In the final phase importance is frozen, so the
pattern is too. At the end `compress` drops the masked triplets: the ranks left per slice are the
`rank_pattern` saved with the classifier, from which loading builds layers of exactly those ranks.

In the tensors, P is `lora_B[s]`, Q is `lora_A[s]` (LoRA's names for the same roles, so merging
and export reuse LoRA's code) and lambda is `lora_E[s]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minigpt.finetune.lora import LoRALinear, lora_sites
from minigpt.model.gpt import GPT


class AdaLoRALinear(LoRALinear):
    """A frozen nn.Linear plus SVD-form updates P diag(lambda) Q on slices of its output.

    `ranks` maps a slice's name to its rank (a saved rank_pattern); others get `init_r`."""

    def __init__(
        self,
        base: nn.Linear,
        parts: dict[str, tuple[int, int]],
        ranks: dict[str, int],
        init_r: int,
        alpha: float,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(base, parts, init_r, alpha, dropout, generator)
        like = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.lora_E = nn.ParameterDict()
        for name, (start, stop) in self.parts.items():
            r = ranks.get(name, init_r)
            Q = torch.randn(r, base.in_features, generator=generator) * 0.02
            P = torch.randn(stop - start, r, generator=generator) * 0.02
            self.lora_A[name] = nn.Parameter(Q.to(**like))
            self.lora_B[name] = nn.Parameter(P.to(**like))
            self.lora_E[name] = nn.Parameter(torch.zeros(r, **like))

    def delta_weight(self, name: str) -> torch.Tensor:
        """scale * P diag(lambda) Q, the update to rows [start, stop) of W."""
        return self.scale * (self.lora_B[name] * self.lora_E[name]) @ self.lora_A[name]

    def update(self, name: str, x: torch.Tensor) -> torch.Tensor:
        # (.., in) -> (.., r), scaled by lambda -> (.., out_s)
        return self.scale * F.linear(F.linear(x, self.lora_A[name]) * self.lora_E[name],
                                     self.lora_B[name])  # fmt: skip


def add_adalora(
    gpt: GPT,
    targets: tuple[str, ...],
    init_r: int,
    alpha: float,
    dropout: float = 0.0,
    rank_pattern: dict[str, int] | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """Wrap every targeted Linear of `gpt` in an AdaLoRALinear (in place); slices named in
    `rank_pattern` ("h.0.attn.c_attn.q": 5) get that rank, the others `init_r`."""
    pattern = rank_pattern or {}
    names = {id(module): name for name, module in gpt.named_modules()}
    for parent, attr, parts in lora_sites(gpt, targets):
        prefix = f"{names[id(parent)]}.{attr}"
        ranks = {p: pattern[f"{prefix}.{p}"] for p in parts if f"{prefix}.{p}" in pattern}
        base = getattr(parent, attr)
        setattr(parent, attr, AdaLoRALinear(base, parts, ranks, init_r, alpha, dropout, generator))


def adalora_slices(model: nn.Module) -> Iterator[tuple[str, AdaLoRALinear, str]]:
    """(rank_pattern key, layer, slice name) of every adapted slice, keys relative to the GPT."""
    for name, module in model.named_modules():
        if isinstance(module, AdaLoRALinear):
            key = name.removeprefix("gpt.")
            for part in module.parts:
                yield f"{key}.{part}", module, part


def orthogonality_penalty(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """R(P, Q) = ||P^T P - I||_F + ||Q Q^T - I||_F."""
    eye = torch.eye(P.size(1), device=P.device, dtype=P.dtype)
    return torch.linalg.matrix_norm(P.T @ P - eye) + torch.linalg.matrix_norm(Q @ Q.T - eye)


@dataclass(frozen=True)
class BudgetSchedule:
    """b(t) of the module docstring, and whether step t re-allocates the ranks."""

    init_budget: int  # b0
    target_budget: int  # bT
    total_steps: int  # T
    tinit: int
    tfinal: int
    delta_t: int

    def __post_init__(self) -> None:
        if self.total_steps - self.tinit - self.tfinal <= 0:
            raise ValueError(
                f"AdaLoRA needs tinit + tfinal ({self.tinit} + {self.tfinal}) below the run's"
                f" {self.total_steps} optimizer steps; lower --adalora_tinit/--adalora_tfinal"
            )

    def budget(self, t: int) -> int:
        if t <= self.tinit:
            return self.init_budget
        if t > self.total_steps - self.tfinal:
            return self.target_budget
        progress = (t - self.tinit) / (self.total_steps - self.tinit - self.tfinal)
        spare = self.init_budget - self.target_budget
        return int(spare * (1 - progress) ** 3 + self.target_budget)

    def reallocates(self, t: int) -> bool:
        final_start = self.total_steps - self.tfinal + 1
        return t == final_start or (self.tinit < t < final_start and t % self.delta_t == 0)

    def updates_importance(self, t: int) -> bool:
        return t < self.total_steps - self.tfinal + 1


class RankAllocator:
    """AdaLoRA's per-step hook into the fine-tuning loop: `penalty()` joins the loss,
    `before_step(t)` reads the gradients, `after_step(t)` re-allocates and masks."""

    def __init__(
        self,
        model: nn.Module,
        schedule: BudgetSchedule,
        orth_reg: float,
        beta1: float = 0.85,
        beta2: float = 0.85,
    ) -> None:
        self.model, self.schedule = model, schedule
        self.orth_reg, self.beta1, self.beta2 = orth_reg, beta1, beta2
        self.masks = {
            key: torch.ones_like(layer.lora_E[part], dtype=torch.bool)
            for key, layer, part in adalora_slices(model)
        }
        self.ibar: dict[nn.Parameter, torch.Tensor] = {}  # Ibar of every P, lambda, Q
        self.uncertainty: dict[nn.Parameter, torch.Tensor] = {}  # U

    def total_rank(self) -> int:
        return int(sum(int(mask.sum()) for mask in self.masks.values()))

    def penalty(self) -> torch.Tensor:
        """orth_reg * mean over slices of R(P, Q)."""
        slices = list(adalora_slices(self.model))
        total = sum(
            orthogonality_penalty(layer.lora_B[p], layer.lora_A[p]) for _, layer, p in slices
        )
        return self.orth_reg * total / max(len(slices), 1)

    @torch.no_grad()
    def before_step(self, t: int) -> None:
        """Update Ibar and U from this step's gradients (t: the step about to be taken)."""
        if not self.schedule.updates_importance(t):
            return
        for _, layer, part in adalora_slices(self.model):
            for param in (layer.lora_B[part], layer.lora_E[part], layer.lora_A[part]):
                if param.grad is None:
                    continue
                sensitivity = (param * param.grad).abs()
                ibar = self.ibar.get(param, torch.zeros_like(param))
                ibar = self.beta1 * ibar + (1 - self.beta1) * sensitivity
                u = self.uncertainty.get(param, torch.zeros_like(param))
                self.uncertainty[param] = (
                    self.beta2 * u + (1 - self.beta2) * (sensitivity - ibar).abs()
                )
                self.ibar[param] = ibar

    @torch.no_grad()
    def after_step(self, t: int) -> None:
        """Re-allocate to b(t) when the schedule says so, then zero every masked lambda."""
        if self.schedule.reallocates(t):
            self._keep_top(self.schedule.budget(t))
        self.apply_masks()

    @torch.no_grad()
    def apply_masks(self) -> None:
        for key, layer, part in adalora_slices(self.model):
            layer.lora_E[part].masked_fill_(~self.masks[key], 0.0)

    def triplet_scores(self) -> dict[str, torch.Tensor]:
        """S_i for every slice: (r,) each."""
        return {
            key: self._s(layer.lora_E[part])
            + self._s(layer.lora_B[part]).mean(dim=0)
            + self._s(layer.lora_A[part]).mean(dim=1)
            for key, layer, part in adalora_slices(self.model)
        }

    def _s(self, param: nn.Parameter) -> torch.Tensor:
        if param not in self.ibar:
            return torch.zeros_like(param)
        return self.ibar[param] * self.uncertainty[param]

    def _keep_top(self, budget: int) -> None:
        scores = self.triplet_scores()
        flat = torch.cat([scores[key] for key in self.masks])
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[flat.topk(min(budget, len(flat))).indices] = True
        for key, mask in zip(
            self.masks, keep.split([len(m) for m in self.masks.values()]), strict=True
        ):
            self.masks[key] = mask

    @torch.no_grad()
    def compress(self) -> dict[str, int]:
        """Zero the masked lambdas, drop their triplets from the layers, and return the
        rank_pattern {slice key: rank} that loading rebuilds."""
        self.apply_masks()
        pattern = {}
        for key, layer, part in list(adalora_slices(self.model)):
            kept = self.masks[key].nonzero().squeeze(1)
            layer.lora_A[part] = nn.Parameter(layer.lora_A[part][kept].clone())
            layer.lora_B[part] = nn.Parameter(layer.lora_B[part][:, kept].clone())
            layer.lora_E[part] = nn.Parameter(layer.lora_E[part][kept].clone())
            self.masks[key] = self.masks[key][kept]
            pattern[key] = len(kept)
        return pattern


def make_allocator(
    model: nn.Module,
    init_r: int,
    target_r: int,
    total_steps: int,
    tinit: int,
    tfinal: int,
    delta_t: int,
    orth_reg: float,
) -> RankAllocator:
    """The allocator for every AdaLoRA slice of `model`, budgets init_r and target_r per slice."""
    n = sum(1 for _ in adalora_slices(model))
    schedule = BudgetSchedule(init_r * n, target_r * n, total_steps, tinit, tfinal, delta_t)
    return RankAllocator(model, schedule, orth_reg)
