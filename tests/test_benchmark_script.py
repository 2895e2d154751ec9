"""benchmarks/step_time.py runs end to end in --quick mode (1 rep, one model x norm, a
tiny subset): both variants finish and the CSVs have the comparison."""

from __future__ import annotations

import csv
import subprocess
import sys

from conftest import REPO


def test_step_time_quick(tmp_path):
    out = tmp_path / "step_time.csv"
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/step_time.py"), "--quick", "--models", "cifar10_cnn",
         "--norms", "layer", "--steps", "4", "--startup-reps", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {row["variant"]: row for row in csv.DictReader(open(out))}
    assert {"plain", "normbench", "normbench --help"} <= set(rows)
    for v in ("plain", "normbench"):
        assert float(rows[v]["ms_per_step"]) > 0
        assert float(rows[v]["peak_rss_mb"]) > 0
    assert float(rows["normbench"]["ratio_vs_plain"]) > 0
    assert float(rows["normbench --help"]["startup_help_s"]) > 0
    runs = list(csv.DictReader(open(tmp_path / "step_time_runs.csv")))
    assert [r["status"] for r in runs] == ["completed", "completed"]
    # same data, same seed, same layers: both variants end at the same loss
    assert abs(float(runs[0]["final_loss"]) - float(runs[1]["final_loss"])) < 1e-3
    assert "b/a" in r.stdout
