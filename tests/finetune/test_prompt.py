"""Prompt-based fine-tuning: the class scores are the LM's own logits (masked LM) or next-token
log-probabilities (causal, prefix) at the label words, by hand; masked and causal bases both
learn; save -> load -> predict keeps the scores; bad templates and words are one-line errors."""

import pytest
import torch

import finetune
import minigpt
from minigpt.data.objectives import MASK_TOKEN
from minigpt.data.tokenizer import Tokenizer
from minigpt.finetune.classifier import GPTClassifier, load_classifier, save_classifier
from minigpt.finetune.peft import MethodConfig
from minigpt.finetune.prompt import make_prompt
from tests.tiny_models import tiny_gpt_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: no thread pool

TEMPLATE = "Say {text} =[MASK]!"  # bytes: "-" and "+" are one token each
WORDS = ("-", "+")
TEXTS = ["the film no", "a cast"]


def _tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_name("bytes")
    tokenizer.add_special_tokens([MASK_TOKEN])  # id 256
    return tokenizer


def _gpt(attention: str) -> minigpt.GPT:
    torch.manual_seed(0)
    config = tiny_gpt_config(vocab_size=320, n_vocab=256, attention=attention, dropout=0.0)
    return minigpt.GPT(config).eval()


def _classifier(attention: str, method: str = "full", base_dir=None) -> GPTClassifier:
    gpt, tokenizer = _gpt(attention), _tokenizer()
    if base_dir is not None:  # frozen-base methods save a reference to it
        gpt.save_pretrained(base_dir, tokenizer)
    prompt = make_prompt(tokenizer, gpt.config, TEMPLATE, WORDS)
    method = MethodConfig(method=method)
    return GPTClassifier(gpt, ("neg", "pos"), method=method, base_dir=base_dir, prompt=prompt)


def _batch(texts):
    ids = [list(t.encode()) for t in texts]
    lengths = torch.tensor([len(i) for i in ids])
    rows = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for b, row in enumerate(ids):
        rows[b, : len(row)] = torch.tensor(row)
    return rows, lengths


@torch.no_grad()
def test_masked_lm_class_scores_are_its_logits_at_the_label_words_by_hand():
    model = _classifier("bidirectional").eval()
    scores = model(*_batch(TEXTS)).logits  # (2, 2)
    for text, row in zip(TEXTS, scores, strict=True):
        ids = list(b"Say " + text.encode() + b" =") + [256] + list(b"!")  # [MASK] is id 256
        logits = model.gpt(torch.tensor([ids])).logits[0, len(ids) - 2]  # at the [MASK]
        torch.testing.assert_close(row, logits[[ord("-"), ord("+")]])


@pytest.mark.parametrize("attention", ["causal", "prefix"])
@torch.no_grad()
def test_causal_and_prefix_scores_are_next_token_log_probs_after_the_text(attention):
    model = _classifier(attention).eval()
    scores = model(*_batch(TEXTS)).logits
    for text, row in zip(TEXTS, scores, strict=True):
        ids = torch.tensor([list(b"Say " + text.encode() + b" =")])  # cut before the slot
        prefix = torch.tensor([ids.size(1)]) if attention == "prefix" else None
        logits = model.gpt(ids, prefix_len=prefix).logits[0, -1, :256]  # the text ids only
        torch.testing.assert_close(row, logits.log_softmax(-1)[[ord("-"), ord("+")]])


@torch.no_grad()
def test_long_texts_are_cut_so_the_template_still_fits():
    model = _classifier("bidirectional").eval()
    ids, lengths = _batch(["x" * 40, "short"])  # block_size 32
    wrapped, new_lengths = model.prompt.wrap(ids, lengths)
    assert new_lengths.tolist() == [32, 4 + 5 + 4]
    assert bytes(wrapped[0, :4].tolist()) == b"Say " and wrapped[0, -1].item() == ord("!")
    assert wrapped[0, -2].item() == 256 and wrapped[1, 11].item() == 256
    assert model(ids, lengths).logits.shape == (2, 2)


@pytest.mark.parametrize("attention,method", [("bidirectional", "full"), ("causal", "lora")])
def test_save_load_predict_give_identical_scores(attention, method, tmp_path, capsys):
    model = _classifier(attention, method, tmp_path / "base")
    with torch.no_grad():  # trained-looking weights: nothing at its initial value
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    save_classifier(model, tmp_path / "clf", _tokenizer())
    loaded, tokenizer = load_classifier(tmp_path / "clf")
    assert loaded.head is None and loaded.prompt.prompt == model.prompt.prompt
    expected = model.predict_proba(TEXTS, tokenizer)
    assert torch.equal(loaded.predict_proba(TEXTS, tokenizer), expected)
    capsys.readouterr()
    assert finetune.main(["predict", f"--out_dir={tmp_path / 'clf'}", "--text", TEXTS[0]]) == 0
    printed = capsys.readouterr().out
    assert f"neg {expected[0, 0]:.3f}, pos {expected[0, 1]:.3f}" in printed


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
@pytest.mark.parametrize(
    "method", [["--method=prompt"], ["--method=lora", "--readout=prompt"]], ids=["prompt", "lora"]
)  # --method=prompt: every weight through the prompt readout
def test_masked_and_causal_bases_learn_through_the_prompt(attention, method, toy, tmp_path):
    base = tmp_path / "base"
    _gpt(attention).save_pretrained(base, _tokenizer())
    args = [f"--init_from={base}", f"--data_dir={toy}", f"--out_dir={tmp_path / 'clf'}",
            "--label_column=sentiment", "--epochs=25", "--batch_size=4", "--dropout=0",
            "--patience=0", "--progress=False", "--learning_rate=3e-3", "--seed=0",
            "--threads=1", f"--template={TEMPLATE}", "--label_words=-,+", *method]  # fmt: skip
    assert finetune.main(args) == 0
    model, tokenizer = load_classifier(tmp_path / "clf")
    probs = model.predict_proba(["the story yes", "the story no"], tokenizer)
    assert probs.argmax(-1).tolist() == [1, 0]  # pos, neg


def test_bad_templates_and_label_words_are_one_line_errors(toy, tmp_path, capsys):
    _gpt("bidirectional").save_pretrained(tmp_path / "base", _tokenizer())
    no_mask = tmp_path / "no-mask"
    _gpt("bidirectional").save_pretrained(no_mask, Tokenizer.from_name("bytes"))
    args = [f"--init_from={tmp_path / 'base'}", f"--data_dir={toy}", "--label_column=sentiment",
            f"--out_dir={tmp_path / 'clf'}", "--progress=False", "--readout=prompt"]  # fmt: skip
    words, template = "--label_words=-,+", f"--template={TEMPLATE}"
    cases = {
        ("--label_words=no,+", template): "label word 'no' is 2 tokens ['n', 'o'] in the bytes",
        ("--label_words=-,+,=", template): "3 label words ['-', '+', '='] for 2 labels",
        (words, "--template={text} [MASK] {text}"): "{text} once and [MASK] once after it",
        (words, "--template=[MASK] {text}"): "{text} once and [MASK] once after it",
        (words, template, f"--init_from={no_mask}"): "its tokenizer has no [MASK] token",
    }
    for flags, message in cases.items():
        assert finetune.main([*args, *flags]) == 1, flags
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert finetune.main([*args, "--method=head"]) == 2
    assert "--method=head would train nothing" in capsys.readouterr().err
