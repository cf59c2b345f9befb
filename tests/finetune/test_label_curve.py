"""bench/label_curve.py: every system sees the same seeded subset of the train split, fewer labels
get more epochs, and `--quick` runs all five systems end to end in under 5 minutes (with the
seed-averaged rows, which for one seed must score what that seed's run scored)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benches import load_bench

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.bench


def test_subsets_are_seeded_draws_and_the_whole_split_covers_every_budget(tmp_path):
    curve = load_bench("label_curve")
    a = curve.subset(50, 1, tmp_path).read_text().splitlines()
    assert a == curve.subset(50, 1, tmp_path).read_text().splitlines()  # a system's rerun
    assert len(a) == len(set(a)) == 50
    assert a != curve.subset(50, 2, tmp_path).read_text().splitlines()
    train = (curve.REVIEWS / "train.jsonl").read_text().splitlines()
    assert set(a) <= set(train)
    assert curve.subset(len(train), 1, tmp_path) == curve.REVIEWS / "train.jsonl"
    epochs = [curve.epochs_for(n, curve.MAX_EPOCHS) for n in (100, 300, 1000, 3000, 8480)]
    assert epochs == [32, 11, 4, 3, 3]  # more epochs for fewer labels: >= MIN_STEPS steps each
    assert curve.epochs_for(100, 2) == 2  # --quick's cap


def test_label_curve_quick_runs_all_five_systems_in_under_5_minutes(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/label_curve.py", "--quick", "--json", "--ensemble",
         f"--out_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    curve = load_bench("label_curve")
    rows = {(row["budget"], row["system"]): row for row in report["rows"]}
    ensembles = {(n, f"{s}, mean logits of 1 seeds") for n in (100, 300) for s in curve.FINE_TUNED}
    assert set(rows) == {(n, s) for n in (100, 300) for s in curve.SYSTEMS} | ensembles
    for (n, system), row in rows.items():
        for metric in ("test_accuracy", "test_macro_f1"):
            assert 0.0 <= row[metric]["mean"] <= 1.0 and len(row[metric]["runs"]) == 1
            if system in curve.FINE_TUNED:  # the saved classifier scores what its run scored
                ensemble = rows[n, f"{system}, mean logits of 1 seeds"][metric]["mean"]
                assert ensemble == pytest.approx(row[metric]["mean"], abs=1e-3)
    assert report["command"].endswith("--ensemble --out_dir=" + str(tmp_path))
    assert (tmp_path / "label_curve.png").stat().st_size > 0
