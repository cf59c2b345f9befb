"""Generate text from a trained checkpoint, streaming it as it is sampled.

    python sample.py --out_dir=out --start="ROMEO:" --num_samples=2 --max_new_tokens=300
    python sample.py --init_from=gpt2 --start=FILE:prompt.txt --temperature=0.7 --top_p=0.9

The text is encoded and decoded with the checkpoint's own tokenizer (tokenizer_spec.json); an
HF-format checkpoint without one uses `--tokenizer` (GPT-2's BPE by default). The sampling
flags are minigpt.model.generate.SamplingConfig's; here `--eos_id` defaults to the tokenizer's
end-of-text. `--help` lists every setting.
"""

from __future__ import annotations

# first: minigpt picks how OpenMP threads wait (minigpt/threads.py) before torch loads
import minigpt  # noqa: F401

# isort: split

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from minigpt.checkpoint import load_model
from minigpt.data.tokenizer import Tokenizer
from minigpt.device import DeviceConfig, autocast, resolve_device, resolve_dtype
from minigpt.model.generate import SamplingConfig, stream_tokens
from minigpt.settings import ConfigError, help_text, parse_settings, require, run_cli, setting

USAGE = "usage: python sample.py [--key=value | --key value ...]"


@dataclass
class SampleConfig:
    out_dir: str = setting("out", "checkpoint directory that train.py wrote")
    init_from: str = setting(
        "resume", "'resume' = out_dir, or another minigpt/HF checkpoint dir or hub name"
    )
    start: str = setting("\n", "prompt text, or FILE:path to read it from a file")
    num_samples: int = setting(3, "independent samples to draw")
    sampling: SamplingConfig = setting(
        SamplingConfig(max_new_tokens=500, temperature=0.8, top_k=200),
        "how tokens are drawn; eos_id none = the tokenizer's end-of-text",
    )
    seed: int = setting(1337, "random seed: the same seed gives the same samples")
    tokenizer: str = setting("gpt2", "tokenizer for a checkpoint that has no tokenizer_spec.json")
    compute: DeviceConfig = setting(DeviceConfig(), "where it samples and in which precision")

    def validate(self) -> None:
        require(self.num_samples > 0, f"--num_samples={self.num_samples} must be positive")
        new = self.sampling.max_new_tokens
        require(new > 0, f"--max_new_tokens={new} must be positive")


def prompt_text(start: str) -> str:
    """`start` itself, or the contents of the file named by FILE:path."""
    if not start.startswith("FILE:"):
        return start
    path = Path(start.removeprefix("FILE:"))
    if not path.is_file():
        raise ConfigError(f"--start=FILE:{path}: no such file")
    return path.read_text(encoding="utf-8")


def stream_text(tokenizer: Tokenizer, tokens: Iterator[torch.Tensor]) -> Iterator[str]:
    """Yield the text of each new token (of a batch of one) as soon as it decodes to whole
    characters, up to the end-of-text token. A BPE token can end inside a multi-byte character,
    which decodes to U+FFFD until the next token completes it, so that tail is held back."""
    ids: list[int] = []
    shown = 0
    for token in tokens:
        if int(token[0, 0]) == tokenizer.eot_id:
            break
        ids.append(int(token[0, 0]))
        text = tokenizer.decode(ids)
        if not text.endswith("\ufffd"):
            yield text[shown:]
            shown = len(text)
    text = tokenizer.decode(ids)
    if len(text) > shown:
        yield text[shown:]


def sample(argv: Sequence[str]) -> None:
    cfg = parse_settings(SampleConfig, argv)
    source = cfg.out_dir if cfg.init_from == "resume" else cfg.init_from
    model, tokenizer = load_model(source, cfg.tokenizer)
    prompt = prompt_text(cfg.start)
    start_ids = tokenizer.encode(prompt)
    if not start_ids:
        start_ids = [tokenizer.eot_id] if tokenizer.eot_id is not None else [0]
    device = resolve_device(cfg.compute.device)
    dtype = resolve_dtype(cfg.compute.dtype, device)
    model.to(device).eval()
    idx = torch.tensor([start_ids], device=device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    eos_id = tokenizer.eot_id if cfg.sampling.eos_id is None else cfg.sampling.eos_id
    sampling = dataclasses.replace(cfg.sampling, eos_id=eos_id)
    for k in range(cfg.num_samples):
        if k:
            print("\n---------------")
        print(prompt, end="", flush=True)
        with autocast(device, dtype):
            tokens = stream_tokens(model, idx, sampling, generator)
            for piece in stream_text(tokenizer, tokens):
                print(piece, end="", flush=True)
    print()


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, help_text(SampleConfig, USAGE), sample)


if __name__ == "__main__":
    sys.exit(main())
