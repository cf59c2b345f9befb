"""The training loop: minimise L = -(1/BT) sum_{b,t} log p(y[b,t] | x[b,:t+1]) with AdamW.

One optimizer step with gradient accumulation over k micro-batches (k = gradient_accumulation_steps
/ world_size per process) sums the gradients of L_i / k, so the step follows the gradient of the
mean loss over all k micro-batches, the same as one batch k times as large:

    grad = (1/k) sum_i grad L_i

Under DDP each process does this for its slice and DDP averages over processes (see
minigpt.train.distributed); the all-reduce runs only on the last micro-step (`no_sync` before it),
because averaging partial sums k times gives the same result k times slower.

A run: `Trainer(config).train()`. It evaluates and saves a checkpoint every `eval_interval` steps
and at the end (see minigpt.train.state for what a checkpoint holds), logs to metrics.jsonl, and
stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from minigpt.checkpoint import WEIGHTS_FILE, CheckpointError, atomic_write, load_tokenizer
from minigpt.data import TokenSampler, check_tokenizer, load_meta
from minigpt.data.corpus import sha256_file
from minigpt.data.tokenizer import Tokenizer
from minigpt.model.config import GPTConfig
from minigpt.model.gpt import GPT
from minigpt.model.loss import perplexity
from minigpt.settings import ConfigError
from minigpt.train.config import TrainConfig
from minigpt.train.distributed import DistInfo, all_reduce_mean, any_rank
from minigpt.train.interrupt import StopRequest
from minigpt.train.metrics import MetricsLog
from minigpt.train.optim import lr_at, make_optimizer, optimizer_step
from minigpt.train.perf import device_peak_flops, flops_per_token, matmul_params, mfu
from minigpt.train.precision import (
    autocast,
    enable_tf32,
    grad_scaler,
    resolve_device,
    resolve_dtype,
    training_probe,
)
from minigpt.train.state import (
    load_train_state,
    rng_state,
    save_train_state,
    set_rng_state,
)

CONFIG_FILE = "train_config.json"
BEST_DIR = "best"


class TrainingDiverged(RuntimeError):
    """The loss became nan or inf; the message names the last good checkpoint."""


@dataclass
class TrainResult:
    iter_num: int
    best_val_loss: float
    interrupted: str = ""  # name of the signal that stopped the run early, "" if none


def ensure_dataset(data_dir: Path) -> None:
    """Run data_dir/prepare.py's `prepare(out_dir=data_dir)` if the dataset is not there yet."""
    if (data_dir / "meta.json").is_file():
        return
    script = data_dir / "prepare.py"
    if not script.is_file():
        raise FileNotFoundError(
            f"{data_dir}/meta.json not found and there is no {script} to make it"
        )
    spec = importlib.util.spec_from_file_location(f"prepare_{data_dir.name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.prepare(out_dir=data_dir)


def load_saved_config(out_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run saved into out_dir (what `init_from=resume` starts from)."""
    path = Path(out_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --init_from=resume needs a train.py out_dir")
    return TrainConfig(**json.loads(path.read_text()))


class Trainer:
    """Builds model, optimizer and data from a TrainConfig, then `train()` runs the loop."""

    def __init__(self, config: TrainConfig, dist: DistInfo | None = None) -> None:
        self.cfg = cfg = config
        self.dist = dist or DistInfo()
        if cfg.gradient_accumulation_steps % self.dist.world_size:
            raise ConfigError(
                f"--gradient_accumulation_steps={cfg.gradient_accumulation_steps} must be a "
                f"multiple of the number of processes ({self.dist.world_size})"
            )
        self.accum = cfg.gradient_accumulation_steps // self.dist.world_size
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        if self.device.type == "cuda":
            enable_tf32()
        self.out_dir = Path(cfg.out_dir)
        self.data_dir = Path(cfg.data_dir or Path("data") / cfg.dataset)
        if self.dist.is_main:
            ensure_dataset(self.data_dir)
        if self.dist.enabled:
            torch.distributed.barrier()  # the other ranks wait for rank 0 to prepare the data
        self.meta = load_meta(self.data_dir)
        self.iter_num, self.best_val_loss, self.saved_iter = 0, math.inf, -1

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.model, self.tokenizer = self._build_model()
        check_tokenizer(self.meta, self.tokenizer)
        if cfg.block_size > self.model.config.block_size:
            raise ConfigError(
                f"--block_size={cfg.block_size} exceeds the model's {self.model.config.block_size}"
            )
        self.model.to(self.device)
        self.dtype = resolve_dtype(
            cfg.dtype, self.device,
            training_probe(self.model, cfg.batch_size, cfg.block_size, self.device),
        )  # fmt: skip
        self.optimizer = make_optimizer(
            cfg.optimizer, self.model, cfg.learning_rate, cfg.weight_decay, (cfg.beta1, cfg.beta2),
            self.device.type,
        )  # fmt: skip
        self.scaler = grad_scaler(self.device, self.dtype)
        self.sampler = self._sampler("train", cfg.seed)
        torch.manual_seed(cfg.seed + self.dist.rank)  # each rank its own dropout masks
        if cfg.init_from == "resume":
            self._restore(load_train_state(self.out_dir))

        self.tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps
        self.flops_per_token = flops_per_token(
            self.model.config, matmul_params(self.model), cfg.block_size
        )
        self.peak_flops = device_peak_flops(self.device, self.dtype) * self.dist.world_size
        # the module that runs the steps: compiled and/or DDP-wrapped views of self.model
        self.runner = torch.compile(self.model) if cfg.compile else self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.runner = DistributedDataParallel(self.runner, device_ids=ids)

    # ---- construction -------------------------------------------------------------------------

    def _build_model(self) -> tuple[GPT, Tokenizer]:
        cfg = self.cfg
        data_tokenizer = Tokenizer.from_spec(self.meta["tokenizer"])
        if cfg.init_from == "scratch":
            model_cfg = GPTConfig(
                vocab_size=data_tokenizer.padded_vocab_size(64),
                n_vocab=data_tokenizer.n_vocab,
                block_size=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
                n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias, attn_impl=cfg.attn_impl,
            )  # fmt: skip
            return GPT(model_cfg), data_tokenizer
        source = self.out_dir if cfg.init_from == "resume" else cfg.init_from
        model = GPT.from_pretrained(source, dropout=cfg.dropout, attn_impl=cfg.attn_impl)
        local = Path(source)
        tokenizer = load_tokenizer(local) if local.is_dir() else None
        return model, tokenizer or data_tokenizer

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
        self.optimizer.load_state_dict(state["optimizer"])
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
            x, y = self.sampler.get_batch()
            last = micro == self.accum - 1
            sync = nullcontext() if last or not self.dist.enabled else self.runner.no_sync()
            with sync:
                with autocast(self.device, self.dtype):
                    loss = self.runner(x, y).loss / self.accum
                self.scaler.scale(loss).backward()
            total += loss.detach()
        optimizer_step(self.optimizer, self.scaler, self.lr(), self.cfg.grad_clip)
        self.iter_num += 1
        return total

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
                x, y = sampler.get_batch()
                with autocast(self.device, self.dtype):
                    losses[k] = self.runner(x, y).loss
            result[split] = all_reduce_mean(losses.mean(), self.dist).item()
        self.runner.train()
        return result

    # ---- checkpoints ---------------------------------------------------------------------------

    def _gathered_rng(self) -> list[dict[str, torch.Tensor]]:
        """Every rank's RNG state, indexed by rank (each rank draws its own dropout masks).
        Gathered as tensors on the training device (nccl moves only GPU tensors)."""
        mine = rng_state(self.device)
        if not self.dist.enabled:
            return [mine]
        states: list[dict[str, torch.Tensor]] = [{} for _ in range(self.dist.world_size)]
        for key, tensor in mine.items():
            parts = [torch.empty_like(tensor, device=self.device) for _ in states]
            torch.distributed.all_gather(parts, tensor.to(self.device))
            for state, part in zip(states, parts, strict=True):
                state[key] = part.cpu()
        return states

    def save(self) -> None:
        """Write the checkpoint (model, then train state) into out_dir; rank 0 only."""
        rng = self._gathered_rng()  # a collective: every rank takes part
        if not self.dist.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(self.out_dir, tokenizer=self.tokenizer)
        settings = json.dumps(asdict(self.cfg), indent=1) + "\n"
        atomic_write(self.out_dir / CONFIG_FILE, lambda tmp: tmp.write_text(settings))
        state = {
            "iter_num": self.iter_num,
            "best_val_loss": self.best_val_loss,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "sampler": self.sampler.state_dict(),
            "model_sha256": sha256_file(self.out_dir / WEIGHTS_FILE),
        }
        save_train_state(self.out_dir, state)
        self.saved_iter = self.iter_num

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
                  "val_loss": losses["val"], "ppl": perplexity(losses["train"]),
                  "val_ppl": perplexity(losses["val"])}  # fmt: skip
        self._print(
            f"iter {self.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
            f" (ppl {record['val_ppl']:.2f})"
        )
        if metrics:
            metrics.log(record)
        if self.cfg.eval_only:
            return losses["val"]
        if losses["val"] < self.best_val_loss:
            self.best_val_loss = losses["val"]
            if self.dist.is_main:
                self.model.save_pretrained(self.out_dir / BEST_DIR, tokenizer=self.tokenizer)
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
