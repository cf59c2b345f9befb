"""GPTClassifier: last-token pooling under right padding, the GPT-1 auxiliary loss, checkpoints."""

import json

import pytest
import torch
import torch.nn.functional as F

import minigpt
from minigpt.data.tokenizer import Tokenizer
from minigpt.finetune.classifier import (
    GPTClassifier,
    export_merged,
    load_classifier,
    next_token_targets,
    save_classifier,
)
from minigpt.finetune.peft import MethodConfig, lora_layers
from minigpt.model.loss import IGNORE_INDEX
from tests.tiny_models import VARIANTS, tiny_gpt_config

LABELS = ("neg", "neutral", "pos")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: no thread pool


def _gpt(variant: str = "gpt2", **overrides) -> minigpt.GPT:
    torch.manual_seed(0)
    cfg = tiny_gpt_config(**{**VARIANTS[variant], "vocab_size": 256, **overrides})
    return minigpt.GPT(cfg).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded rows of lengths 7, 4 and 1 (pad id 0)."""
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(1, 256, (3, 7), generator=g)
    lengths = torch.tensor([7, 4, 1])
    idx[1, 4:] = 0
    idx[2, 1:] = 0
    return idx, lengths


@pytest.mark.parametrize("impl", ["sdpa", "math"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_padded_and_unpadded_inputs_give_the_same_logits(variant, impl):
    model = GPTClassifier(_gpt(variant, attn_impl=impl), LABELS).eval()
    idx, lengths = _batch()
    padded = model(idx, lengths).logits
    for row in range(len(idx)):
        n = int(lengths[row])
        alone = model(idx[row : row + 1, :n], lengths[row : row + 1]).logits
        torch.testing.assert_close(alone[0], padded[row], atol=1e-5, rtol=1e-5)


def test_the_feature_is_the_final_norm_state_of_the_last_real_token():
    model = GPTClassifier(_gpt(), LABELS).eval()
    idx, lengths = _batch()
    h = model.gpt.hidden_states(idx)  # (B, T, C)
    expected = torch.stack([h[0, 6], h[1, 3], h[2, 0]]) @ model.head.weight.T + model.head.bias
    torch.testing.assert_close(model(idx, lengths).logits, expected)


def test_auxiliary_lm_loss_is_gpt1_l3_over_real_tokens_only():
    """L3 = L2 + lambda L1, where L1 is the mean next-token NLL over real tokens: it must equal
    the LM loss of the unpadded rows, whatever the padding holds."""
    model = GPTClassifier(_gpt(), LABELS).eval()
    idx, lengths = _batch()
    labels = torch.tensor([0, 2, 1])
    out = model(idx, lengths, labels, aux_lm_weight=0.5)
    l2 = F.cross_entropy(out.logits, labels)
    nll, count = 0.0, 0
    for row in range(2):  # the length-1 row has no next token to predict
        ids = idx[row : row + 1, : lengths[row]]
        logits = model.gpt(ids).logits[0, :-1]
        nll += F.cross_entropy(logits, ids[0, 1:], reduction="sum")
        count += int(lengths[row]) - 1
    torch.testing.assert_close(out.lm_loss, nll / count)
    torch.testing.assert_close(out.loss, l2 + 0.5 * out.lm_loss)
    assert model(idx, lengths, labels).lm_loss is None


def test_next_token_targets_ignore_padding_and_the_last_token():
    idx, lengths = _batch()
    targets = next_token_targets(idx, lengths)
    assert targets[0].tolist() == [*idx[0, 1:].tolist(), IGNORE_INDEX]
    assert targets[1].tolist() == [*idx[1, 1:4].tolist(), *[IGNORE_INDEX] * 4]
    assert (targets[2] == IGNORE_INDEX).all()


def test_empty_text_and_unknown_label_are_clear_errors():
    model = GPTClassifier(_gpt(), LABELS)
    tok = Tokenizer.from_name("bytes")
    with pytest.raises(ValueError, match="empty text"):
        model.predict_proba(["fine", "  "], tok)
    with pytest.raises(ValueError, match="length 0"):
        model(torch.zeros(2, 3, dtype=torch.long), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match=r"unknown label 'great'.*\['neg', 'neutral', 'pos'\]"):
        model.label_index("great")
    assert model.label_index("pos") == 2


METHODS = [
    ("head", {}),
    ("top", {"trainable_blocks": 1}),
    ("full", {}),
    ("lora", {"lora_targets": ("q", "v", "proj")}),
    ("adapter", {"adapter_size": 4}),
    ("prefix", {"n_prefix": 2}),
]


def _trained_looking(method: str, knobs: dict, base_dir) -> GPTClassifier:
    """A classifier over a saved base whose trainable tensors are all perturbed, so that a
    reload that dropped or mixed up any of them would change the predictions."""
    model = GPTClassifier.from_pretrained(
        base_dir, LABELS, ("bad", "meh", "good"), MethodConfig(method=method, **knobs)
    )
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


@pytest.fixture
def base_dir(tmp_path):
    path = tmp_path / "base"
    _gpt().save_pretrained(path, Tokenizer.from_name("bytes"))
    return path


@pytest.mark.parametrize("method, knobs", METHODS)
def test_save_load_gives_identical_predictions(method, knobs, base_dir, tmp_path):
    model = _trained_looking(method, knobs, base_dir)
    save_classifier(model, tmp_path / "clf", Tokenizer.from_name("bytes"))
    meta = json.loads((tmp_path / "clf" / "classifier.json").read_text())
    frozen = method in ("head", "lora", "adapter", "prefix")
    assert (meta["base"] is not None) == frozen
    assert (tmp_path / "clf" / "model.safetensors").exists() != frozen  # PEFT: no base weights
    loaded, tok = load_classifier(tmp_path / "clf", num_labels=3)
    assert loaded.labels == LABELS and loaded.label_names == ("bad", "meh", "good")
    assert tok.name == "bytes"
    texts = ["a fine film", "dull", "x"]
    assert torch.equal(loaded.predict_proba(texts, tok), model.predict_proba(texts, tok))


def test_peft_checkpoint_holds_only_trainable_tensors(base_dir, tmp_path):
    from safetensors.torch import load_file

    model = _trained_looking("lora", {"lora_targets": ("q", "v")}, base_dir)
    save_classifier(model, tmp_path / "clf")
    saved = load_file(str(tmp_path / "clf" / "classifier.safetensors"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(saved) == trainable
    assert all("lora_" in n or n.startswith("head.") for n in saved)


def test_reload_errors_are_one_clear_line(base_dir, tmp_path):
    model = _trained_looking("lora", {}, base_dir)
    save_classifier(model, tmp_path / "clf")
    with pytest.raises(minigpt.CheckpointError, match=r"has 3 labels .* num_labels=5"):
        load_classifier(tmp_path / "clf", num_labels=5)
    moved = tmp_path / "moved"
    base_dir.rename(moved)
    with pytest.raises(minigpt.CheckpointError, match="base checkpoint .* is missing"):
        load_classifier(tmp_path / "clf")
    loaded, _ = load_classifier(tmp_path / "clf", base_dir=moved)  # pointing at the new place
    assert lora_layers(loaded)
    with pytest.raises(minigpt.CheckpointError, match="not a minigpt classifier"):
        load_classifier(moved)  # a GPT checkpoint, not a classifier


def test_exported_merged_lora_model_needs_no_base_and_predicts_the_same(base_dir, tmp_path):
    model = _trained_looking("lora", {"lora_targets": ("q", "k", "mlp")}, base_dir)
    tok = Tokenizer.from_name("bytes")
    export_merged(model, tmp_path / "merged", tok)
    assert lora_layers(model)  # exporting leaves the trained model as it was
    base_dir.rename(tmp_path / "gone")
    merged, tok = load_classifier(tmp_path / "merged")
    assert not lora_layers(merged)
    texts = ["a fine film", "dull"]
    torch.testing.assert_close(merged.predict_proba(texts, tok), model.predict_proba(texts, tok))
    gpt = minigpt.GPT.from_pretrained(tmp_path / "merged")  # also a plain LM checkpoint
    assert gpt.num_params() == _gpt().num_params()


def test_adapters_cannot_be_merged(base_dir, tmp_path):
    model = _trained_looking("adapter", {"adapter_size": 4}, base_dir)
    with pytest.raises(ValueError, match="cannot be merged"):
        export_merged(model, tmp_path / "merged")


def test_builds_on_a_hugging_face_gpt2_checkpoint(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=32, vocab_size=256)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "hf")
    model = GPTClassifier.from_pretrained(tmp_path / "hf", ["a", "b"], method=MethodConfig("lora"))
    idx, lengths = _batch()
    assert model(idx, lengths).logits.shape == (3, 2)
    save_classifier(model, tmp_path / "clf")
    loaded, _ = load_classifier(tmp_path / "clf")
    assert torch.equal(loaded.eval()(idx, lengths).logits, model.eval()(idx, lengths).logits)
