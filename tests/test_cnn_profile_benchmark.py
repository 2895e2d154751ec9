"""benchmarks/cnn_profile.py end to end on 3 profiled steps: TensorFlow's own profiler
trace is read back into per-op rows whose groups cover the CNN's step."""

from __future__ import annotations

import csv
import subprocess
import sys

from conftest import REPO


def test_cnn_profile_smoke(tmp_path):
    out = tmp_path / "profile.csv"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/cnn_profile.py"), "--steps", "3", "--warmup", "2",
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    rows = list(csv.DictReader(open(out)))
    groups = {row["group"] for row in rows}
    # the convolutions and their two gradients, and the BN layers (plain ops in Keras 3), are all found by name
    assert {"conv forward (+ bias + relu, fused)", "conv input gradient", "conv filter gradient (+ bias gradient)",
            "norm forward", "norm backward", "optimizer update (Adam)"} <= groups
    assert abs(sum(float(row["share"]) for row in rows) - 1) < 0.01  # shares of the step's op time
    assert all(float(row["ms_per_step"]) >= 0 for row in rows) and rows[0]["batch"] == "64"
    assert "IDLE" not in {row["op_type"] for row in rows}
