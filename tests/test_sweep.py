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

from conftest import REPO, TINY, as_from_a_shell, cli, history_rows, start_run, write_config
from normbench import NormbenchError
from normbench.cli import _flag
from normbench.store import runfolder
from normbench.orchestrate import sweep as sw
from normbench.orchestrate.executors.ray_tasks import RayExecutor
from normbench.schema.config import load_config


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
    with pytest.raises(NormbenchError, match=r"--grid model.norm=bogus: model.norm: unknown norm 'bogus'; choose one of"):
        sw.load_sweep(str(cfg), grid_items=["model.norm=batch,bogus"], output=str(tmp_path / "r"))
    r = cli("sweep", cfg, "--grid", "train.epochs=1,0", "--output", tmp_path / "r2")
    assert r.exit_code == 1 and "train.epochs: must be >= 1, got 0" in r.output and "Traceback" not in r.output
    r = cli("sweep", cfg, "--output", tmp_path / "r3")
    assert r.exit_code == 1 and "nothing to sweep; add --grid key=a,b or a sweep: section" in r.output


def test_changed_config_is_not_silently_resumed(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    sw.load_sweep(str(cfg), grid_items=["seed=0"], output=str(tmp_path / "r"))
    with pytest.raises(NormbenchError, match="made with a different config .*train.epochs.*delete that folder or sweep into another output$"):
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

    def wait(self, handle):
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


def _labels_outside(tmp_path) -> Path:
    """A config whose data passes the checks made before any member starts (the file's
    array headers) and fails inside the member: labels outside data.classes."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((40, 4), dtype="float32"), y_train=np.full(40, 7),
             x_test=rng.random((10, 4), dtype="float32"), y_test=np.zeros(10, int))
    return write_config(tmp_path / "c.yaml", data=None, model=None, name="t",
                        data__name="arrays", data__path=str(tmp_path / "d.npz"), data__classes=2,
                        model__arch="mlp", model__norm="none")


def test_real_failure_is_reported_and_exit_is_nonzero(tmp_path):
    r = cli("sweep", _labels_outside(tmp_path), "--grid", "seed=0", "--output", tmp_path / "r")
    assert r.exit_code == 1
    assert "FAILED mlp-norm=none-bs=64-seed=0: Error: data.path:" in r.output
    assert "is not a class (0-1, data.classes: 2); fix the labels or data.classes" in r.output
    assert "1 member(s) failed:" in r.output


def test_a_file_that_is_no_npz_is_refused_before_any_member_starts(tmp_path):
    out = tmp_path / "r"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__subset=None, data__path=str(bad))
    r = cli("sweep", cfg, "--grid", "seed=0", "--output", out)
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1].startswith(f"Error: data.path: {bad} is not a .npz file")
    assert not list(out.rglob("log.txt"))  # no member started


# ----------------------------------------------------------------------------- resume


def test_signals_wait_for_the_end_of_a_deferred_block():
    from normbench.core import signals

    old = signal.signal(signal.SIGTERM, signals.on_sigterm)
    steps = []
    try:
        with pytest.raises(signals.Terminated):
            with signals.signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # delivered by now; a plain handler would have raised here
                steps.append("finished")
        assert steps == ["finished"]
        assert signal.getsignal(signal.SIGTERM) is signals.on_sigterm  # handlers restored
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
    assert [int(row["epoch"]) for row in history_rows(run_dir)] == [1, 2]


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
        proc = start_run(REPO / "configs/smoke/cifar10_bn.yaml", out, "--set", "train.deterministic=true",
                      "--set", "train.epochs=2", "--set", "data.subset={train: 256, test: 64}")
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
        (h,) = out.rglob("history.csv")
        histories.append([(r["loss"], r["accuracy"], r["val_loss"], r["val_accuracy"]) for r in history_rows(h.parent)])
    assert histories[0] == histories[1]
    assert len(histories[0]) == 2


# ----------------------------------------------------------------------------- ray


def _scratch_folders():
    import tempfile

    # the Ray worker's scratch folders only: the other test worker makes folders of its own
    # (benchmarks' normbench-bench-*, the test caches) and removes them meanwhile
    from normbench.orchestrate.executors.base import SCRATCH_PREFIX

    return set(Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"))


@pytest.mark.xdist_group("ray")  # both Ray tests are in this file: --dist loadfile runs them on one worker
def test_ray_modes_index_the_real_folders_and_leave_no_scratch(tmp_path, monkeypatch):
    """The CLI's Ray mode (shared storage), then the returned-files mode on the same
    local Ray instance: runs.csv points at the real folders, no scratch folder is left.
    Without --address it starts a local Ray even where RAY_ADDRESS (or the file of the
    last cluster this machine started) names another: Ray itself would connect there."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'normbench[ray]'")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # nothing listens there
    before = _scratch_folders()
    shared, files = tmp_path / "shared", tmp_path / "files"
    try:
        r = cli("sweep", *_tiny_args(shared, "seed=0,1"), "--executor", "ray", "--jobs", "2")
        assert r.exit_code == 0, r.output
        members = sw.load_sweep(str(REPO / "configs/smoke/imdb_ln.yaml"), overrides=TINY,
                                grid_items=["model.norm=batch"], output=str(files))
        ex = RayExecutor(shared=False)
        assert sw.run_sweep(members, executor=ex, echo=lambda s: None) == []
    finally:
        ray.shutdown()
    for out, name in ((shared, "smoke_imdb_none"), (files, "smoke_imdb_ln")):
        runs = sorted((out / name).iterdir())
        assert sorted(row["path"] for row in _index(out)) == [f"{name}/{d.name}" for d in runs]
        for d in runs:
            assert json.loads((d / "summary.json").read_text())["status"] == "completed"
            assert len(history_rows(d)) == 1
    assert _scratch_folders() <= before  # none of its own left (an earlier Ray test's may still be going away)


@pytest.mark.xdist_group("ray")
def test_ray_sweep_on_two_nodes(tmp_path, monkeypatch):
    """Two 1-CPU Ray nodes on this machine: the members run on both, and every run folder
    arrives complete in the driver's output (returned-files mode)."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'normbench[ray]'")
    from ray.cluster_utils import Cluster

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # 1 thread per member
    out = tmp_path / "r"
    members = sw.load_sweep(str(REPO / "configs/smoke/imdb_none.yaml"), overrides=TINY,
                            grid_items=["seed=0,1"], output=str(out))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        ex = RayExecutor(shared=False)
        assert sw.run_sweep(members, jobs=2, executor=ex, echo=lambda s: None) == []
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert len(set(ex.nodes.values())) == 2, ex.nodes
    for m in members:
        assert {p.name for p in m.run_dir.iterdir()} >= {"config.yaml", "history.csv", "summary.json"}
        assert json.loads((m.run_dir / "summary.json").read_text())["status"] == "completed"
        assert len(history_rows(m.run_dir)) == 1
    assert sorted(row["path"] for row in _index(out)) == sorted(f"smoke_imdb_none/{m.run_id}" for m in members)


# ----------------------------------------------------------------------------- one owner per run folder


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(proc) -> bool:
    """A process, (pid, start time) from _children, that still runs (not a zombie). The
    start time tells it from a later process or thread given the same (recycled) id."""
    pid, started = proc if isinstance(proc, tuple) else (proc, None)
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z" and (started is None or fields[19] == started)


def _children(pid: int) -> list[tuple[int, str]]:
    """Live child processes of `pid` (from /proc), as (pid, start time)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields and int(fields[1]) == pid and fields[0] != "Z":
            out.append((int(stat.parent.name), fields[19]))
    return out


def _wait_for(predicate, timeout=180, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _sweep_proc(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "normbench", "sweep", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=as_from_a_shell)


def _index(out):
    with open(out / "runs.csv") as f:
        return list(csv.DictReader(f))


def _tiny_args(out, *grid, extra=()):
    return [REPO / "configs/smoke/imdb_none.yaml", *sum((["--grid", g] for g in grid), []), "--output", out,
            *sum((["--set", t] for t in [*TINY, *extra]), [])]


def test_a_locked_run_folder_is_refused_in_one_line(tmp_path):
    from normbench.core import runlock

    (member,) = _members(tmp_path, n_seeds=1)
    lock = runlock.RunLock(member.run_dir)
    try:
        with pytest.raises(runlock.Busy):  # a second owner, even in this process
            runlock.RunLock(member.run_dir)
        assert member.holder() == os.getpid()
        r = cli("run", "--resume", member.run_dir)
        assert r.exit_code == runlock.BUSY_EXIT
        assert r.output.strip() == f"Error: {member.run_dir}: already running (pid {os.getpid()}); wait for it or stop it"
        assert not (member.run_dir / "summary.json").exists()
        assert cli("sweep", tmp_path / "c.yaml", "--grid", "seed=0", "--output", tmp_path / "r", "--dry-run").output.split() == [
            "running", str(member.run_dir)]
    finally:
        lock.release()
    assert member.holder() is None


@pytest.mark.parametrize("finish", [True, False])
def test_sweep_waits_for_a_member_running_elsewhere(tmp_path, finish):
    """Locked elsewhere: not trained here while the other owner holds it; afterwards
    completed (finish=True) or resumed here, because that owner stopped early."""
    import threading

    from normbench.core import runlock

    members = _members(tmp_path, n_seeds=2)
    busy = members[0]
    lock = runlock.RunLock(busy.run_dir)

    def other_owner():
        time.sleep(0.6)
        if finish:
            runfolder.write_summary(busy.run_dir, {"status": "completed", "test_accuracy": 0.5})
        lock.release()

    threading.Thread(target=other_owner).start()
    ex, lines = FakeExecutor(), []
    failures = sw.run_sweep(members, executor=ex, echo=lines.append)
    assert failures == []
    assert any(ln.startswith(f"running elsewhere {busy.run_id}: pid {os.getpid()}; waiting for it") for ln in lines)
    if finish:
        assert ex.submitted == [members[1].run_id]
        assert f"completed elsewhere {busy.run_id}" in lines
    else:
        assert ex.submitted == [members[1].run_id, busy.run_id]


def test_two_concurrent_sweeps_train_each_member_once(tmp_path):
    out = tmp_path / "r"
    args = _tiny_args(out, "seed=0,1")
    procs = [_sweep_proc(*args) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outputs):
        assert p.returncode == 0, o + e
    rows = _index(out)
    assert sorted(r["seed"] for r in rows) == ["0", "1"]  # one row per member
    for d in sorted((out / "smoke_imdb_none").iterdir()):
        log = (d / "log.txt").read_text()
        assert log.count("normbench: resuming") == 1, log  # trained by one process only
        assert [int(r["epoch"]) for r in history_rows(d)] == [1]
        assert json.loads((d / "summary.json").read_text())["status"] == "completed"


def test_sigkill_of_the_driver_ends_its_members_and_a_rerun_trains_none_twice(tmp_path):
    out = tmp_path / "r"
    args = _tiny_args(out, "seed=0", extra=["train.epochs=8"])
    driver = _sweep_proc(*args)
    run_dir = _wait_for(lambda: next((h.parent for h in out.rglob("history.csv") if history_rows(h.parent)), None),
                        what="the member's first epoch")
    (member,) = _children(driver.pid)
    driver.kill()
    driver.wait()
    # the member got SIGTERM from the kernel (parent-death signal): it saved and stopped
    _wait_for(lambda: not _alive(member), timeout=60, what="the member to end")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    r = cli(*["sweep", *args])
    assert r.exit_code == 0, r.output
    assert [int(row["epoch"]) for row in history_rows(run_dir)] == list(range(1, 9))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert [row["path"] for row in _index(out)] == [f"smoke_imdb_none/{run_dir.name}"]


def runlock_holder(run_dir):
    from normbench.core import runlock

    return _wait_for(lambda: runlock.holder(run_dir), timeout=60, what="the member's lock")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_of_a_local_sweep_ends_every_member(tmp_path, sig):
    out = tmp_path / "r"
    driver = _sweep_proc(*_tiny_args(out, "seed=0,1"), "--jobs", "2")
    pids = _wait_for(lambda: (lambda c: c if len(c) == 2 else None)(_children(driver.pid)), what="both members")
    driver.send_signal(sig)  # to the driver only (a terminal's Ctrl-C would reach the members too)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert "interrupted; run the same command again to resume" in err
    assert not [p for p in pids if _alive(p)]  # none orphaned
    from normbench.core import runlock

    dirs = list(out.glob("*/*seed=*"))
    assert len(dirs) == 2 and all(runlock.holder(d) is None for d in dirs)  # and their folders are free


def test_resuming_a_finished_run_replaces_its_index_row(tmp_path):
    from normbench.store.runfolder import INDEX_COLUMNS, append_index

    out = tmp_path / "r"
    run_dir = out / "smoke" / "run-1"
    append_index(out, {"run_id": "run-0", "status": "completed"}, out / "smoke" / "run-0")
    append_index(out, {"run_id": "run-1", "status": "diverged"}, run_dir)
    append_index(out, {"run_id": "run-1", "status": "completed", "test_accuracy": 0.5}, run_dir)
    rows = _index(out)
    assert list(rows[0]) == INDEX_COLUMNS
    assert [(r["run_id"], r["status"], r["test_accuracy"]) for r in rows] == [("run-0", "completed", ""), ("run-1", "completed", "0.5")]


def test_resume_from_another_directory_indexes_beside_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", train__epochs=1, data__subset={"train": 160, "test": 64})
    (member,) = sw.load_sweep(str(cfg), grid_items=["seed=0"], output="r")  # a relative output.dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = cli("run", "--resume", tmp_path / member.run_dir, "-q")
    assert r.exit_code == 0, r.output
    assert not (elsewhere / "r").exists()
    assert [row["path"] for row in _index(tmp_path / "r")] == [f"smoke_imdb_ln/{member.run_id}"]


# ----------------------------------------------------------------------------- smaller CLI behaviours


def test_dry_run_creates_nothing(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    r = cli("sweep", cfg, "--grid", "seed=0,1", "--output", tmp_path / "r", "--dry-run")
    assert r.exit_code == 0, r.output
    assert r.output.split() == ["todo", str(tmp_path / "r/smoke_imdb_ln/imdb_rnn-norm=layer-bs=64-seed=0"),
                                "todo", str(tmp_path / "r/smoke_imdb_ln/imdb_rnn-norm=layer-bs=64-seed=1")]
    assert not (tmp_path / "r").exists()


def test_grid_errors_name_the_grid_flag(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    r = cli("sweep", cfg, "--grid", "model.norm=batch,bogus", "--output", tmp_path / "r")
    assert r.exit_code == 1
    assert r.output.startswith("Error: --grid model.norm=bogus: model.norm: unknown norm 'bogus'; choose one of")
    r = cli("sweep", cfg, "--grid", "seed", "--output", tmp_path / "r")
    assert r.output.strip() == "Error: --grid seed: expected key.path=a,b,c, e.g. --grid model.norm=batch,layer"
    # a bad value in the config's own sweep: section names the file, not a flag
    cfg = write_config(tmp_path / "s.yaml", sweep={"model.norm": ["bogus"]})
    r = cli("sweep", cfg, "--output", tmp_path / "r")
    assert r.output.startswith(f"Error: {cfg} (sweep): model.norm: unknown norm 'bogus'")
    assert not (tmp_path / "r").exists()


def test_fail_fast_from_the_command_line(tmp_path):
    r = cli("sweep", _labels_outside(tmp_path), "--grid", "seed=0,1", "--output", tmp_path / "r", "--fail-fast")
    assert r.exit_code == 1
    assert "FAILED mlp-norm=none-bs=64-seed=0: Error: data.path:" in r.output
    assert "1 member(s) failed:" in r.output
    assert not (tmp_path / "r/t/mlp-norm=none-bs=64-seed=1/log.txt").exists()  # never started


# ----------------------------------------------------------------------------- --seeds-until


def _until(out, half_width, max_seeds, *extra):
    return ["sweep", *_tiny_args(out), "--seeds-until", half_width, "--max-seeds", max_seeds,
            "--metric", "final_train_loss", *extra]


def test_seeds_until_stops_at_max_seeds_then_at_the_half_width(tmp_path):
    out = tmp_path / "r"
    # an unreachable precision: stops at --max-seeds
    r = cli(*_until(out, "1e-12", 2))
    assert r.exit_code == 0, r.output
    assert "round: 2 seeds per group (0, 1), 1 group" in r.output
    assert "seeds-until: --max-seeds 2 reached; 1 group(s) still wider than 1e-12" in r.output
    assert sorted(row["seed"] for row in _index(out)) == ["0", "1"]
    # a generous one: stops after the first round, reusing the seeds trained above
    r = cli(*_until(out, "100", 5))
    assert r.exit_code == 0, r.output
    assert "2 already completed, 0 to run" in r.output
    assert "seeds-until: every group's 95 % half-width of final_train_loss is <= 100 with 2 seeds; stopped" in r.output
    assert len(list((out / "smoke_imdb_none").iterdir())) == 2
    # --dry-run shows the rounds so far and the half-width, and writes nothing
    from scipy import stats

    losses = [json.loads((d / "summary.json").read_text())["final_train_loss"] for d in sorted((out / "smoke_imdb_none").iterdir())]
    expected = stats.t.interval(0.95, 1, loc=0, scale=stats.sem(losses))[1]
    r = cli(*_until(out, "1e-12", 3, "--dry-run"))
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "seeds-until 1e-12 on final_train_loss, at most 3 seeds, 1 group: 2 seeds finished in every group (0, 1)"
    assert lines[2].split()[:3] == ["imdb_rnn-norm=none-bs=64", "2", f"{expected:.4f}"]
    assert lines[-1] == "next round: seeds 0, 1, 2 in every group"
    assert len(list((out / "smoke_imdb_none").iterdir())) == 2


def test_seeds_until_resumes_after_sigkill_without_duplicating_a_seed(tmp_path):
    out = tmp_path / "r"
    args = _until(out, "1e-12", 3)[1:]
    driver = _sweep_proc(*args)
    first = _wait_for(lambda: next((d for d in out.glob("*/*seed=0") if (d / ".lock").exists()), None), what="a member")
    runlock_holder(first)
    driver.kill()
    driver.wait()
    r = cli("sweep", *args)
    assert r.exit_code == 0, r.output
    assert "seeds-until: --max-seeds 3 reached" in r.output
    rows = _index(out)
    assert sorted(row["seed"] for row in rows) == ["0", "1", "2"]
    for d in (out / "smoke_imdb_none").iterdir():
        assert [int(row["epoch"]) for row in history_rows(d)] == [1]
        assert json.loads((d / "summary.json").read_text())["status"] == "completed"


def test_a_diverged_member_is_kept_and_a_failed_one_trained_again(tmp_path):
    members = _members(tmp_path)
    runfolder.write_summary(members[0].run_dir, {"status": "diverged", "test_accuracy": 0.1})
    runfolder.write_summary(members[1].run_dir, {"status": "failed"})
    again, lines = FakeExecutor(), []
    assert sw.run_sweep(members, executor=again, echo=lines.append) == []
    assert again.submitted == [members[1].run_id, members[2].run_id]  # the diverged seed is not retrained
    assert lines[0].startswith("sweep: 3 members, 0 already completed, 1 diverged earlier (kept: a rerun diverges "
                               "the same way; delete a member's folder to train it again), 2 to run")
    assert json.loads((members[0].run_dir / "summary.json").read_text())["status"] == "diverged"


def test_output_that_is_a_file_is_one_line(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    f = tmp_path / "results.txt"
    f.write_text("not a folder")
    for extra in ((), ("--dry-run",)):
        r = cli("sweep", cfg, "--grid", "seed=0,1", "--output", f, *extra)
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert r.output.strip() == f"Error: --output {f}: is a file, not a folder; choose another --output or move the file"
    assert f.read_text() == "not a folder"


# ----------------------------------------------------------------------------- the executor contract


def test_executors_follow_the_contract_and_the_fakes_do_too():
    from normbench.orchestrate.executors import base as executors

    assert {"local", "ray"} <= set(executors.EXECUTORS)  # a new executor is one file: it joins them
    assert isinstance(executors.make_executor("local"), executors.Executor)
    assert isinstance(FakeExecutor(), executors.Executor)
    assert not isinstance(object(), executors.Executor)
    assert executors.options_of("ray") == ["address", "shared", "num_cpus"]


def test_executor_options_are_checked_and_converted(monkeypatch):
    from normbench.orchestrate.executors import base as executors

    made = {}

    @executors.register("probe")
    def _probe(jobs_per_node: int = 1, shared: bool = True, queue: str | None = None):
        """a probe"""
        made.update(jobs_per_node=jobs_per_node, shared=shared, queue=queue)
        return FakeExecutor()

    try:
        executors.make_executor("probe", address="ignored", executor_options=["jobs_per_node=4", "shared=false", "queue=a=b"])
        assert made == {"jobs_per_node": 4, "shared": False, "queue": "a=b"}  # --address: only where taken
        # the library's words (its parameters); the CLI renders them as --executor-option / --executor
        for opts, error in ((["nodes=2"], "executor_options nodes: not an option of executor probe; "
                                          "choose one of: jobs_per_node, shared, queue"),
                            (["jobs_per_node=x"], "executor_options jobs_per_node=x: expected an integer (option of executor probe)"),
                            (["shared=maybe"], "executor_options shared=maybe: expected true or false (option of executor probe)"),
                            (["queue"], "executor_options queue: expected KEY=VALUE, e.g. executor_options address=auto")):
            with pytest.raises(NormbenchError) as e:
                executors.make_executor("probe", executor_options=opts)
            assert str(e.value) == error
            assert e.value.render(_flag) == error.replace("executor_options", "--executor-option").replace(
                "executor probe", "--executor probe")
    finally:
        del executors.EXECUTORS["probe"]


def test_an_unknown_executor_option_is_one_line(tmp_path):
    r = cli("sweep", *_tiny_args(tmp_path / "r", "seed=0"), "--executor-option", "address=x")
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == "Error: --executor-option address: not an option of --executor local; it takes none"
    assert not list((tmp_path / "r").rglob("summary.json"))


def test_a_busy_exit_reads_as_running_elsewhere(tmp_path):
    from normbench.orchestrate.executors.base import Elsewhere, exit_result
    from normbench.core.runlock import BUSY_EXIT

    log = tmp_path / "log.txt"
    log.write_text("noise\nError: /r/x: already running (pid 4242); wait for it or stop it\n")
    busy = exit_result(BUSY_EXIT, log)
    assert isinstance(busy, Elsewhere) and busy == "pid 4242"
    assert exit_result(0, log) is None
    assert exit_result(1, log) == "Error: /r/x: already running (pid 4242); wait for it or stop it"
    assert exit_result(3, tmp_path / "missing.txt") == "exit status 3"


def test_a_half_width_just_above_the_target_never_prints_as_the_target():
    """0.01003 against --seeds-until 0.01 printed "0.0100  > 0.01" (a session's study log):
    as many decimals as it takes to tell it apart; at or below the target, four."""
    from normbench.analysis.stats import mean_ci
    from normbench.core.metrics import LEVEL

    base = [0.0, 2.0, 1.0, 3.0, 0.0]
    values = [v * 0.01003 / mean_ci(base, LEVEL).half_width for v in base]  # half-width 0.01003
    w = mean_ci(values, LEVEL).half_width
    assert format(w, ".4f") == "0.0100" and w > 0.01  # the case: four decimals would read as the target
    line = sw.format_round(sw.Round(seeds=5, values={"g": values}, unfinished=0), 0.01)[1]
    assert line.split()[2] == "0.01003" and line.endswith("> 0.01")
    assert sw.format_round(sw.Round(seeds=5, values={"g": values}, unfinished=0), 0.05)[1].split()[2] == "0.0100"
