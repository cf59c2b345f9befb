"""Train a GPT: `python train.py [config/NAME.toml|config/NAME.py ...] [--key=value ...]`.

With no arguments it prepares shakespeare_char if needed, trains a small character-level model
for a few minutes on a CPU, saves it to out/ and prints a sample. `--help` lists every setting.
Scale out with `torchrun --nproc_per_node=N train.py ...` (nccl on GPUs, gloo on CPUs): the
model replicated (`--strategy=ddp`, the default) or sharded (`--strategy=fsdp`). Errors are
printed once, by rank 0, and every rank exits non-zero.
Continue a run exactly with `--init_from=resume --out_dir=DIR` (its saved settings are the
defaults; flags given again override them, e.g. a larger --max_iters).
"""

from __future__ import annotations

# first: minigpt picks how OpenMP threads wait (minigpt/threads.py) before torch loads
import minigpt  # noqa: F401

# isort: split

import sys
from collections.abc import Sequence

import torch

from minigpt import threads
from minigpt.data.objectives import LANGUAGE_MODELLING
from minigpt.data.tokenizer import Tokenizer
from minigpt.device import dtype_name, resolve_device
from minigpt.model.gpt import GPT
from minigpt.settings import run_cli
from minigpt.train.config import resolve_config, train_help
from minigpt.train.distributed import init_distributed, shutdown
from minigpt.train.trainer import Trainer


def sample(model: GPT, tokenizer: Tokenizer, n_tokens: int, seed: int) -> str:
    """Text generated from an end-of-text token (or a newline), for a first look at the model."""
    start = [tokenizer.eot_id] if tokenizer.eot_id is not None else tokenizer.encode("\n")
    device = next(model.parameters()).device
    idx = torch.tensor([start], device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    out = model.generate(idx, n_tokens, temperature=0.8, top_k=200, generator=generator)
    return tokenizer.decode(out[0, len(start) :].tolist())


def train(argv: Sequence[str]) -> None:
    config = resolve_config(argv)
    dist = init_distributed(resolve_device(config.compute.device).type, config.backend)
    trainer = Trainer(config, dist)
    if dist.is_main:
        model = trainer.model
        print(
            f"model {model.num_params() / 1e6:.2f}M params; {trainer.tokens_per_iter:,} tokens"
            f"/step; {trainer.device} {dtype_name(trainer.dtype)}; "
            f"peak {trainer.peak_flops / 1e9:,.0f} GFLOP/s; out_dir {config.out_dir}"
        )
        print(f"dtype {trainer.dtype_choice}")
        if trainer.device.type == "cpu":
            print(f"{torch.get_num_threads()} threads per process; {threads.WAIT_POLICY}")
    result = trainer.train()
    generates = config.objective in LANGUAGE_MODELLING  # the others are not trained to
    if config.sample_tokens and generates and not result.interrupted:
        model = trainer.full_model()  # under fsdp every rank helps gather it
        if model is not None:
            text = sample(model, trainer.tokenizer, config.sample_tokens, config.seed)
            print(f"---- sample ({config.sample_tokens} tokens) ----\n{text}")
    # An error skips this on purpose: a peer may be inside a collective, and exiting releases all
    shutdown(dist)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, train_help(), train)


if __name__ == "__main__":
    sys.exit(main())
