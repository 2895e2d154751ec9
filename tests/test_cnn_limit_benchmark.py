"""benchmarks/cnn_limit.py: the CNN's FLOP count is the hand count, and the script runs
end to end (tiny) writing one row per variant x round with the settings each child got."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from conftest import REPO, bench_module




def test_analytic_flops_are_the_hand_count(monkeypatch):
    """Multiply-adds per example, by hand: conv_1 30*30*32*3*3*3, conv_2 13*13*64*3*3*32,
    conv_3 4*4*128*3*3*64, dense 512*128, head 128*10. A training step at batch 64 is
    3x forward (forward, input gradient, weight gradient), less conv_1's input gradient,
    which nothing needs (it sits on the images)."""
    from normbench.schema.config import load_config
    from normbench.build.models import build_model

    rows = bench_module("cnn_limit", monkeypatch)._analytic(build_model(load_config(REPO / "configs/cifar10_bn.yaml"), 10), 64)
    macs = {r["layer"]: r["macs_per_example"] for r in rows if r["macs_per_example"]}
    assert macs == {"conv_1": 777_600, "conv_2": 3_115_008, "conv_3": 1_179_648, "dense": 65_536, "head": 1_280}
    by = {r["layer"]: r for r in rows}
    assert by["conv_1"]["input_grad_flop"] == 0 and by["conv_2"]["input_grad_flop"] == 2 * 3_115_008 * 64
    forward = 2 * 64 * sum(macs.values())
    assert sum(r["step_flop"] for r in rows) == 3 * forward - 2 * 64 * 777_600  # 1.874 GFLOP
    assert sum(r["params"] for r in rows) == 161_610


def test_cnn_limit_runs_end_to_end(tmp_path):
    out = tmp_path / "c.csv"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/cnn_limit.py"), "--variants", "float32,threads_1x1",
                        "--rounds", "1", "--steps", "3", "--fits", "1", "--warmup", "1", "--n", "64", "--reps", "1",
                        "--no-profiler", "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [(row["round"], row["variant"]) for row in rows] == [
        ("0", "limit_float32"), ("0", "limit_bfloat16"), ("0", "float32"), ("0", "threads_1x1")]
    assert rows[1]["dtype"] == "bfloat16" and float(rows[1]["gflop"]) == pytest.approx(2 * 64**3 / 1e9)
    train = {row["variant"]: row for row in rows[2:]}
    assert (train["threads_1x1"]["intra_threads"], train["threads_1x1"]["inter_threads"]) == ("1", "1")
    assert train["float32"]["intra_threads"] == "0"  # TensorFlow's default
    for row in train.values():
        assert float(row["gflops"]) == pytest.approx(float(row["gflop"]) / float(row["ms_median"]) * 1000, rel=1e-3)
        assert float(row["gflop"]) == pytest.approx(1.8739, abs=1e-4)
    summary = {row["variant"]: row for row in csv.DictReader((tmp_path / "c_summary.csv").open())}
    s = summary["threads_1x1"]
    assert float(s["vs_float32_paired_median"]) == pytest.approx(
        float(train["threads_1x1"]["ms_median"]) / float(train["float32"]["ms_median"]), rel=1e-3)
    assert float(s["of_float32_limit"]) == pytest.approx(float(s["gflops"]) / float(summary["limit_float32"]["gflops"]), rel=1e-3)
    assert len(list(csv.DictReader((tmp_path / "c_flops.csv").open()))) == 14  # one row per layer (Pixels first)
    assert "threads_1x1" in r.stdout and "conv_1 has no input gradient" in r.stdout


def test_cnn_limit_bad_variant_is_one_line():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/cnn_limit.py"), "--variants", "float32,fp8"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("Error: --variants: unknown variant 'fp8'; choose from float32, mixed_bfloat16, "
                                "threads_2x1, threads_1x1, threads_2x2, onednn_off, plain, xla")
