"""The fine-tuning loop: epochs of AdamW on the classification loss, validation after each.

Each optimizer step averages the gradient of k = gradient_accumulation_steps micro-batches,
grad = (1/k) sum_i grad L_i, where L_i is L2 (or GPT-1's L3 = L2 + lambda L1) of micro-batch i.
The learning rate warms up linearly for the first `warmup_frac` of the steps, then follows a
cosine down to a tenth of the peak (minigpt.train.optim.lr_at). Only parameters with requires_grad
reach the optimizer, so frozen weights are never touched, not even by weight decay.

With `--class_weight=balanced` the training loss weighs class k by w_k = N / (K n_k) (N texts,
K classes, n_k texts of class k), so every class carries the same total weight:
L2 = -sum_(x, y) w_y log P(y | x) / sum_(x, y) w_y. Validation and test losses stay unweighted.

Model selection: after every epoch the validation macro-F1 (or loss, or accuracy: `select_on`) is
compared with the best so far; the trainable tensors of the best epoch are kept in memory and
restored at the end, and the run stops once `patience` epochs in a row brought no improvement.

AdaLoRA's RankAllocator hooks into every step: its orthogonality penalty joins the loss, it reads
the gradients before the optimizer step and re-allocates ranks after it; at the end the pruned
ranks are dropped and the rank pattern goes into the method config that is saved.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from minigpt.data import TextBatch
from minigpt.device import autocast
from minigpt.finetune.adalora import RankAllocator, make_allocator
from minigpt.finetune.classifier import GPTClassifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.finetune.metrics import classification_report
from minigpt.train.optim import lr_at, make_adamw, optimizer_step
from minigpt.train.precision import grad_scaler


@dataclass
class EvalResult:
    loss: float  # mean L2 over the examples
    accuracy: float
    y_true: list[int] = field(repr=False)
    y_pred: list[int] = field(repr=False)
    macro_f1: float = 0.0


@torch.no_grad()
def evaluate(
    model: GPTClassifier,
    batches: Iterable[TextBatch],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    desc: str = "eval",
    progress: bool = False,
) -> EvalResult:
    """Mean classification loss, accuracy and the predictions over `batches` (eval mode)."""
    was_training = model.training
    model.eval()
    total_loss, y_true, y_pred = 0.0, [], []
    for batch in tqdm(batches, desc=desc, leave=False, disable=not progress):
        with autocast(device, dtype):
            out = model(batch.input_ids.to(device), batch.lengths.to(device), batch.labels)
        total_loss += out.loss.item() * len(batch.labels)
        y_true += batch.labels.tolist()
        y_pred += out.logits.argmax(-1).tolist()
    model.train(was_training)
    report = classification_report(y_true, y_pred, model.labels)
    loss = total_loss / max(len(y_true), 1)
    return EvalResult(loss, report["accuracy"], y_true, y_pred, report["macro_f1"])


class Finetuner:
    """Trains `model` on `train_batches` (re-iterable, e.g. a shuffling DataLoader)."""

    def __init__(
        self,
        model: GPTClassifier,
        cfg: FinetuneConfig,
        train_batches: Iterable[TextBatch],
        val_batches: Iterable[TextBatch],
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.model, self.cfg = model, cfg
        self.train_batches, self.val_batches = train_batches, val_batches
        self.device, self.dtype = device, dtype
        self.learning_rate = cfg.method_learning_rate
        self.optimizer = make_adamw(
            model, self.learning_rate, cfg.weight_decay, (0.9, 0.999), device_type=device.type
        )
        self.scaler = grad_scaler(device, dtype)
        micro_batches = len(train_batches)  # type: ignore[arg-type]
        # the schedule's names as in train.py: iterations are optimizer steps
        self.lr_decay_iters = cfg.epochs * math.ceil(
            micro_batches / cfg.gradient_accumulation_steps
        )
        self.warmup_iters = round(cfg.warmup_frac * self.lr_decay_iters)
        self.iter_num = 0
        self.best_epoch = 0
        self.class_weight = (
            balanced_class_weights(train_batches) if cfg.class_weight == "balanced" else None
        )
        self.allocator = _allocator(model, cfg, self.lr_decay_iters)
        self.ranks = {"initial_total_rank": self.allocator.total_rank()} if self.allocator else {}

    def lr(self) -> float:
        cfg = self.cfg
        return lr_at(
            self.iter_num,
            self.learning_rate,
            self.learning_rate / 10,
            self.warmup_iters,
            self.lr_decay_iters,
            cfg.decay_lr,
        )

    def train(self, log: Callable[[str], None] = tqdm.write) -> list[dict]:
        """Run the epochs; returns one record per epoch and leaves the best epoch's weights
        (its number in `self.best_epoch`)."""
        history, best_score, best_state = [], -math.inf, None
        metric, patience = self.cfg.select_on, self.cfg.patience
        for epoch in range(1, self.cfg.epochs + 1):
            start = time.perf_counter()
            train_loss = self._epoch(epoch)
            val = evaluate(
                self.model, self.val_batches, self.device, self.dtype, "val", self.cfg.progress
            )
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
                "val_macro_f1": val.macro_f1,
                "lr": self.lr(),
                "time_s": time.perf_counter() - start,
            }
            history.append(record)
            log(
                f"epoch {epoch}: train loss {train_loss:.4f}, val loss {val.loss:.4f},"
                f" val accuracy {val.accuracy:.4f}, val macro-F1 {val.macro_f1:.4f}"
                f" ({record['time_s']:.0f}s)"
            )
            score = {"loss": -val.loss, "accuracy": val.accuracy, "macro_f1": val.macro_f1}[metric]
            if score > best_score:
                best_score, self.best_epoch, best_state = score, epoch, trainable_state(self.model)
            elif patience and epoch - self.best_epoch >= patience:
                log(f"early stop: no {metric} improvement in {patience} epochs")
                break
        if self.best_epoch != history[-1]["epoch"]:
            load_trainable_state(self.model, best_state)
            log(f"restored the weights of epoch {self.best_epoch} (best val {metric})")
        if self.allocator:
            self._compress_ranks()
        return history

    def _compress_ranks(self) -> None:
        """Drop AdaLoRA's pruned triplets; the method config saved with the model gets the
        rank pattern that loading rebuilds."""
        pattern = self.allocator.compress()
        method = dataclasses.replace(self.model.method, adalora_rank_pattern=pattern)
        self.model.method = method
        self.ranks.update(final_total_rank=sum(pattern.values()), rank_pattern=pattern)

    def _epoch(self, epoch: int) -> float:
        """One pass over the training set; returns its mean loss."""
        cfg, model = self.cfg, self.model
        model.train()
        k = cfg.gradient_accumulation_steps
        n_batches = len(self.train_batches)  # type: ignore[arg-type]
        bar = tqdm(self.train_batches, desc=f"epoch {epoch}", leave=False, disable=not cfg.progress)
        total, count = 0.0, 0
        for i, batch in enumerate(bar):
            with autocast(self.device, self.dtype):
                out = model(
                    batch.input_ids.to(self.device),
                    batch.lengths.to(self.device),
                    batch.labels.to(self.device),
                    cfg.aux_lm_weight,
                    self.class_weight,
                )
                loss = out.loss + self.allocator.penalty() if self.allocator else out.loss
            # the last group of an epoch may hold fewer than k micro-batches
            group = min(k, n_batches - (i // k) * k)
            self.scaler.scale(loss / group).backward()
            total, count = total + out.loss.item(), count + 1
            if (i + 1) % k == 0 or i + 1 == n_batches:
                self._step()
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{self.lr():.2e}")
        return total / max(count, 1)

    def _step(self) -> None:
        if self.allocator:
            self.allocator.before_step(self.iter_num + 1)
        optimizer_step(self.optimizer, self.scaler, self.lr(), self.cfg.grad_clip)
        self.iter_num += 1
        if self.allocator:
            self.allocator.after_step(self.iter_num)


def _allocator(model: GPTClassifier, cfg: FinetuneConfig, total_steps: int) -> RankAllocator | None:
    """AdaLoRA's rank allocator over `total_steps` optimizer steps, for --method=adalora."""
    m = cfg.tuning
    if m.method != "adalora":
        return None
    return make_allocator(model, m.adalora_init_r, m.adalora_target_r, total_steps,
                          m.adalora_tinit, m.adalora_tfinal, m.adalora_delta_t,
                          m.adalora_orth_reg)  # fmt: skip


def balanced_class_weights(train_batches: Iterable[TextBatch]) -> torch.Tensor:
    """w_k = N / (K n_k) from the training set's class counts (a class with no text gets 0)."""
    counts = torch.tensor(train_batches.dataset.class_counts(), dtype=torch.float32)
    weights = counts.sum() / (len(counts) * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the tensors that train (what early stopping needs to restore)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, tensor in state.items():
        params[name].copy_(tensor)
