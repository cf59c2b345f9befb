"""Mean pooling: the feature is the mean hidden state of the real tokens, padding never counts,
and the choice survives save -> load."""

import pytest
import torch

import minigpt
from minigpt.finetune.classifier import GPTClassifier, load_classifier, save_classifier
from minigpt.finetune.peft import MethodConfig
from tests.tiny_models import tiny_gpt_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: no thread pool


def _classifier(pooling: str) -> GPTClassifier:
    torch.manual_seed(0)
    gpt = minigpt.GPT(tiny_gpt_config(vocab_size=256)).eval()
    return GPTClassifier(gpt, ("neg", "pos"), pooling=pooling).eval()


def test_mean_pooling_averages_the_real_tokens_by_hand():
    model = _classifier("mean")
    ids = torch.randint(256, (2, 6))
    lengths = torch.tensor([6, 3])
    h = model.hidden_states(ids, lengths)
    expected = torch.stack([h[0].mean(0), h[1, :3].mean(0)])
    torch.testing.assert_close(model.pool(h, lengths), expected)
    padded = ids.clone()
    padded[1, 3:] = 0  # other padding, same logits
    with torch.no_grad():
        torch.testing.assert_close(model(ids, lengths).logits, model(padded, lengths).logits)


def test_pooling_is_saved_and_loaded(tmp_path):
    model = _classifier("mean")
    model.method = MethodConfig(method="full")
    save_classifier(model, tmp_path)
    loaded, _ = load_classifier(tmp_path)
    assert loaded.pooling == "mean"


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(ValueError, match="pooling='max': choose one of auto, last, mean"):
        _classifier("max")


def test_auto_pooling_follows_the_attention_mode():
    causal = GPTClassifier(minigpt.GPT(tiny_gpt_config(vocab_size=256)), ("a", "b"))
    encoder = minigpt.GPT(tiny_gpt_config(vocab_size=256, attention="bidirectional"))
    assert (causal.pooling, GPTClassifier(encoder, ("a", "b")).pooling) == ("last", "mean")
