"""Bits per byte: sliding windows, byte counts across tokenizers, batch-size independence."""

import math

import pytest
import torch

from minigpt.checkpoint import check_vocab
from minigpt.data.prepare import prepare_documents
from minigpt.data.tokenizer import Tokenizer
from minigpt.eval import Texts, load_texts, score_documents, window_bounds
from tests.eval.models import full_pass_logprobs, random_model

TEXT = "Shall I compare thee to a summer's day? Thou art more lovely — and more temperate, café."


@pytest.mark.parametrize("n, window, stride", [(2, 4, 4), (10, 4, 1), (50, 8, 3), (33, 8, 8)])
def test_every_token_but_the_first_is_scored_once_with_the_promised_context(n, window, stride):
    scored = []
    for start, first_new, stop in window_bounds(n, window, stride):
        assert stop - start <= window + 1  # the inputs s[start:stop-1] fit the window
        assert first_new - start >= min(first_new, window - stride + 1)
        scored += range(first_new, stop)
    assert scored == list(range(1, n))


def test_sliding_windows_sum_to_one_full_pass_when_the_text_fits():
    tokenizer = Tokenizer.from_name("bytes")
    model = random_model(256, block_size=128)
    ids = [ord("\n"), ord("\n"), *tokenizer.encode(TEXT[:60])]  # separator, then the document
    expected = -full_pass_logprobs(model, ids)[1:].sum()  # the separator's "\n" is not scored
    for stride in (1, 7, 128):
        score = score_documents(model, tokenizer, [TEXT[:60]], stride=stride, batch_size=3)
        assert score.n_tokens == 60
        assert score.nll == pytest.approx(float(expected), rel=1e-6)


def test_a_long_text_scores_each_token_with_its_last_window_of_context():
    tokenizer = Tokenizer.from_name("bytes")
    model = random_model(256, block_size=16)
    ids = [10, 10, *tokenizer.encode(TEXT)]
    window = 12
    expected = 0.0
    for i in range(2, len(ids)):  # stride 1: token i sees the `window` tokens before it
        context = ids[max(0, i - window) : i + 1]
        expected -= float(full_pass_logprobs(model, context)[-1])
    score = score_documents(model, tokenizer, [TEXT], window=window, stride=1, batch_size=5)
    assert score.nll == pytest.approx(expected, rel=1e-5)


def test_char_and_bpe_models_report_bpb_over_the_same_byte_count():
    char = Tokenizer.char_from_text(TEXT + "\n")
    bpe = Tokenizer.from_name("gpt2")
    results = {}
    for tokenizer in (char, bpe):
        model = random_model(tokenizer.n_vocab, block_size=64)
        results[tokenizer.name] = score_documents(model, tokenizer, [TEXT, TEXT[:20]])
    n_bytes = len(TEXT.encode("utf-8")) + 20  # "—" and "é" are 3 and 2 bytes
    assert results["char"].n_tokens == len(TEXT) + 20
    assert results["gpt2"].n_tokens == len(bpe.encode(TEXT)) + len(bpe.encode(TEXT[:20]))
    for score in results.values():
        assert score.n_bytes == n_bytes == 111
        assert score.bits_per_byte == score.nll / math.log(2) / n_bytes
        assert score.perplexity == pytest.approx(math.exp(score.nll / score.n_tokens))


def test_result_does_not_depend_on_batch_size():
    tokenizer = Tokenizer.from_name("gpt2")
    model = random_model(tokenizer.n_vocab, block_size=16)
    docs = [TEXT, TEXT.upper(), "a short one"]
    scores = [score_documents(model, tokenizer, docs, batch_size=b).nll for b in (1, 3, 64)]
    assert scores[1] == pytest.approx(scores[0], rel=1e-6)
    assert scores[2] == pytest.approx(scores[0], rel=1e-6)


def test_padded_vocabulary_rows_get_no_probability():
    tokenizer = Tokenizer.from_name("bytes")
    padded = random_model(320)
    padded.config.n_vocab = 256
    with torch.no_grad():
        padded.lm_head.weight[256:] = 0  # make the padding logits count if they were not masked
    exact = random_model(256)
    state = {k: v[:256] if v.size(0) == 320 else v for k, v in padded.state_dict().items()}
    exact.load_state_dict(state)
    a = score_documents(padded, tokenizer, [TEXT])
    b = score_documents(exact, tokenizer, [TEXT])
    assert a.nll == pytest.approx(b.nll, rel=1e-6)


def test_a_prepared_bpe_dataset_decodes_back_to_its_documents(tmp_path):
    docs = ["First document.\nTwo lines.", "Second — with a dash.", "Third."]
    prepare_documents(docs, "gpt2", tmp_path / "tiny", source={"test": True}, val_fraction=0.99)
    texts = load_texts(str(tmp_path / "tiny"))
    assert texts.name == "tiny"
    assert texts.documents[-2:] == docs[-2:]  # the val split starts inside the first document
    assert docs[0].endswith(texts.documents[0])


def test_a_prepared_char_dataset_is_one_document(tmp_path):
    prepare_documents(["abc", "déf"], "char", tmp_path / "c", source={}, val_fraction=0.5)
    # the stream "abc\n\ndéf\n\n" has 10 tokens; val is the last 5, decoded whole
    assert load_texts(str(tmp_path / "c")).documents == ["déf\n\n"]


def test_truncated_texts_keep_whole_characters():
    texts = Texts("t", ["ab", "é€x"])
    assert texts.truncated(4).documents == ["ab", "é"]  # "€" would be cut inside its 3 bytes
    assert texts.truncated(0).documents == ["ab", "é€x"]


@pytest.mark.parametrize(
    "spec, message",
    [("no_such_data", "unknown dataset 'no_such_data'"), ("empty.txt", "empty.txt is empty")],
)
def test_bad_datasets_are_one_line_errors(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match=message) as error:
        load_texts(spec)
    assert "\n" not in str(error.value)


def test_a_tokenizer_with_ids_the_model_lacks_is_a_mismatch():
    model = random_model(100)
    check_vocab(model, Tokenizer.char_from_text("".join(map(chr, range(65, 164)))), "m")  # 99+unk
    with pytest.raises(ValueError, match="tokenizer mismatch: m was built for 100 token ids"):
        check_vocab(model, Tokenizer.from_name("gpt2"), "m")
