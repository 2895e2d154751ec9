"""benchmarks/step_time.py runs end to end in --quick mode (1 rep, one model x norm, a
tiny subset): both variants finish and the CSVs have the comparison."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

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
    ms = {v: float(rows[v]["ms_per_step"]) for v in ("plain", "normbench")}
    for v in ("plain", "normbench"):
        assert float(rows[v]["ms_per_step_min"]) <= ms[v] <= float(rows[v]["ms_per_step_max"])
        # a process that trained a Keras model on TensorFlow: hundreds of MB (~950 measured);
        # a unit slip (KiB or bytes read as MB) lands far outside
        assert 200 < float(rows[v]["peak_rss_mb"]) < 32_000
    # the ratio is the two ms/step figures' (plain's own is 1); --quick times a handful of
    # steps, so on a loaded machine one variant can land 4x off the other (4.04 seen beside
    # a training study): the bound only catches a unit slip (1000x), not a speed change
    assert float(rows["plain"]["ratio_vs_plain"]) == 1
    assert float(rows["normbench"]["ratio_vs_plain"]) == pytest.approx(ms["normbench"] / ms["plain"], rel=1e-9)
    assert 0.05 < ms["normbench"] / ms["plain"] < 20
    # `normbench --help` imports no TensorFlow: well under the seconds an import takes
    assert 0 < float(rows["normbench --help"]["startup_help_s"]) < 5
    runs = list(csv.DictReader(open(tmp_path / "step_time_runs.csv")))
    assert [r["status"] for r in runs] == ["completed", "completed"]
    # same data, same seed, same layers: both variants end at the same loss
    assert abs(float(runs[0]["final_loss"]) - float(runs[1]["final_loss"])) < 1e-3
    assert "b/a" in r.stdout


def test_compare_scale_smoke(tmp_path):
    """benchmarks/compare_scale.py end to end at 60 run folders: the generated folders
    read as real runs (compare exits 0 on them) and the CSV has a row per process."""
    out = tmp_path / "scale.csv"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/compare_scale.py"), "--sizes", "60", "--reps", "1",
                        "--commands", "compare", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = list(csv.DictReader(open(out)))
    assert [(row["code"], row["command"], row["runs"], row["exit"]) for row in rows] == [("this", "compare", "60", "0")]
    assert 50 < float(rows[0]["peak_rss_mib"]) < 32_000 and float(rows[0]["wall_s"]) > 0
