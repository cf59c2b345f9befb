"""metrics.jsonl -> loss-curve PNG (the optional `plot` extra)."""

import json

import pytest

from minigpt.train.metrics import MetricsLog, read_metrics
from minigpt.train.plot import main

RECORDS = [
    {"iter": 10, "loss": 3.0, "lr": 1e-3},
    {"iter": 20, "loss": 2.5, "lr": 1e-3},
    {"iter": 20, "kind": "eval", "loss": 2.4, "val_loss": 2.6},
]


def test_metrics_log_appends_and_resume_drops_records_past_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path)
    for record in RECORDS:
        log.log(record)
    log.log({"iter": 30, "loss": 2.2})  # written after the last checkpoint (iter 20)...
    log.close()
    MetricsLog(tmp_path, start_iter=20).close()  # ...so a resume from iter 20 drops it
    assert read_metrics(tmp_path) == RECORDS
    MetricsLog(tmp_path).close()  # a fresh run starts a fresh file
    assert read_metrics(tmp_path) == []


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert main([str(tmp_path)]) == 0
    png = tmp_path / "loss.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_metrics_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path}/metrics.jsonl not found")
