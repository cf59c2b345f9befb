"""The reference loop the benches race: a plain PyTorch training loop of a minigpt.GPT, written
the way a careful user writes it in a notebook (nanoGPT's recipe), and the held-out loss that
scores any model the same way."""

from __future__ import annotations

import numpy as np
import torch

from minigpt.data import TokenSampler
from minigpt.device import autocast
from minigpt.train.optim import lr_at
from minigpt.train.trainer import Trainer


class PlainLoop:
    """The baseline: what a careful user writes in a notebook. One AdamW over all parameters,
    nanoGPT-style random windows from a memmap, autocast, backward, clip, step."""

    def __init__(self, trainer: Trainer, compile: bool) -> None:
        cfg = trainer.cfg
        torch.manual_seed(cfg.seed)
        self.model = type(trainer.model)(trainer.model.config).to(trainer.device)
        self.runner = torch.compile(self.model) if compile else self.model
        self.cfg, self.device, self.dtype = cfg, trainer.device, trainer.dtype
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
            weight_decay=cfg.weight_decay, fused=self.device.type == "cuda",
        )  # fmt: skip
        self.data = np.memmap(trainer.data_dir / "train.bin", dtype=trainer.meta["dtype"], mode="r")
        self.iter_num = 0

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = self.cfg.batch_size, self.cfg.block_size
        ix = torch.randint(len(self.data) - T, (B,)).tolist()
        x = torch.stack([torch.from_numpy(self.data[i : i + T].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(self.data[i + 1 : i + 1 + T].astype(np.int64)) for i in ix]
        )
        return x.to(self.device), y.to(self.device)

    def step(self) -> torch.Tensor:
        cfg = self.cfg
        lr = lr_at(self.iter_num, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters,
                   cfg.lr_decay_iters)  # fmt: skip
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self.batch()
        with autocast(self.device, self.dtype):
            loss = self.runner(x, y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.iter_num += 1
        return loss.detach()


def val_loss(model: torch.nn.Module, trainer: Trainer, batches: int) -> float:
    sampler = TokenSampler(
        trainer.data_dir / "val.bin", trainer.cfg.block_size, 32,
        dtype=trainer.meta["dtype"], seed=1234, device=trainer.device,
    )  # fmt: skip
    model.eval()
    with torch.no_grad():
        losses = [model(*sampler.get_batch()).loss.item() for _ in range(batches)]
    return float(np.mean(losses))
