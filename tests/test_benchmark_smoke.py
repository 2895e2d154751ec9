"""The benchmark scripts that had no test, each run once at a tiny size: it finishes and
writes what its committed output has (the same columns, rows, layout). They run in this
process (Keras is imported already; a subprocess would pay its import again), except
whole_process.sh, a shell script; startup_memory.py starts its own processes."""

from __future__ import annotations

import csv
import math
import os
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, bench_module

BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"  # the committed outputs


def test_harness_write_csv_keeps_each_scripts_layout(tmp_path, monkeypatch):
    harness = bench_module("harness", monkeypatch)
    rows = [{"a": 1, "b": 0.5}, {"a": 2, "c": "x"}]
    harness.write_csv(tmp_path / "crlf.csv", rows)
    assert (tmp_path / "crlf.csv").read_bytes() == b"a,b,c\r\n1,0.5,\r\n2,,x\r\n"
    harness.write_csv(tmp_path / "lf.csv", rows, ["c", "a", "b"], lineterminator="\n", atomic=True)
    assert (tmp_path / "lf.csv").read_bytes() == b"c,a,b\n,1,0.5\nx,2,\n"
    assert not list(tmp_path.glob("*.tmp"))
    # the committed CSVs are what write_csv writes for their rows (rnn_layers: csv's \r\n; cnn_limit: \n)
    for name, ending in (("rnn_layers.csv", "\r\n"), ("compare_scale.csv", "\r\n"), ("tensorboard_cost.csv", "\r\n"),
                         ("cnn_limit.csv", "\n"), ("step_time.csv", "\n")):
        committed = (RESULTS / name).read_bytes()
        with open(RESULTS / name, newline="") as f:
            table = list(csv.DictReader(f))
        harness.write_csv(tmp_path / name, table, lineterminator=ending)
        assert (tmp_path / name).read_bytes() == committed, name


def test_pixel_scaling_quick(monkeypatch, capsys):
    bench_module("pixel_scaling", monkeypatch).main(["--quick"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "backend tensorflow, batch 64 x 32 x 32 x 3 uint8; ms per call: best of 1 x 2 calls"
    wrong = {line[:16].strip(): int(re.search(r"last bit: +(\d+) of", line).group(1)) for line in out[1:]}
    # the committed output's ways, and the finding: float64 division and the table are exact
    assert list(wrong) == [line[:16].strip() for line in (RESULTS / "pixel_scaling.txt").read_text().splitlines()
                           if "wrong in the last bit" in line][:len(wrong)]
    assert wrong["divide_f64"] == wrong["table"] == 0 and wrong["divide_f32"] > 0


def test_recurrent_gradients(monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # it reads configs/smoke/imdb_ln.yaml
    runpy.run_path(str(BENCH / "recurrent_gradients.py"), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    committed = [line for line in (RESULTS / "recurrent_gradients.txt").read_text().splitlines() if line.strip()]
    assert out[0] == committed[0] == "placement  variable  shape  gradient-norm"
    # the same variables and shapes, placement by placement, as the committed file
    assert [line.rsplit("  ", 1)[0] for line in out[1:]] == [line.rsplit("  ", 1)[0] for line in committed[1:]]
    norms = [float(line.rsplit("  ", 1)[1]) for line in out[1:]]
    assert all(math.isfinite(g) and g > 0 for g in norms)


def test_tensorboard_cost(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb.csv"
    # --reps 0: the callback's own cost only (the end-to-end half is train.run, timed twice)
    bench_module("tensorboard_cost", monkeypatch).main(["--calls", "3", "--reps", "0", "--out", str(out)])
    with open(out, newline="") as f:
        header = f.readline().strip()
        rows = list(csv.DictReader(open(out)))
    assert header == (RESULTS / "tensorboard_cost.csv").read_text().splitlines()[0]
    assert [(r["kind"], r["tensorboard"]) for r in rows] == [("direct", "")]
    assert float(rows[0]["start_ms"]) > 0 and 0 < float(rows[0]["per_epoch_ms_median"]) <= float(rows[0]["per_epoch_ms_p90"])
    assert len(list((tmp_path).rglob("*"))) == 1  # its temporary run folder is gone: only the CSV is left
    assert "direct: start" in capsys.readouterr().out


def _imdb_npz(path, n_train, n_test):
    """A tiny imdb.npz of the source file's layout (word-index lists of 5-39 words)."""
    rng = np.random.default_rng(0)

    def reviews(n):
        x = np.empty(n, dtype=object)
        x[:] = [list(rng.integers(1, 12000, rng.integers(5, 40))) for _ in range(n)]
        return x

    np.savez(path, x_train=reviews(n_train), y_train=rng.integers(0, 2, n_train), x_test=reviews(n_test),
             y_test=rng.integers(0, 2, n_test))
    return path


def test_plain_imdb(tmp_path, monkeypatch, capsys):
    """The plain script on a tiny imdb.npz of the source file's layout (word-index lists)."""
    npz = _imdb_npz(tmp_path / "imdb.npz", 80, 32)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["plain_imdb.py", str(npz)])
    runpy.run_path(str(BENCH / "plain_imdb.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert re.fullmatch(r"test_accuracy (0\.\d{4}|1\.0000) test_loss \d+\.\d{4}", out.strip().splitlines()[-1])
    assert out.count("Epoch 5/5") == 1  # the tutorial's 5 epochs


def test_startup_memory_quick(tmp_path, monkeypatch, capsys):
    """--quick on generated data (no real data, no second checkout): one row per process
    with the committed CSV's columns, each with a time to first step and a peak RSS."""
    out = tmp_path / "sm.csv"
    bench_module("startup_memory", monkeypatch).main(["--quick", "--plan", "cifar10:member,imdb:first", "--conditions", "cold",
                                                  "--out", str(out)])
    with open(out, newline="") as f:
        header = f.readline().strip()
    rows = list(csv.DictReader(open(out, newline="")))
    assert header == (RESULTS / "startup_memory.csv").read_text().splitlines()[0]
    assert [(r["rep"], r["dataset"], r["mode"], r["condition"]) for r in rows] == [("0", "cifar10", "member", "cold"),
                                                                                    ("0", "imdb", "first", "cold")]
    for r in rows:
        assert float(r["first_step_s_max"]) > 0 and float(r["wall_s"]) > 0 and int(r["maxrss_mib"]) > 0, r
    member = rows[0]  # trains its 2 steps, validates and tests after the first step: longer than it
    assert float(member["first_step_s_max"]) < float(member["wall_s"]) - 0.5, member
    assert "medians (first_step_s_max" in capsys.readouterr().out


def _csv_rows(path):
    with open(path, newline="") as f:
        return f.readline().strip(), list(csv.DictReader(open(path, newline="")))


def test_whole_process_quick(tmp_path):
    """QUICK=1 on a generated imdb.npz, outputs to OUT: e2e-imdb (the figure that needs the
    real IMDB) and help each write the committed CSV's columns, one ok row per command,
    and the text of what they printed; benchmarks/results/ is left alone."""
    _imdb_npz(tmp_path / "imdb.npz", 600, 300)  # enough for --smoke's 512 / 256
    out = tmp_path / "out"
    env = {**os.environ, "QUICK": "1", "DATA": str(tmp_path), "OUT": str(out), "PYTHON": sys.executable,
           "NORMBENCH": f"{sys.executable} -m normbench"}
    committed = {p: p.stat().st_mtime_ns for p in RESULTS.iterdir()}
    for what, csv_name, labels in (("help", "whole_process_help.csv", ["help"]),
                                   ("e2e-imdb", "e2e_imdb_3way.csv", ["plain", "normbench", "normbench-jax"])):
        r = subprocess.run(["bash", str(BENCH / "whole_process.sh"), what], env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        header, rows = _csv_rows(out / csv_name)
        assert header == (RESULTS / csv_name).read_text().splitlines()[0]
        assert [(row["label"], row["rep"], row["status"]) for row in rows] == [(x, "1", "ok") for x in labels], rows
        assert all(float(row["wall_s"]) > 0 and float(row["peak_mib"]) > 0 for row in rows)
        assert f"wrote {out / csv_name}" in (out / f"whole_process_{what}.txt").read_text()
    assert {p: p.stat().st_mtime_ns for p in RESULTS.iterdir()} == committed
