"""benchmarks/rnn_layers.py runs end to end (tiny) and writes one CSV row per variant and round."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from conftest import REPO


def test_rnn_layers_benchmark_writes_paired_rows(tmp_path):
    out = tmp_path / "r.csv"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/rnn_layers.py"), "--backends", "tensorflow",
                        "--variants", "keras,fast", "--rounds", "2", "--steps", "3", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [(row["round"], row["variant"]) for row in rows] == [("0", "keras"), ("0", "fast"), ("1", "fast"), ("1", "keras")]
    for row in rows:
        assert float(row["ms_per_step"]) > 0
        assert row["backend"] == "tensorflow"
    fast = [row for row in rows if row["variant"] == "fast"]
    keras_ms = {row["round"]: float(row["ms_per_step"]) for row in rows if row["variant"] == "keras"}
    for row in fast:  # the paired ratio is this round's fast over this round's keras
        assert abs(float(row["vs_pair"]) - float(row["ms_per_step"]) / keras_ms[row["round"]]) < 1e-3
    assert "tensorflow  fast" in r.stdout
