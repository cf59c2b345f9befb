"""Checkpoints: minigpt's own format and Hugging Face's gpt2 / gpt_neo / gptj formats.

A minigpt checkpoint is a directory with

    config.json         {"model_type": "minigpt", <GPTConfig fields>}
    model.safetensors   the weights (a tied LM head is stored once, as wte.weight)
    tokenizer_spec.json the tokenizer, when one was given

Nothing is ever unpickled: safetensors holds plain tensors, and the `pytorch_model.bin` files of
older HF checkpoints are read with `torch.load(weights_only=True)`.

Every load is strict: a missing tensor, an unexpected one, a wrong shape, a truncated file or an
unknown model_type raises a one-line `CheckpointError` that names it; nothing is half-loaded.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from minigpt.config import GPTConfig
from minigpt.model import GPT
from minigpt.tokenizer import TOKENIZER_FILE, Tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HUB_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin*"]
GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as asked; the message says which file/tensor/field."""


# ---- writing ----------------------------------------------------------------------------------


def atomic_write(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` on a temp file beside `target`, fsync it, then rename it over
    `target`: readers see the old file or the new one, never half of one, even after a crash."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # same filesystem: atomic rename
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(target: Path, obj: dict[str, Any]) -> None:
    atomic_write(target, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def write_tensors(target: Path, tensors: dict[str, torch.Tensor]) -> None:
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(target, lambda p: save_file(plain, str(p), metadata={"format": "pt"}))


def minigpt_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The model's tensors with a tied LM head dropped (safetensors stores no aliases)."""
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    return state


def save_pretrained(model: GPT, path: str | Path, tokenizer: Tokenizer | None = None) -> None:
    """Write config.json, model.safetensors and (optionally) tokenizer_spec.json into `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_tensors(path / WEIGHTS_FILE, minigpt_state_dict(model))
    write_json(path / CONFIG_FILE, {"model_type": "minigpt", **model.config.to_dict()})
    if tokenizer is not None:
        atomic_write(path / TOKENIZER_FILE, lambda p: tokenizer.save(p))


def export_hf_gpt2(model: GPT, path: str | Path) -> None:
    """Write a GPT-2-shaped model as a Hugging Face `gpt2` checkpoint (GPT2LMHeadModel)."""
    cfg = model.config
    gpt2_shaped = all([
        cfg.position == "learned", not cfg.parallel_residual, cfg.bias, cfg.scale_attn,
        cfg.qkv_bias in (None, True), cfg.attn_proj_bias in (None, True),
        set(cfg.layer_types or ()) <= {"global"}, cfg.tie_word_embeddings, not cfg.lm_head_bias,
    ])  # fmt: skip
    if not gpt2_shaped:
        raise CheckpointError(
            "only GPT-2-shaped models (learned positions, dense layers, biases, tied head) "
            "can be exported to the HF gpt2 format"
        )
    state = {}
    for name, tensor in minigpt_state_dict(model).items():
        state["transformer." + name] = tensor.t() if name.endswith(GPT2_CONV1D) else tensor
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_tensors(path / WEIGHTS_FILE, state)
    hf_config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
        "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": cfg.n_inner,
        "activation_function": "gelu_new", "layer_norm_epsilon": cfg.layer_norm_eps,
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "tie_word_embeddings": True, "bos_token_id": 50256, "eos_token_id": 50256,
    }  # fmt: skip
    write_json(path / CONFIG_FILE, hf_config)


# ---- reading files ----------------------------------------------------------------------------


def read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: not a checkpoint directory")
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON ({e})") from None


def read_tensor_file(file: Path) -> dict[str, torch.Tensor]:
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        return torch.load(file, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, OSError, EOFError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{file} is truncated or corrupt: {first_line}") from None


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint dir: model.safetensors, sharded safetensors or a .bin."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.is_file():
            shards = sorted(set(read_json(index)["weight_map"].values()))
            return {k: v for s in shards for k, v in read_tensor_file(directory / s).items()}
    for name in (WEIGHTS_FILE, "pytorch_model.bin"):
        if (directory / name).is_file():
            return read_tensor_file(directory / name)
    raise CheckpointError(f"no {WEIGHTS_FILE} or pytorch_model.bin in {directory}")


# ---- Hugging Face configs -> GPTConfig ----------------------------------------------------------


def _hf_fields(hf: dict[str, Any], model_type: str, names: dict[str, str]) -> dict[str, Any]:
    """Required HF config fields, renamed to GPTConfig's names ({ours: theirs})."""
    for theirs in names.values():
        if theirs not in hf:
            raise CheckpointError(f"{model_type} config.json lacks the field {theirs!r}")
    return {ours: hf[theirs] for ours, theirs in names.items()}


def _common_fields(hf: dict[str, Any], tied_default: bool) -> dict[str, Any]:
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CheckpointError(
            f"config.json activation_function={act!r} is unsupported: use tanh-GELU"
        )
    return dict(
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        tie_word_embeddings=hf.get("tie_word_embeddings", tied_default),
    )


GPT2_FIELDS = dict(
    vocab_size="vocab_size", block_size="n_positions", n_layer="n_layer", n_head="n_head",
    n_embd="n_embd",
)  # fmt: skip
NEO_FIELDS = dict(
    vocab_size="vocab_size", block_size="max_position_embeddings", n_layer="num_layers",
    n_head="num_heads", n_embd="hidden_size",
)  # fmt: skip


def _gpt2_config(hf: dict[str, Any]) -> GPTConfig:
    if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("reorder_and_upcast_attn"):
        raise CheckpointError("gpt2 config.json: scale_attn_by_inverse_layer_idx is unsupported")
    return GPTConfig(
        **_hf_fields(hf, "gpt2", GPT2_FIELDS), **_common_fields(hf, tied_default=True),
        n_inner=hf.get("n_inner"), scale_attn=hf.get("scale_attn_weights", True),
    )  # fmt: skip


def _gpt_neo_config(hf: dict[str, Any]) -> GPTConfig:
    layers = hf.get("attention_layers") or [
        kind for pattern, repeat in _hf_fields(hf, "gpt_neo", {"t": "attention_types"})["t"]
        for _ in range(repeat) for kind in pattern
    ]  # fmt: skip
    return GPTConfig(
        **_hf_fields(hf, "gpt_neo", NEO_FIELDS), **_common_fields(hf, tied_default=True),
        n_inner=hf.get("intermediate_size"), qkv_bias=False, layer_types=tuple(layers),
        window_size=hf.get("window_size", 256), scale_attn=False,
    )  # fmt: skip


def _gptj_config(hf: dict[str, Any]) -> GPTConfig:
    return GPTConfig(
        **_hf_fields(hf, "gptj", GPT2_FIELDS), **_common_fields(hf, tied_default=False),
        n_inner=hf.get("n_inner"), qkv_bias=False, attn_proj_bias=False, position="rotary",
        rotary_dim=hf.get("rotary_dim"), parallel_residual=True, lm_head_bias=True,
    )  # fmt: skip


# ---- Hugging Face tensor names -> minigpt names -------------------------------------------------

# (pattern, replacement) applied in order; "#q" etc. mark one third of the fused c_attn matrix.
_RENAMES: dict[str, list[tuple[str, str]]] = {
    "gpt2": [],
    "gpt_neo": [
        (r"\.attn\.attention\.([qkv])_proj\.", r".attn.c_attn.#\1."),
        (r"\.attn\.attention\.out_proj\.", r".attn.c_proj."),
    ],
    "gptj": [
        (r"\.attn\.([qkv])_proj\.", r".attn.c_attn.#\1."),
        (r"\.attn\.out_proj\.", r".attn.c_proj."),
        (r"\.mlp\.fc_in\.", r".mlp.c_fc."),
        (r"\.mlp\.fc_out\.", r".mlp.c_proj."),
    ],
}
# Buffers some HF checkpoints carry that are not weights (causal masks, rotary tables).
_HF_BUFFERS = re.compile(r"\.attn\.(bias|masked_bias)$|\.attention\.(bias|masked_bias)$|inv_freq$")


def _convert_hf_state(
    model_type: str, hf_state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename HF tensors to minigpt's names; fuse q/k/v; transpose GPT-2's Conv1D weights."""
    state: dict[str, torch.Tensor] = {}
    qkv_parts: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
    for hf_name, tensor in hf_state.items():
        if _HF_BUFFERS.search(hf_name):
            continue
        name = hf_name.removeprefix("transformer.")
        for pattern, replacement in _RENAMES[model_type]:
            name = re.sub(pattern, replacement, name)
        if model_type == "gpt2" and name.endswith(GPT2_CONV1D):
            tensor = tensor.t()
        if ".#" in name:  # e.g. h.0.attn.c_attn.#q.weight
            fused, part = re.sub(r"#[qkv]\.", "", name), name.split("#")[1][0]
            qkv_parts.setdefault(fused, {})[part] = (hf_name, tensor)
        else:
            state[name] = tensor
    for fused, parts in qkv_parts.items():
        for part in "qkv":
            if part not in parts:
                some_name = next(iter(parts.values()))[0]
                missing = re.sub(r"[qkv]_proj", f"{part}_proj", some_name)
                raise CheckpointError(f"checkpoint is missing tensor {missing!r}")
        state[fused] = torch.cat([parts[p][1] for p in "qkv"], dim=0)
    return state


_HF_CONFIGS: dict[str, Callable[[dict[str, Any]], GPTConfig]] = {
    "gpt2": _gpt2_config,
    "gpt_neo": _gpt_neo_config,
    "gptj": _gptj_config,
}


# ---- loading ----------------------------------------------------------------------------------


def check_tensors(
    expected: dict[str, torch.Tensor],
    found: dict[str, torch.Tensor],
    source: str,
    ignore: frozenset[str] = frozenset(),
) -> None:
    """Strict match of `found` against `expected` names and shapes: a one-line CheckpointError
    for the first missing, mis-shaped or unexpected tensor, so nothing is half-loaded."""
    for name, param in expected.items():
        if name not in found:
            raise CheckpointError(f"{source} is missing tensor {name!r}")
        if found[name].shape != param.shape:
            raise CheckpointError(
                f"tensor {name!r} has shape {tuple(found[name].shape)} in {source} "
                f"but the model needs {tuple(param.shape)}"
            )
    extra = sorted(set(found) - set(expected) - ignore)
    if extra:
        raise CheckpointError(f"{source} has unexpected tensor {extra[0]!r} for this config")


def _build(config: GPTConfig, state: dict[str, torch.Tensor], dtype: torch.dtype) -> GPT:
    """Create the model without random init (meta device), then adopt the checkpoint tensors."""
    with torch.device("meta"):
        model = GPT(config)
    tied = config.tie_word_embeddings
    expected = minigpt_state_dict(model)  # a tied head is the embedding: stored once
    check_tensors(expected, state, "checkpoint", ignore=frozenset({"lm_head.weight"}))
    state = {k: state[k].to(dtype) for k in expected}
    model.load_state_dict(state, strict=not tied, assign=True)
    model.materialize_buffers(torch.device("cpu"))
    return model


def load_pretrained(
    path_or_name: str | Path, dtype: torch.dtype = torch.float32, **overrides: Any
) -> GPT:
    """Load a minigpt or HF-format checkpoint dir (or a hub name, online with the `hub` extra).

    `overrides` replace config fields that do not change tensor shapes (dropout, attn_impl...).
    """
    directory = Path(path_or_name)
    if not directory.exists():
        directory = _download_from_hub(str(path_or_name))
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is a file; pass the checkpoint directory")
    raw = read_json(directory / CONFIG_FILE)
    model_type = raw.pop("model_type", None)
    if model_type == "minigpt":
        try:
            config = GPTConfig.from_dict(raw)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None
        state = read_weights(directory)
    elif model_type in _HF_CONFIGS:
        config = _HF_CONFIGS[model_type](raw)
        state = _convert_hf_state(model_type, read_weights(directory))
    else:
        known = ", ".join(["minigpt", *_HF_CONFIGS])
        raise CheckpointError(
            f"{directory / CONFIG_FILE}: unknown model_type {model_type!r}; supported: {known}"
        )
    if overrides:
        config = GPTConfig.from_dict({**config.to_dict(), **overrides})
    return _build(config, state, dtype)


def load_tokenizer(directory: str | Path) -> Tokenizer | None:
    """The tokenizer saved beside a minigpt checkpoint, or None if there is none."""
    file = Path(directory) / TOKENIZER_FILE
    return Tokenizer.load(file) if file.is_file() else None


def _download_from_hub(name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(
            f"{name!r} is not a local directory, and downloading it from the Hugging Face hub "
            "needs the optional extra: pip install 'minigpt[hub]'"
        ) from None
    try:
        return Path(snapshot_download(repo_id=name, allow_patterns=HUB_FILES))
    except Exception as e:  # network, auth, unknown repo: all end the same way for the user
        raise CheckpointError(
            f"could not fetch {name!r} from the Hugging Face hub ({type(e).__name__}); "
            "check the name and your connection, or pass a local checkpoint directory"
        ) from None
