"""benchmarks/alternate.py, the whole-process timing harness: runs commands in turn,
writes one CSV row per counted run, compares each command with the first, marks
failures and timeouts, and refuses bad arguments with one Error line."""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

HARNESS = REPO / "benchmarks" / "alternate.py"
PY = shlex.quote(sys.executable)
COLUMNS = ["label", "rep", "wall_s", "user_s", "sys_s", "cpu_s", "peak_mib", "exit_code", "status", "load1", "command"]


def harness(*args, cwd=None):
    return subprocess.run([sys.executable, str(HARNESS), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_alternates_and_compares(tmp_path):
    out = tmp_path / "t.csv"
    fast = f"{PY} -c 'import time; time.sleep(0.05)'"
    # 0.6 s of sleep the fast one lacks, and 64 MiB written (so resident) that it does not hold
    slow = f"{PY} -c 'import time; time.sleep(0.6); b = bytes(7) * (64 * 2**20 // 7)'"
    r = harness("-n", 2, "--warmup", 1, "--out", out, "--log", tmp_path / "logs", "--cmd", "fast", fast,
                "--cmd", "slow", slow)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(out) as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    # counted rounds only, in turn: fast slow fast slow
    assert [(row["label"], row["rep"]) for row in rows] == [("fast", "1"), ("slow", "1"), ("fast", "2"), ("slow", "2")]
    assert all(row["status"] == "ok" and row["exit_code"] == "0" for row in rows)
    assert [row["command"] for row in rows[:2]] == [fast, slow]
    for row in rows:
        assert float(row["cpu_s"]) == pytest.approx(float(row["user_s"]) + float(row["sys_s"]), abs=2e-3)
        assert float(row["wall_s"]) > 0
    for row in rows[1::2]:
        assert float(row["wall_s"]) >= 0.6  # a sleep never ends early
        # MiB, not KiB or bytes: the 64 MiB of bytes plus Python's own ~10-20
        assert 64 < float(row["peak_mib"]) < 200
    for row in rows[0::2]:
        assert float(row["peak_mib"]) < 60
    assert not (tmp_path / "t.csv.partial").exists()
    # warm-up runs are run (their logs are kept) but not counted
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "fast.1.log", "fast.2.log", "fast.w1.log", "slow.1.log", "slow.2.log", "slow.w1.log"]
    m = re.search(r"^slow/fast +wall per round ([\d.]+) \(([\d.]+), ([\d.]+); 2 rounds\); "
                  r"medians: wall ([\d.]+), cpu [\d.]+$", r.stdout, re.M)
    assert m, r.stdout
    median, lo, hi, of_medians = map(float, m.groups())
    assert 1 < lo <= median <= hi
    assert of_medians > 1
    # the per-round ratios are the CSV's walls divided round by round
    per_round = sorted(float(rows[i + 1]["wall_s"]) / float(rows[i]["wall_s"]) for i in (0, 2))
    assert (lo, hi) == pytest.approx(per_round, rel=3e-3)  # the CSV rounds walls to 0.1 ms
    assert re.search(r"^fast wall s +[\d.]+ +[\d.]+ +[\d.]+ +2/2$", r.stdout, re.M), r.stdout


def test_failures_and_timeouts_are_marked(tmp_path):
    out = tmp_path / "t.csv"
    r = harness("-n", 1, "--warmup", 0, "--timeout", 1, "--out", out,
                "--cmd", "ok", f"{PY} -c pass",
                "--cmd", "bad", f"{PY} -c 'import sys; print(\"boom\"); sys.exit(3)'",
                "--cmd", "hang", f"{PY} -c 'import time; time.sleep(30)'")
    assert r.returncode == 1, r.stdout + r.stderr
    rows = list(csv.DictReader(open(out)))
    assert [(row["label"], row["status"], row["exit_code"]) for row in rows] == [
        ("ok", "ok", "0"), ("bad", "failed", "3"), ("hang", "timeout", "-15")]
    assert float(rows[2]["wall_s"]) < 10  # killed at 1 s, not left to sleep 30
    assert "| boom" in r.stderr  # the failed command's last output is shown
    assert "FAILED: bad run 1: failed, exit code 3" in r.stdout
    assert "FAILED: hang run 1: timeout" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--cmd", "x", "no-such-program-4711 --flag"],
     "Error: --cmd x: program 'no-such-program-4711' not found on PATH; check its spelling or give its path"),
    (["--cmd", "a", "true", "--cmd", "a", "true"], "Error: --cmd a: label given twice; give each command its own label"),
    (["--cmd", "a", "sh -c 'unclosed"], "Error: --cmd a: cannot split \"sh -c 'unclosed\" (No closing quotation); check its quotes"),
    (["-n", "0", "--cmd", "a", "true"], "Error: -n: 0 counted rounds; give 1 or more"),
    ([], "Error: --cmd: no command given; name at least one, e.g. --cmd plain 'python script.py'"),
    (["--cmd", "a"], "Error: --cmd: expected 2 arguments; see python benchmarks/alternate.py --help"),
    (["--out", "missing/t.csv", "--cmd", "a", "true"], "Error: --out missing/t.csv: folder missing does not exist; create it first"),
])
def test_usage_errors(tmp_path, args, message):
    r = harness(*args, cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message + "\n")
    assert list(tmp_path.iterdir()) == []  # nothing written
