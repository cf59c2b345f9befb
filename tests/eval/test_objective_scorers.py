"""Models trained with other objectives are scored with their own attention: a prefix LM reads
the context as its prefix; a bidirectional model has no left-to-right likelihood to score."""

import pytest
import torch

import minigpt
from minigpt.data.tokenizer import Tokenizer
from minigpt.eval.models import EvalModel
from minigpt.eval.scoring import Span, score_causal, score_prefix
from tests.eval.models import random_model

BYTES = Tokenizer.from_name("bytes")


def _two_block_prefix_lm() -> minigpt.GPT:
    # two blocks: with one, the scored positions would read the same first-layer keys either way
    torch.manual_seed(3)
    config = minigpt.GPTConfig(vocab_size=256, block_size=16, n_layer=2, n_head=2, n_embd=16,
                               attention="prefix")  # fmt: skip
    return minigpt.GPT(config).eval()


def test_a_prefix_lm_scores_the_continuation_given_the_whole_context_as_prefix():
    model = _two_block_prefix_lm()
    ids, n_context = [5, 9, 2, 7, 1, 4], 3
    [score] = score_prefix(model, [Span(ids, n_context)], batch_size=1)
    x = torch.tensor([ids[:-1]])
    with torch.no_grad():
        logits = model(x, prefix_len=torch.tensor([n_context])).logits[0]  # (T, V)
    logp = torch.log_softmax(logits.double(), dim=-1)
    expected = [logp[i - 1, ids[i]] for i in range(n_context, len(ids))]
    torch.testing.assert_close(score.logprobs, torch.stack(expected), rtol=0, atol=1e-6)
    # the context really is read both ways: scoring it causally gives other numbers
    [causal] = score_causal(model, [Span(ids, n_context)], batch_size=1)
    assert not torch.allclose(causal.logprobs, score.logprobs)


def test_prefix_scores_do_not_depend_on_the_batch():
    model = random_model(256, attention="prefix", seed=4)
    spans = [Span([1, 2, 3, 4, 5, 6, 7], 4), Span([8, 9, 10], 1), Span([3, 3, 3, 3], 2)]
    alone = [score_prefix(model, [s], 1)[0].logprobs for s in spans]
    together = [s.logprobs for s in score_prefix(model, spans, 3)]
    for a, b in zip(alone, together, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_each_attention_mode_gets_its_objectives_scorer():
    prefix = EvalModel("p", random_model(256, attention="prefix"), BYTES)
    causal = EvalModel("c", random_model(256), BYTES)
    assert list(prefix.scorers) == ["prefix_lm"] and list(causal.scorers) == ["causal"]
    encoder = EvalModel("mlm", random_model(256, attention="bidirectional"), BYTES)
    with pytest.raises(ValueError, match="mlm is a bidirectional"):
        encoder.scorers  # noqa: B018
