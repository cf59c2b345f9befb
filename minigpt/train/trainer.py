"""The training loop: minimise L = -(1/BT) sum_{b,t} log p(y[b,t] | x[b,:t+1])
(or the loss of another pre-training objective, --objective: see minigpt.data.objectives), stepped
by Muon and AdamW (the default, minigpt.train.muon) or AdamW alone (--optimizer=adamw).

One optimizer step with gradient accumulation over k micro-batches sums the gradients of
L_i / k, so the step follows the gradient of the mean loss over all k micro-batches, the same as
one batch k times as large:

    grad = (1/k) sum_i grad L_i

`gradient_accumulation_steps` counts micro-batches over all processes (nanoGPT's meaning): each of
W processes runs k = ceil(gradient_accumulation_steps / W), rounded up (with a notice) when W does
not divide it, so `torchrun` runs any setting. DDP or FSDP averages over processes (see
minigpt.train.distributed); the reduction runs only on the last micro-step, because averaging
partial sums k times gives the same result k times slower.

A run: `Trainer(config).train()`. It evaluates and saves a checkpoint every `eval_interval` steps
and at the end (see minigpt.train.state for what a checkpoint holds), logs to metrics.jsonl, and
stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from minigpt.checkpoint import WEIGHTS_FILE, CheckpointError, atomic_write, load_model
from minigpt.checkpoint.pretrained import checkpoint_dir
from minigpt.data import TokenSampler, check_tokenizer, load_meta
from minigpt.data.corpus import sha256_file
from minigpt.data.objectives import (
    ATTENTION,
    LANGUAGE_MODELLING,
    ObjectiveBatch,
    make_objective,
    special_tokens,
)
from minigpt.data.prepare import ensure_dataset
from minigpt.data.tokenizer import Tokenizer
from minigpt.device import autocast, dtype_name, resolve_device
from minigpt.model.config import GPTConfig
from minigpt.model.gpt import GPT
from minigpt.model.loss import perplexity
from minigpt.paths import dataset_dir
from minigpt.settings import ConfigError, require
from minigpt.train.config import SAVED_CONFIG_FILE, TrainConfig
from minigpt.train.distributed import (
    DistInfo,
    all_reduce_mean,
    any_rank,
    from_main,
    gradient_sync,
    micro_batches_per_rank,
    on_main,
    replicate,
    shard,
)
from minigpt.train.interrupt import StopRequest
from minigpt.train.metrics import MetricsLog
from minigpt.train.optim import lr_at, make_optimizer, optimizer_step
from minigpt.train.perf import device_peak_flops, flops_per_token, matmul_params, mfu
from minigpt.train.precision import enable_tf32, grad_scaler, training_dtype
from minigpt.train.state import (
    check_out_dir,
    full_model,
    gathered_rng,
    load_optimizer_state,
    load_train_state,
    optimizer_state,
    save_train_state,
    set_rng_state,
)

BEST_DIR = "best"


class TrainingDiverged(RuntimeError):
    """The loss became nan or inf; the message names the last good checkpoint."""


@dataclass
class TrainResult:
    iter_num: int
    best_val_loss: float
    interrupted: str = ""  # name of the signal that stopped the run early, "" if none


class Trainer:
    """Builds model, optimizer and data from a TrainConfig, then `train()` runs the loop."""

    def __init__(self, config: TrainConfig, dist: DistInfo | None = None) -> None:
        self.cfg = cfg = config
        self.dist = dist or DistInfo()
        self.accum = self._micro_batches_per_rank()
        self.device = resolve_device(cfg.compute.device, self.dist.local_rank)
        if self.device.type == "cuda":
            enable_tf32()
        self.out_dir = Path(cfg.out_dir)
        self.data_dir = dataset_dir(cfg.dataset, cfg.data_dir)
        if cfg.init_from not in ("scratch", "resume"):
            checkpoint_dir(cfg.init_from)  # a missing checkpoint fails before data preparation
        # the other ranks wait for rank 0 to prepare the data
        on_main(lambda: ensure_dataset(self.data_dir), self.device, self.dist)
        self.meta = load_meta(self.data_dir)
        self.iter_num, self.best_val_loss, self.saved_iter = 0, math.inf, -1

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.model, self.tokenizer = self._build_model()
        check_tokenizer(self.meta, self.tokenizer)
        self.objective = make_objective(cfg.objective, self.tokenizer)
        if cfg.block_size > self.model.config.block_size:
            raise ConfigError(
                f"--block_size={cfg.block_size} exceeds the model's {self.model.config.block_size}"
            )
        self.model.to(self.device)
        # 'auto' times this model's own step; rank 0 decides, so every rank computes alike
        self.dtype_choice = training_dtype(self.cfg, self.model, self.build_optimizer, self.device,
                                           decide=self.dist.is_main)  # fmt: skip
        self.dtype = from_main(self.dtype_choice.dtype, self.dist)
        # the saved settings name the dtype chosen, so a resumed run computes as this one did
        self.cfg = replace(cfg, compute=replace(cfg.compute, dtype=dtype_name(self.dtype)))
        self.sharded = self.dist.enabled and cfg.strategy == "fsdp"
        fp16 = self.dtype == torch.float16
        require(not (self.sharded and fp16), "--strategy=fsdp runs fp32 or bf16: --dtype=bfloat16")
        # weights, best/ weights, AdamW's two moments, a temporary copy while one is replaced
        checkpoint_bytes = 6 * sum(p.numel() * p.element_size() for p in self.model.parameters())
        on_main(lambda: check_out_dir(self.out_dir, checkpoint_bytes), self.device, self.dist)
        if self.sharded:
            shard(self.model, self.device, self.dtype)  # before the optimizer: it holds shards
        self.optimizer = self.build_optimizer(self.model, self.dtype)
        self.scaler = grad_scaler(self.device, self.dtype)
        self.sampler = self._sampler("train", cfg.seed)
        torch.manual_seed(cfg.seed + self.dist.rank)  # each rank its own dropout masks
        if cfg.init_from == "resume":
            self._restore(load_train_state(self.out_dir))

        self.tokens_per_iter = cfg.batch_size * cfg.block_size * self.accum * self.dist.world_size
        self.flops_per_token = flops_per_token(
            self.model.config, matmul_params(self.model), cfg.block_size
        )
        self.peak_flops = device_peak_flops(self.device, self.dtype) * self.dist.world_size
        # the module that runs the steps: compiled and/or DDP-wrapped views of self.model
        self.runner = torch.compile(self.model) if cfg.compile else self.model
        if self.dist.enabled and not self.sharded:
            self.runner = replicate(self.runner, self.device)

    # ---- construction -------------------------------------------------------------------------

    def build_optimizer(self, model: nn.Module, dtype: torch.dtype) -> torch.optim.Optimizer:
        """The run's optimizer over `model` when it trains in `dtype` (the dtype probe's too)."""
        c = self.cfg
        return make_optimizer(c.optimizer, model, c.learning_rate, c.weight_decay,
                              (c.beta1, c.beta2), self.device, dtype)  # fmt: skip

    def _micro_batches_per_rank(self) -> int:
        total, world = self.cfg.gradient_accumulation_steps, self.dist.world_size
        per_rank = micro_batches_per_rank(total, world)
        if per_rank * world != total:
            self._print(
                f"note: --gradient_accumulation_steps={total} rounded up to {per_rank * world} "
                f"to split evenly over {world} processes ({per_rank} each)"
            )
        return per_rank

    def _build_model(self) -> tuple[GPT, Tokenizer]:
        cfg = self.cfg
        data_tokenizer = Tokenizer.from_spec(self.meta["tokenizer"])
        attention = ATTENTION[cfg.objective]
        if cfg.init_from == "scratch":
            data_tokenizer.add_special_tokens(special_tokens(cfg.objective))
            model_cfg = GPTConfig(
                vocab_size=data_tokenizer.padded_vocab_size(64),
                n_vocab=data_tokenizer.n_vocab,
                block_size=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
                n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias, attn_impl=cfg.attn_impl,
                attention=attention,
            )  # fmt: skip
            return GPT(model_cfg), data_tokenizer
        source = self.out_dir if cfg.init_from == "resume" else cfg.init_from
        model, tokenizer = load_model(
            source, data_tokenizer, dropout=cfg.dropout, attn_impl=cfg.attn_impl
        )
        if model.config.attention != attention:
            raise ConfigError(
                f"--objective={cfg.objective} trains {attention} attention, but {source} holds a"
                f" model with {model.config.attention} attention; pick a matching objective"
            )
        return model, tokenizer

    def _sampler(self, split: str, seed: int) -> TokenSampler:
        return TokenSampler(
            self.data_dir / f"{split}.bin", self.cfg.block_size, self.cfg.batch_size,
            dtype=self.meta["dtype"], seed=seed, rank=self.dist.rank,
            world_size=self.dist.world_size, device=self.device,
        )  # fmt: skip

    def _restore(self, state: dict) -> None:
        digest = sha256_file(self.out_dir / WEIGHTS_FILE)
        if digest != state["model_sha256"]:
            raise CheckpointError(
                f"{self.out_dir / WEIGHTS_FILE} does not belong to train_state.pt (a crash between "
                "the two writes?); resume cannot be exact, start a new run from the weights"
            )
        self.iter_num, self.best_val_loss = state["iter_num"], state["best_val_loss"]
        self.saved_iter = self.iter_num
        load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        rng = state["rng"]
        set_rng_state(rng[self.dist.rank % len(rng)], self.device)

    # ---- one step ------------------------------------------------------------------------------

    def lr(self) -> float:
        cfg = self.cfg
        return lr_at(self.iter_num, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters,
                     cfg.lr_decay_iters, cfg.decay_lr)  # fmt: skip

    def step(self) -> torch.Tensor:
        """One optimizer step over `accum` micro-batches; returns this process's mean loss
        (a device tensor: reading it would wait for the device, so only log steps do)."""
        total = torch.zeros((), device=self.device)
        for micro in range(self.accum):
            x, y, prefix_len = self._batch(self.sampler)
            last = micro == self.accum - 1
            with gradient_sync(self.model, self.runner, enabled=last):
                with autocast(self.device, self.dtype):
                    loss = self.runner(x, y, prefix_len=prefix_len).loss / self.accum
                self.scaler.scale(loss).backward()
            total += loss.detach()
        optimizer_step(self.optimizer, self.scaler, self.lr(), self.cfg.grad_clip)
        self.iter_num += 1
        return total

    def _batch(self, sampler: TokenSampler) -> ObjectiveBatch:
        """The objective's batch from the next window of `sampler`; its random draws come from
        the sampler's generator, whose state checkpoints save, so resuming redraws them exactly."""
        return self.objective(sampler.get_windows(), sampler.generator)  # windows: (B, T+1)

    # ---- evaluation ----------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss over `eval_iters` batches of each split, averaged over ranks. The batches
        come from fixed seeds, so every evaluation of a run sees the same ones and compares
        like with like, and evaluating never moves the training sampler."""
        self.runner.eval()
        result = {}
        for split, seed in (("train", self.cfg.seed + 1), ("val", self.cfg.seed + 2)):
            sampler = self._sampler(split, seed)
            losses = torch.zeros(self.cfg.eval_iters, device=self.device)
            for k in range(self.cfg.eval_iters):
                x, y, prefix_len = self._batch(sampler)
                with autocast(self.device, self.dtype):
                    losses[k] = self.runner(x, y, prefix_len=prefix_len).loss
            result[split] = all_reduce_mean(losses.mean(), self.dist).item()
        self.runner.train()
        return result

    # ---- checkpoints ---------------------------------------------------------------------------

    def full_model(self) -> GPT | None:
        """The whole trained model on rank 0, None elsewhere (a collective under FSDP)."""
        return full_model(self.model, self.dist)

    def _save_model(self, directory: Path) -> None:
        model = self.full_model()  # every rank takes part
        if model is not None:
            model.save_pretrained(directory, tokenizer=self.tokenizer)

    def save(self) -> None:
        """Write the checkpoint (model, then train state) into out_dir; rank 0 writes, every
        rank takes part (gathering RNG states, and shards under FSDP)."""
        rng = gathered_rng(self.device, self.dist)
        optimizer = optimizer_state(self.model, self.optimizer)
        self._save_model(self.out_dir)
        if self.dist.is_main:
            settings = json.dumps(asdict(self.cfg), indent=1) + "\n"
            atomic_write(self.out_dir / SAVED_CONFIG_FILE, lambda tmp: tmp.write_text(settings))
            state = {
                "iter_num": self.iter_num,
                "best_val_loss": self.best_val_loss,
                "optimizer": optimizer,
                "scaler": self.scaler.state_dict(),
                "rng": rng,
                "sampler": self.sampler.state_dict(),
                "model_sha256": sha256_file(self.out_dir / WEIGHTS_FILE),
            }
            save_train_state(self.out_dir, state)
        self.saved_iter = self.iter_num  # on every rank: they must agree on whether to save

    def _checkpoint_note(self) -> str:
        if self.saved_iter < 0:
            return "no checkpoint was saved yet"
        return f"last good checkpoint: {self.out_dir} (iter {self.saved_iter})"

    def _check_finite(self, name: str, value: float) -> None:
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"{name} is {value} at iter {self.iter_num}; stopping. {self._checkpoint_note()}"
                "; lower --learning_rate or use --dtype=bfloat16/float32"
            )

    # ---- the loop ------------------------------------------------------------------------------

    def _print(self, text: str) -> None:
        if self.dist.is_main:
            tqdm.write(text)

    def _eval_and_save(self, metrics: MetricsLog | None) -> float:
        losses = self.evaluate()
        for split, value in losses.items():
            self._check_finite(f"{split} loss", value)
        record = {"iter": self.iter_num, "kind": "eval", "loss": losses["train"],
                  "val_loss": losses["val"]}  # fmt: skip
        line = f"train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
        if self.cfg.objective in LANGUAGE_MODELLING:  # exp(loss) is a perplexity only here
            record.update(ppl=perplexity(losses["train"]), val_ppl=perplexity(losses["val"]))
            line += f" (ppl {record['val_ppl']:.2f})"
        self._print(f"iter {self.iter_num}: {self.cfg.objective} {line}")
        if metrics:
            metrics.log(record)
        if self.cfg.eval_only:
            return losses["val"]
        improved = losses["val"] < self.best_val_loss
        if improved:
            self.best_val_loss = losses["val"]
            self._save_model(self.out_dir / BEST_DIR)
        if improved or self.cfg.always_save_checkpoint:
            self.save()
        return losses["val"]

    def train(self) -> TrainResult:
        """Run until max_iters (or a signal); returns where it ended."""
        cfg = self.cfg
        metrics = None
        if self.dist.is_main:
            metrics = MetricsLog(
                self.out_dir, self.iter_num, cfg.tensorboard_log,
                cfg.wandb_project if cfg.wandb_log else None, cfg.wandb_run_name, asdict(cfg),
            )  # fmt: skip
        try:
            if cfg.eval_only:
                self._eval_and_save(metrics)
                return TrainResult(self.iter_num, self.best_val_loss)
            return self._loop(metrics)
        finally:
            if metrics:
                metrics.close()

    def _loop(self, metrics: MetricsLog | None) -> TrainResult:
        cfg = self.cfg
        show_bar = self.dist.is_main and cfg.progress
        bar = tqdm(total=cfg.max_iters, initial=self.iter_num, disable=not show_bar, unit="it")
        with StopRequest() as stop, bar:
            clock, clock_iter = time.perf_counter(), self.iter_num
            while self.iter_num < cfg.max_iters:
                loss = self.step()
                bar.update()
                done = self.iter_num == cfg.max_iters
                if self.iter_num % cfg.log_interval == 0 or done:
                    value = all_reduce_mean(loss, self.dist).item()  # waits for the device
                    self._check_finite("loss", value)
                    elapsed = time.perf_counter() - clock
                    tok_s = self.tokens_per_iter * (self.iter_num - clock_iter) / elapsed
                    util = mfu(tok_s, self.flops_per_token, self.peak_flops)
                    lr = self.optimizer.param_groups[0]["lr"]  # of the step just taken
                    record = {"iter": self.iter_num, "loss": value, "lr": lr,
                              "tokens_per_s": tok_s, "mfu": util}  # fmt: skip
                    if metrics:
                        metrics.log(record)
                    bar.set_postfix(loss=f"{value:.4f}", tok_s=f"{tok_s:,.0f}", mfu=f"{util:.1%}")
                    if not show_bar:
                        self._print(f"iter {self.iter_num}: loss {value:.4f}, lr {lr:.2e}, "
                                    f"{tok_s:,.0f} tok/s, mfu {util:.1%}")  # fmt: skip
                    clock, clock_iter = time.perf_counter(), self.iter_num
                if self.iter_num % cfg.eval_interval == 0 or done:
                    self._eval_and_save(metrics)
                    clock, clock_iter = time.perf_counter(), self.iter_num
                # every step alone; under DDP ranks must agree, so only at log steps
                check = not self.dist.enabled or self.iter_num % cfg.log_interval == 0
                if check and any_rank(stop.requested, self.device, self.dist):
                    return self._interrupted(stop.signal_name or "a signal on another rank")
        return TrainResult(self.iter_num, self.best_val_loss)

    def _interrupted(self, signal_name: str) -> TrainResult:
        if self.saved_iter != self.iter_num:
            self.save()
        self._print(
            f"stopped by {signal_name} at iter {self.iter_num}; checkpoint saved to {self.out_dir}."
            f" Resume with: python train.py --init_from=resume --out_dir={self.out_dir}"
        )
        return TrainResult(self.iter_num, self.best_val_loss, interrupted=signal_name)
