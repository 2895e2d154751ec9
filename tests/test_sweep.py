"""Sweeps: grid expansion, stable ids, skip/resume, failures, parallelism, determinism,
and the signal deferral (killed and resumed runs: test_resume.py)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY, cli, write_config
from normbench import NormbenchError, runfolder
from normbench import sweep as sw
from normbench.config import load_config


def test_grid_expands_to_the_product_with_readable_ids(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", sweep={"seed": [0, 1]})
    members = sw.load_sweep(str(cfg), grid_items=["model.norm=batch,layer,none", "train.batch_size=16,64"], output=str(tmp_path / "r"))
    assert len(members) == 2 * 3 * 2
    ids = [m.run_id for m in members]
    assert ids[0] == "imdb_rnn-norm=batch-bs=16-seed=0"
    assert len(set(ids)) == len(ids)
    m = members[-1]
    assert (m.config.seed, m.config.model.norm, m.config.train.batch_size) == (1, "none", 64)
    assert m.run_dir == tmp_path / "r" / "smoke_imdb_ln" / m.run_id
    assert (m.run_dir / "config.yaml").exists() and m.config.sweep == {}


def test_grid_values_are_validated_before_any_run(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    with pytest.raises(NormbenchError, match=r"grid model.norm=bogus: model.norm: unknown norm 'bogus'; choose one of"):
        sw.load_sweep(str(cfg), grid_items=["model.norm=batch,bogus"], output=str(tmp_path / "r"))
    r = cli("sweep", cfg, "--grid", "train.epochs=1,0", "--output", tmp_path / "r2")
    assert r.exit_code == 1 and "train.epochs: must be >= 1, got 0" in r.output and "Traceback" not in r.output
    r = cli("sweep", cfg, "--output", tmp_path / "r3")
    assert r.exit_code == 1 and "nothing to sweep; add --grid key=a,b or a sweep: section" in r.output


def test_changed_config_is_not_silently_resumed(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    sw.load_sweep(str(cfg), grid_items=["seed=0"], output=str(tmp_path / "r"))
    with pytest.raises(NormbenchError, match="made with a different config .*train.epochs.*delete that folder or sweep into another --output"):
        sw.load_sweep(str(cfg), overrides=["train.epochs=7"], grid_items=["seed=0"], output=str(tmp_path / "r"))


class FakeExecutor:
    """Completes or fails members instantly, recording what it was asked."""

    name = "fake"

    def __init__(self, fail=()):
        self.fail, self.threads, self.submitted = set(fail), [], []

    def submit(self, member, threads):
        self.threads.append(threads)
        self.submitted.append(member.run_id)
        if member.run_id not in self.fail:
            runfolder.write_summary(member.run_dir, {"status": "completed", "test_accuracy": 0.5})
        return member

    def poll(self, handle):
        return True

    def result(self, member, handle):
        return "Error: boom" if member.run_id in self.fail else None

    def cancel(self, handle):
        pass


def _members(tmp_path, n_seeds=3):
    cfg = write_config(tmp_path / "c.yaml")
    return sw.load_sweep(str(cfg), grid_items=[f"seed={','.join(map(str, range(n_seeds)))}"], output=str(tmp_path / "r"))


def test_failing_member_does_not_stop_the_sweep(tmp_path):
    members = _members(tmp_path)
    lines = []
    ex = FakeExecutor(fail={members[0].run_id})
    failures = sw.run_sweep(members, executor=ex, echo=lines.append)
    assert [m.run_id for m, _ in failures] == [members[0].run_id]
    assert ex.submitted == [m.run_id for m in members]
    assert any(f"FAILED {members[0].run_id}: Error: boom ({members[0].run_dir})" in ln for ln in lines)


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    members = _members(tmp_path)
    ex = FakeExecutor(fail={members[0].run_id})
    failures = sw.run_sweep(members, executor=ex, fail_fast=True, echo=lambda s: None)
    assert len(failures) == 1 and ex.submitted == [members[0].run_id]


def test_jobs_divide_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    ex = FakeExecutor()
    sw.run_sweep(_members(tmp_path), jobs=2, executor=ex, echo=lambda s: None)
    assert ex.threads == [2, 2, 2]


def test_completed_members_are_skipped(tmp_path):
    members = _members(tmp_path)
    sw.run_sweep(members, executor=FakeExecutor(), echo=lambda s: None)
    again = FakeExecutor()
    lines = []
    sw.run_sweep(members, executor=again, echo=lines.append)
    assert again.submitted == []
    assert "3 already completed, 0 to run" in lines[0]


def test_real_sweep_runs_then_does_no_work_the_second_time(tmp_path):
    """Two members in subprocesses, then the same command again."""
    out = tmp_path / "r"
    args = ["sweep", REPO / "configs/smoke/imdb_ln.yaml", "--grid", "model.norm=batch,none", "--output", out,
            *sum((["--set", t] for t in TINY), []), "--jobs", "2"]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    assert "2 to run" in first.output and first.output.count(" completed imdb_rnn-") == 2
    summaries = sorted(out.rglob("summary.json"))
    assert len(summaries) == 2
    stamps = [p.stat().st_mtime_ns for p in summaries]
    second = cli(*args)
    assert second.exit_code == 0 and "2 already completed, 0 to run" in second.output
    assert [p.stat().st_mtime_ns for p in summaries] == stamps


def test_real_failure_is_reported_and_exit_is_nonzero(tmp_path):
    out = tmp_path / "r"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__subset=None, data__path=str(bad))
    r = cli("sweep", cfg, "--grid", "seed=0", "--output", out)
    assert r.exit_code == 1
    assert "FAILED imdb_rnn-norm=layer-bs=64-seed=0: Error: data.path:" in r.output
    assert "1 member(s) failed:" in r.output


# ----------------------------------------------------------------------------- resume


def _rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def _start(cfg_path, out, *extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "normbench", "run", str(cfg_path), "-q", "--set", f"output.dir={out}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _wait_rows(out, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for h in out.rglob("history.csv"):
            if len(_rows(h.parent)) >= n:
                return h.parent
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    raise AssertionError("no epochs written in time")


def test_signals_wait_for_the_end_of_a_deferred_block():
    from normbench import train

    old = signal.signal(signal.SIGTERM, train._on_sigterm)
    steps = []
    try:
        with pytest.raises(train._Terminated):
            with train.signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # delivered by now; a plain handler would have raised here
                steps.append("finished")
        assert steps == ["finished"]
        assert signal.getsignal(signal.SIGTERM) is train._on_sigterm  # handlers restored
    finally:
        signal.signal(signal.SIGTERM, old)


def test_backup_that_does_not_load_restarts_the_run(tmp_path):
    """A backup from another model (here: other layer names) must not wedge the run."""
    import keras

    out = tmp_path / "r"
    cfg = write_config(tmp_path / "c.yaml", train__epochs=2, data__subset={"train": 64, "test": 32})
    members = sw.load_sweep(str(cfg), grid_items=["seed=0"], output=str(out))
    run_dir = members[0].run_dir
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="not_ours")])
    other.compile("adam", "mse")
    (run_dir / "backup").mkdir()
    other.save_weights(str(run_dir / "backup" / "latest.weights.h5"))
    (run_dir / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    r = cli("run", "--resume", run_dir, "-q")
    assert r.exit_code == 0, r.output
    assert [int(row["epoch"]) for row in _rows(run_dir)] == [1, 2]


def test_resuming_a_completed_run_does_nothing(tmp_path):
    out = tmp_path / "r"
    r = cli("run", REPO / "configs/smoke/imdb_none.yaml", "-q", "--set", f"output.dir={out}", *sum((["--set", t] for t in TINY), []))
    run_dir = Path(r.output.strip().rsplit(" -> ", 1)[1])
    stamp = (run_dir / "summary.json").stat().st_mtime_ns
    again = cli("run", "--resume", run_dir, "-q")
    assert again.exit_code == 0 and (run_dir / "summary.json").stat().st_mtime_ns == stamp


# ----------------------------------------------------------------------------- determinism


def test_deterministic_runs_are_byte_identical(tmp_path):
    histories = []
    for i in range(2):
        out = tmp_path / f"r{i}"
        proc = _start(REPO / "configs/smoke/cifar10_bn.yaml", out, "--set", "train.deterministic=true",
                      "--set", "train.epochs=2", "--set", "data.subset={train: 256, test: 64}")
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
        (h,) = out.rglob("history.csv")
        histories.append([(r["loss"], r["accuracy"], r["val_loss"], r["val_accuracy"]) for r in _rows(h.parent)])
    assert histories[0] == histories[1]
    assert len(histories[0]) == 2


# ----------------------------------------------------------------------------- ray


def test_ray_sweep_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'normbench[ray]'")
    out = tmp_path / "r"
    members = sw.load_sweep(str(REPO / "configs/smoke/imdb_ln.yaml"), overrides=TINY,
                            grid_items=["model.norm=batch,none"], output=str(out))
    try:
        ex = sw.RayExecutor(num_cpus=2, shared=False)
        failures = sw.run_sweep(members, jobs=2, executor=ex, echo=lambda s: None)
    finally:
        ray.shutdown()
    assert failures == []
    for m in members:
        s = json.loads((m.run_dir / "summary.json").read_text())
        assert s["status"] == "completed"
        assert len(_rows(m.run_dir)) == 1
