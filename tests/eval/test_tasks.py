"""Zero- and few-shot multiple choice: log-likelihoods, accuracy and its length-normalised form."""

import json
import math

import pytest

from minigpt.data.tokenizer import Tokenizer
from minigpt.eval import ChoiceItem, evaluate_task, fewshot_items, load_task, score_continuations
from minigpt.eval.tasks import continuation_span
from tests.eval.models import full_pass_logprobs, random_model, unigram_model
from tests.prepare_scripts import load_script

BYTES = Tokenizer.from_name("bytes")
# p(x) = 1/2 and p(y) = 1/4 at every position, so log p("xxx") = 3 log 1/2 < log p("y") = 2 log 1/2,
# while per character "xxx" (log 1/2) beats "y" (2 log 1/2).
X, Y = ord("x"), ord("y")
UNIGRAM = unigram_model({X: 0.5, Y: 0.25})


def test_a_continuation_scores_the_sum_of_its_token_log_probs():
    (xxx, y) = score_continuations(UNIGRAM, BYTES, [("ctx", "xxx"), ("", "y")])
    assert xxx.total == pytest.approx(3 * math.log(0.5), abs=1e-6)
    assert y.total == pytest.approx(math.log(0.25), abs=1e-6)
    assert xxx.greedy and not y.greedy  # argmax is always "x"


def test_accuracy_sums_log_probs_and_accuracy_norm_divides_by_characters():
    items = [
        ChoiceItem("a", ("y", "xxx"), 0),  # sum picks "y" (right), per char picks "xxx" (wrong)
        ChoiceItem("b", ("x", "y"), 0),  # both pick "x": right
        ChoiceItem("c", ("x", "y"), 1),  # both pick "x": wrong
    ]
    result = evaluate_task(UNIGRAM, BYTES, items, batch_size=2)
    assert (result.n, result.accuracy, result.accuracy_norm) == (3, 2 / 3, 1 / 3)


def test_continuation_log_probs_match_one_full_forward_pass():
    model = random_model(256)
    (score,) = score_continuations(model, BYTES, [("The film was", " great")])
    ids = BYTES.encode("The film was great")
    expected = full_pass_logprobs(model, ids)[-len(" great") :]
    assert score.logprobs.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_long_context_loses_its_oldest_tokens():
    span = continuation_span(BYTES, "0123456789", "ab", limit=6)
    assert list(span.ids) == BYTES.encode("6789ab") and span.n_context == 4


def test_few_shot_examples_come_from_the_pool_with_a_fixed_seed():
    pool = [ChoiceItem(f"Q{i}:", (" yes", " no"), i % 2) for i in range(10)]
    items = [ChoiceItem("Q:", (" yes", " no"), 0)] * 3
    first = fewshot_items(items, pool, 2, seed=7)
    assert first == fewshot_items(items, pool, 2, seed=7)
    assert first != fewshot_items(items, pool, 2, seed=8)
    shots = first[0].context.split("\n\n")
    assert len(shots) == 3 and shots[-1] == "Q:"
    for shot in shots[:2]:
        number = int(shot[1 : shot.index(":")])
        assert shot == f"Q{number}:" + (" yes", " no")[number % 2]  # solved with its own label
    assert fewshot_items(items, pool, 0, seed=7) == items


def test_task_files_are_checked_line_by_line(tmp_path):
    path = tmp_path / "task.jsonl"
    path.write_text("")
    with pytest.raises(ValueError, match="task.jsonl is empty"):
        load_task(path)
    good = {"context": "c", "choices": [" a", " b"], "label": 1}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "label": 2}) + "\n")
    with pytest.raises(ValueError, match=r"task.jsonl:2: need >= 2 non-empty string choices"):
        load_task(path)
    path.write_text(json.dumps(good) + "\n\n")
    assert load_task(path) == [ChoiceItem("c", (" a", " b"), 1)]


def test_movie_review_items_name_every_rating_word_in_the_prompt():
    prepare = load_script("movie_reviews")
    row = {"id": "1_1", "text": "a gorgeous, heartfelt film", "rating": 3.1, "label5": 4}
    item = prepare.task_item(row)
    assert item["choices"] == [" very negative", " negative", " neutral", " positive",
                               " very positive"]  # fmt: skip
    assert item["label"] == 4
    assert item["context"].startswith("Review: a gorgeous, heartfelt film\n")
    assert all(choice.strip() in item["context"] for choice in item["choices"])
