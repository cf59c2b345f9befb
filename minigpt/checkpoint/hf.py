"""Hugging Face checkpoints: gpt2, gpt_neo and gptj in, gpt2 out, and hub downloads.

Adding a model family touches this file only: a config converter in `_HF_CONFIGS` and its tensor
renames in `_RENAMES`. HF names map onto minigpt's as

    transformer.h.{l}.attn.attention.{q,k,v}_proj   -> h.{l}.attn.c_attn  (q, k, v fused, dim 0)
    GPT-2 Conv1D weights (in, out)                   -> nn.Linear weights (out, in): transposed
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from minigpt.checkpoint.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    MissingCheckpointError,
    minigpt_state_dict,
    read_weights,
    write_json,
    write_tensors,
)
from minigpt.model.config import GPTConfig
from minigpt.model.gpt import GPT

HUB_FILES = [CONFIG_FILE, "*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin*"]
GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def export_hf_gpt2(model: GPT, path: str | Path) -> None:
    """Write a GPT-2-shaped model as a Hugging Face `gpt2` checkpoint (GPT2LMHeadModel)."""
    cfg = model.config
    gpt2_shaped = all([
        cfg.position == "learned", not cfg.parallel_residual, cfg.bias, cfg.scale_attn,
        cfg.qkv_bias in (None, True), cfg.attn_proj_bias in (None, True),
        set(cfg.layer_types or ()) <= {"global"}, cfg.tie_word_embeddings, not cfg.lm_head_bias,
        cfg.attention == "causal",
    ])  # fmt: skip
    if not gpt2_shaped:
        raise CheckpointError(
            "only GPT-2-shaped models (causal attention, learned positions, dense layers, biases,"
            " tied head) can be exported to the HF gpt2 format"
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
SUPPORTED_HF_TYPES = tuple(_HF_CONFIGS)


def read_hf_checkpoint(
    directory: Path, hf_config: dict[str, Any]
) -> tuple[GPTConfig, dict[str, torch.Tensor]] | None:
    """(GPTConfig, minigpt-named tensors) of an HF checkpoint dir, or None for another format."""
    model_type = hf_config.get("model_type")
    if model_type not in _HF_CONFIGS:
        return None
    config = _HF_CONFIGS[model_type](hf_config)
    return config, _convert_hf_state(model_type, read_weights(directory))


def download_from_hub(name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingCheckpointError(
            f"no checkpoint at {name} locally, and fetching it from the Hugging Face hub needs the"
            " optional extra: pip install 'minigpt[hub]'"
        ) from None
    try:
        return Path(snapshot_download(repo_id=name, allow_patterns=HUB_FILES))
    except Exception as e:  # network, auth, unknown repo: all end the same way for the user
        raise MissingCheckpointError(
            f"no checkpoint at {name} locally, and fetching it from the Hugging Face hub failed"
            f" ({type(e).__name__}); check the name and your connection"
        ) from None
