"""bench/compare.py: eval.py over several checkpoints, into the README's "models compared" table."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compare_writes_one_table_row_per_scored_model(files, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- models-compared:start -->\nold\n<!-- models-compared:end -->\nend\n")
    finetuned = tmp_path / "out-finetune" / "metrics.json"  # what finetune.py writes
    finetuned.parent.mkdir()
    metrics = {"base": str(files / "char"), "config": {"label_column": "label5"},
               "test": {"accuracy": 0.4321}}  # fmt: skip
    finetuned.write_text(json.dumps(metrics))
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), f"--models={files / 'char'},nowhere",
         f"--datasets={files / 'verse.txt'}", f"--task={files / 'task.jsonl'}", "--device=cpu",
         f"--readme={readme}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    char, missing = json.loads(result.stdout)
    assert missing["error"].startswith("error: ")  # reported, and left out of the table
    assert char["tokenizer"] == "char"
    assert (char["zero-shot acc"], char["fine-tuned acc"]) == (0.5, 0.4321)
    lines = readme.read_text().splitlines()
    table = lines[lines.index("<!-- models-compared:start -->") + 1 : -2]
    assert table[0] == (
        "| model | params | tokenizer | bpb verse | zero-shot acc | zero-shot acc_norm"
        " | fine-tuned acc |"
    )
    assert len(table) == 3
    assert f"| {char['params']:,} | `char` | {char['bpb verse']:.3f} |" in table[2]
    assert table[2].endswith("| 0.500 | 0.500 | 0.432 |") and lines[-1] == "end"
