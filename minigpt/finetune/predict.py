"""Classify texts with a saved classifier: `python finetune.py predict --out_dir=DIR --text ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minigpt.checkpoint import CheckpointError
from minigpt.device import autocast, resolve_device, resolve_dtype
from minigpt.finetune.classifier import load_classifier
from minigpt.finetune.config import PredictConfig


def predict(cfg: PredictConfig) -> list[dict[str, Any]]:
    """Classify `--text` / `--file` with the classifier in `--out_dir`; prints and returns
    [{"text", "label", "probs": {name: p}}]."""
    texts = [cfg.text] if cfg.text else []
    if cfg.file:
        lines = Path(cfg.file).read_text(encoding="utf-8").splitlines()
        texts += [line for line in lines if line.strip()]
    device = resolve_device(cfg.compute.device)
    model, tokenizer = load_classifier(cfg.out_dir, base_dir=cfg.base or None, device=device)
    if tokenizer is None:
        raise CheckpointError(f"{cfg.out_dir} has no tokenizer_spec.json to encode texts with")
    with autocast(device, resolve_dtype(cfg.compute.dtype, device)):
        probs = model.predict_proba(texts, tokenizer, cfg.batch_size)
    results = []
    for text, p in zip(texts, probs.tolist(), strict=True):
        best = max(range(len(p)), key=p.__getitem__)
        ranked = ", ".join(f"{n} {q:.3f}" for n, q in zip(model.label_names, p, strict=True))
        print(f"{model.label_names[best]}\t[{ranked}]\t{text}")
        results.append({"text": text, "label": model.label_names[best],
                        "probs": dict(zip(model.label_names, p, strict=True))})  # fmt: skip
    return results
