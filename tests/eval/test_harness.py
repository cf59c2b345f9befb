"""The "minigpt" model of lm-evaluation-harness, driven by the harness itself on a local task."""

import json
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "lm_eval", reason="lm-evaluation-harness is not installed: pip install -e '.[eval]'"
)

import lm_eval  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from minigpt.data.tokenizer import Tokenizer  # noqa: E402
from minigpt.eval import ChoiceItem, evaluate_task, score_documents  # noqa: E402
from minigpt.eval.harness import MiniGPTLM  # noqa: E402
from tests.eval.models import full_pass_logprobs, random_model  # noqa: E402

TOKENIZER = Tokenizer.char_from_text(string.printable)  # 100 characters (+ unk), one per token

WORDS = ("good", "bad", "fine", "awful", "great")
TASK_YAML = """\
task: minigpt_local_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("harness") / "model"
    random_model(TOKENIZER.n_vocab, block_size=64, seed=3).save_pretrained(directory, TOKENIZER)
    return directory


def make_items(n: int = 24) -> list[ChoiceItem]:
    rng = random.Random(0)
    return [
        ChoiceItem(f"Review {i}: it was", tuple(" " + w for w in rng.sample(WORDS, 3)), i % 3)
        for i in range(n)
    ]  # fmt: skip


def write_task(directory, items) -> None:
    data = directory / "items.jsonl"
    rows = [{"context": it.context, "choices": list(it.choices), "label": it.label} for it in items]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (directory / "local_choice.yaml").write_text(TASK_YAML.format(data=data))


def test_the_harness_finds_minigpt_by_name(checkpoint):
    lm = get_model("minigpt").create_from_arg_string(
        f"pretrained={checkpoint},batch_size=4", {"device": "cpu"}
    )
    assert isinstance(lm, MiniGPTLM) and lm.batch_size == 4


def test_harness_accuracy_equals_our_scorer_on_a_local_task(checkpoint, tmp_path):
    items = make_items()
    write_task(tmp_path, items)
    lm = MiniGPTLM(str(checkpoint), batch_size=5, device="cpu", dtype="float32")
    results = lm_eval.simple_evaluate(
        model=lm, tasks=["minigpt_local_choice"], bootstrap_iters=0, log_samples=False,
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
    )["results"]["minigpt_local_choice"]  # fmt: skip
    ours = evaluate_task(lm.loaded.model, lm.loaded.tokenizer, items, batch_size=3)
    assert 0 < ours.accuracy < 1  # the comparison means something
    assert results["acc,none"] == pytest.approx(ours.accuracy, abs=1e-12)
    assert results["acc_norm,none"] == pytest.approx(ours.accuracy_norm, abs=1e-12)


def test_loglikelihood_is_the_models_own_log_prob(checkpoint):
    lm = MiniGPTLM(str(checkpoint), batch_size=2, device="cpu", dtype="float32")
    pairs = [("The plot was", " thin"), ("", "Hello"), ("A" * 100, " B")]  # A*100: cut to fit
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    got = lm.loglikelihood(requests)
    model = lm.loaded.model
    for (context, continuation), (logprob, _) in zip(pairs, got, strict=True):
        ids = TOKENIZER.encode(context or "\n\n") + TOKENIZER.encode(continuation)
        ids = ids[-65:]  # block_size 64 + the token predicted last
        expected = full_pass_logprobs(model, ids)[-len(continuation) :].sum()
        assert logprob == pytest.approx(float(expected), abs=1e-5)


def test_rolling_loglikelihood_uses_the_bpb_windows(checkpoint):
    lm = MiniGPTLM(str(checkpoint), batch_size=2, device="cpu", dtype="float32", stride=16)
    text = "It was the best of times, it was the worst of times. " * 3
    (got,) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)])
    model, tok = lm.loaded.model, lm.loaded.tokenizer
    assert got == pytest.approx(-score_documents(model, tok, [text], stride=16).nll, abs=1e-9)


def test_generation_stops_at_until_and_max_gen_toks(checkpoint):
    lm = MiniGPTLM(str(checkpoint), device="cpu", dtype="float32")
    free = lm.generate_until([Instance("generate_until", {}, ("Once", {"max_gen_toks": 12}), 0)])
    assert len(free[0]) == 12  # one character per token, and a char tokenizer has no eot
    stop = free[0][3:5]  # a string the greedy text is known to contain
    request = Instance("generate_until", {}, ("Once", {"until": [stop], "max_gen_toks": 12}), 0)
    (cut,) = lm.generate_until([request])
    assert cut == free[0][: free[0].index(stop)]


def test_eval_py_runs_local_harness_tasks_beside_its_own_scorer(checkpoint, tmp_path):
    items = make_items()
    write_task(tmp_path, items)
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(root / "eval.py"), f"--init_from={checkpoint}", "--dataset=",
         f"--tasks={tmp_path / 'items.jsonl'}", "--harness_tasks=minigpt_local_choice",
         f"--harness_include={tmp_path}", "--device=cpu", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ours, theirs = report["results"]
    assert theirs["on"] == "harness:minigpt_local_choice"
    assert (theirs["acc"], theirs["acc_norm"]) == (ours["accuracy"], ours["accuracy_norm"])
    harness = report["harness"][str(checkpoint)]["minigpt_local_choice"]
    assert harness["acc,none"] == theirs["acc"]
