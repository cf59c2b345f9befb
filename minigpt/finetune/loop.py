"""The fine-tuning loop: epochs of AdamW on the classification loss, validation after each.

Each optimizer step averages the gradient of k = gradient_accumulation_steps micro-batches,
grad = (1/k) sum_i grad L_i, where L_i is L2 (or GPT-1's L3 = L2 + lambda L1) of micro-batch i.
The learning rate warms up linearly for the first `warmup_frac` of the steps, then follows a
cosine down to a tenth of the peak (minigpt.train.optim.lr_at). Only parameters with requires_grad
reach the optimizer, so frozen weights are never touched, not even by weight decay.

Early stopping: after every epoch the validation loss (or accuracy) is compared with the best so
far; the trainable tensors of the best epoch are kept in memory and restored at the end, and the
run stops once `patience` epochs in a row brought no improvement.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from minigpt.data import TextBatch
from minigpt.finetune.classifier import GPTClassifier
from minigpt.finetune.config import FinetuneConfig
from minigpt.train.optim import lr_at, make_adamw, optimizer_step
from minigpt.train.precision import autocast, grad_scaler


@dataclass
class EvalResult:
    loss: float  # mean L2 over the examples
    accuracy: float
    y_true: list[int] = field(repr=False)
    y_pred: list[int] = field(repr=False)


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
    n = max(len(y_true), 1)
    accuracy = sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / n
    return EvalResult(total_loss / n, accuracy, y_true, y_pred)


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
        metric, patience = self.cfg.early_stop, self.cfg.patience
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
                "lr": self.lr(),
                "time_s": time.perf_counter() - start,
            }
            history.append(record)
            log(
                f"epoch {epoch}: train loss {train_loss:.4f}, val loss {val.loss:.4f},"
                f" val accuracy {val.accuracy:.4f} ({record['time_s']:.0f}s)"
            )
            score = -val.loss if metric == "val_loss" else val.accuracy
            if score > best_score:
                best_score, self.best_epoch, best_state = score, epoch, trainable_state(self.model)
            elif patience and epoch - self.best_epoch >= patience:
                log(f"early stop: no {metric} improvement in {patience} epochs")
                break
        if self.best_epoch != history[-1]["epoch"]:
            load_trainable_state(self.model, best_state)
            log(f"restored the weights of epoch {self.best_epoch} (best {metric})")
        return history

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
                )
            # the last group of an epoch may hold fewer than k micro-batches
            group = min(k, n_batches - (i // k) * k)
            self.scaler.scale(out.loss / group).backward()
            total, count = total + out.loss.item(), count + 1
            if (i + 1) % k == 0 or i + 1 == n_batches:
                self._step()
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{self.lr():.2e}")
        return total / max(count, 1)

    def _step(self) -> None:
        optimizer_step(self.optimizer, self.scaler, self.lr(), self.cfg.grad_clip)
        self.iter_num += 1


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the tensors that train (what early stopping needs to restore)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, tensor in state.items():
        params[name].copy_(tensor)
