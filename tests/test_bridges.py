"""The bridges to the tools users already open (docs/bridges.md): TensorBoard event
files read back with TensorBoard's own reader, MLflow export read back with MlflowClient
from a real local store, the DataFrame API, `normbench ls` and live progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, TINY, cli
from normbench import runfolder

CIFAR = REPO / "configs/smoke/cifar10_none.yaml"
EPOCHS = 2


def _sets(*items):
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished tiny runs under one results folder: seed 0 with TensorBoard on,
    interrupted after epoch 1 (Ctrl-C, after that epoch's backup and event files) and
    resumed; seed 1 straight through."""
    import keras

    from normbench import train

    out = tmp_path_factory.mktemp("bridges") / "results"
    base = ["run", CIFAR, "-q", *_sets(*TINY, f"train.epochs={EPOCHS}", f"output.dir={out}")]

    class StopAfterFirst(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    with train.extra_callbacks(lambda ctx: StopAfterFirst()):
        r = cli(*base, *_sets("seed=0", "output.tensorboard=true"))
    assert r.exit_code == 130, r.output
    (tb_run,) = [c.parent for c in out.rglob(runfolder.CONFIG)]
    assert runfolder.read_summary(tb_run)["status"] == "interrupted"
    r = cli("run", "--resume", tb_run, "-q")
    assert r.exit_code == 0, r.output
    r = cli(*base, "--set", "seed=1")
    assert r.exit_code == 0, r.output
    (plain,) = [c.parent for c in out.rglob(runfolder.CONFIG) if c.parent != tb_run]
    return {"out": out, "tb": tb_run, "plain": plain}


# ----------------------------------------------------------------------------- TensorBoard


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})  # 0: keep every event
    acc.Reload()
    return acc


def _scalars(acc, tag):
    from tensorboard.util import tensor_util

    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def test_tensorboard_has_every_epoch_once_and_the_hparams(runs):
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir = runs["tb"]
    history = {int(r["epoch"]): r for r in runfolder.read_history(run_dir)}
    assert sorted(history) == [1, 2]
    train, val = _events(run_dir / "train"), _events(run_dir / "validation")
    for acc, prefix in ((train, ""), (val, "val_")):
        for metric in ("loss", "accuracy"):
            got = _scalars(acc, f"epoch_{metric}")
            # each epoch exactly once across the two processes' event files, as history.csv has it
            assert [s for s, _ in got] == [1, 2], (prefix, metric, got)
            assert [v for _, v in got] == pytest.approx([float(history[e][prefix + metric]) for e in (1, 2)], rel=1e-5)
    assert [s for s, _ in _scalars(train, "epoch_learning_rate")] == [1, 2]
    assert not [t for t in val.Tags()["tensors"] if t.startswith("evaluation_")]  # no per-iteration copies

    root = _events(run_dir)
    summary = runfolder.read_summary(run_dir)
    assert _scalars(root, "test_accuracy") == [(EPOCHS, pytest.approx(summary["test_accuracy"]))]
    assert len(root.Tensors("_hparams_/session_start_info")) == 1  # written once, not again on resume
    content = root.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hp = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
    assert info.group_name == run_dir.name
    assert hp["model.norm"] == "none" and hp["seed"] == 0 and hp["train.batch_size"] == 16
    assert hp["train.learning_rate"] == pytest.approx(0.001) and hp["data.subset.train"] == 160
    assert not [k for k in hp if k.startswith(("output.", "sweep."))]


@pytest.mark.parametrize("command", ["run", "validate"])
def test_tensorboard_missing_fails_before_the_run_folder(tmp_path, monkeypatch, command):
    from normbench import checks

    real = checks.installed
    monkeypatch.setattr(checks, "installed", lambda module: module != "tensorboard" and real(module))
    out = tmp_path / "results"
    r = cli(command, CIFAR, *(["-q"] if command == "run" else []),
            *_sets(*TINY, f"output.dir={out}", "output.tensorboard=true"))
    assert r.exit_code == 1
    # named where it was set (here the --set), by validate as by run
    assert r.output.splitlines()[-1] == ("Error: --set output.tensorboard=true: output.tensorboard: tensorboard is not "
                                         "installed; install it with `pip install 'normbench[tensorboard]'` or set output.tensorboard: false")
    assert not list(tmp_path.rglob(runfolder.CONFIG))  # nothing was started


def test_tensorboard_is_off_by_default(runs):
    assert not list(runs["plain"].rglob("events.out.tfevents.*"))


# ----------------------------------------------------------------------------- DataFrames


def test_load_runs_on_the_committed_study_matches_summary_json_and_the_readme():
    import normbench

    study = REPO / "results/study/study_cifar10_small_batch"
    summaries = {p.parent: json.loads(p.read_text()) for p in study.rglob(runfolder.SUMMARY)}
    df = normbench.load_runs(study)
    assert len(df) == len(summaries) == 72 and df["path"].is_unique
    for row in df.itertuples(index=False):
        s = summaries[Path(row.path)]
        assert (row.status, row.test_accuracy, row.epochs_completed) == (s["status"], s["test_accuracy"], s["epochs_completed"])
    row = df.set_index("run").loc["study_cifar10_small_batch/cifar10_cnn-norm=group-bs=2-seed=0"]
    assert (row["model.norm"], row["train.batch_size"], row["seed"]) == ("group", 2, 0)
    # results/cifar10_small_batch.md (committed compare output): group norm at batch 2, 0.4982 ± 0.0158
    g = df[(df["train.batch_size"] == 2) & (df["model.norm"] == "group")]["test_accuracy"]
    assert (round(g.mean(), 4), round(g.std(), 4), len(g)) == (0.4982, 0.0158, 3)


def test_load_history_is_long_form_and_joins_load_runs(runs):
    import normbench

    h = normbench.load_history(runs["out"])
    df = normbench.load_runs(runs["out"])
    assert list(h.columns) == ["run", "path", *runfolder.HISTORY_COLUMNS]
    assert sorted(h["path"].unique()) == sorted(df["path"]) == sorted(str(runs[k]) for k in ("tb", "plain"))
    for path, one in h.groupby("path"):
        rows = runfolder.read_history(path)
        assert list(one["epoch"]) == [1, 2] and list(one["val_accuracy"]) == [float(r["val_accuracy"]) for r in rows]
    assert set(df["status"]) == {"completed"} and set(df["output.tensorboard"]) == {True, False}


# ----------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_store(runs, tmp_path_factory):
    """One real local MLflow store (SQLite: creating it runs MLflow's migrations, once),
    the two runs exported into it through the CLI, and the export's output."""
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    r = cli("export", "mlflow", runs["out"], "--tracking-uri", uri, "--experiment", "bridges")
    assert r.exit_code == 0, r.output
    return uri, r.output


def test_mlflow_export_reads_back_with_mlflowclient(runs, mlflow_store):
    from mlflow.tracking import MlflowClient

    from normbench.frames import run_name

    uri, output = mlflow_store
    assert f"exported 2 run(s) to {uri} (experiment bridges); 0 already there, 0 not finished" in output
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("bridges")
    got = {mr.data.tags["normbench.run_id"]: mr for mr in client.search_runs([exp.experiment_id])}
    assert sorted(got) == sorted(run_name(runs[k]) for k in ("tb", "plain"))
    for key in ("tb", "plain"):
        run_dir = runs[key]
        mr, s = got[run_name(run_dir)], runfolder.read_summary(run_dir)
        p = mr.data.params
        assert (p["model.norm"], p["seed"], p["train.batch_size"], p["train.epochs"]) == ("none", str(s["seed"]), "16", str(EPOCHS))
        assert p["output.tensorboard"] == ("true" if key == "tb" else "false")
        assert mr.data.tags["normbench.status"] == "completed" and mr.info.status == "FINISHED"
        for metric in ("loss", "val_accuracy", "learning_rate"):
            history = client.get_metric_history(mr.info.run_id, metric)
            assert [m.step for m in history] == [1, 2]  # one point per epoch, step = the epoch
        rows = runfolder.read_history(run_dir)
        assert [m.value for m in client.get_metric_history(mr.info.run_id, "val_accuracy")] == \
            pytest.approx([float(r["val_accuracy"]) for r in rows])
        assert mr.data.metrics["test_accuracy"] == pytest.approx(s["test_accuracy"])
        assert sorted(a.path for a in client.list_artifacts(mr.info.run_id)) == ["config.yaml", "history.csv", "summary.json"]
        summary_copy = Path(client.download_artifacts(mr.info.run_id, "summary.json", str(run_dir.parent.parent.parent)))
        assert json.loads(summary_copy.read_text()) == s


def test_mlflow_export_twice_adds_nothing(runs, mlflow_store):
    from mlflow.tracking import MlflowClient

    uri, _ = mlflow_store
    r = cli("export", "mlflow", runs["out"], runs["tb"], "--tracking-uri", uri, "--experiment", "bridges")
    assert r.exit_code == 0, r.output
    assert "exported 0 run(s)" in r.output and "2 already there" in r.output
    client = MlflowClient(tracking_uri=uri)
    assert len(client.search_runs([client.get_experiment_by_name("bridges").experiment_id])) == 2


def test_mlflow_default_store_is_beside_the_results_and_not_a_run(runs, tmp_path):
    """Without --tracking-uri: <output.dir>/mlflow.db, artifacts in <output.dir>/mlartifacts,
    whose copies of run files compare, ls and a second export do not take for runs."""
    import shutil

    pytest.importorskip("mlflow")
    out = Path(shutil.copytree(runs["out"], tmp_path / "results"))
    plain = out / runs["plain"].relative_to(runs["out"])
    r = cli("export", "mlflow", plain)
    assert r.exit_code == 0, r.output
    assert f"exported 1 run(s) to sqlite:///{out.resolve() / 'mlflow.db'} (experiment normbench)" in r.output
    assert len(list((out / "mlartifacts").rglob("summary.json"))) == 1
    r = cli("export", "mlflow", out)
    assert "exported 1 run(s)" in r.output and "1 already there" in r.output  # the artifact copy is no run
    r = cli("ls", out)
    assert r.exit_code == 0 and len(r.output.splitlines()) == 3  # header and the two runs


def test_mlflow_missing_says_how_to_install(runs, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    monkeypatch.setitem(sys.modules, "mlflow.entities", None)
    r = cli("export", "mlflow", runs["out"])
    assert r.exit_code == 1
    assert r.output == "Error: mlflow: not installed; install it with: pip install 'normbench[mlflow]'\n"


# ----------------------------------------------------------------------------- ls


def test_ls_lists_and_filters_by_status(runs, tmp_path):
    import shutil

    out = Path(shutil.copytree(runs["out"], tmp_path / "results"))
    tb = out / runs["tb"].relative_to(runs["out"])
    (tb / runfolder.SUMMARY).unlink()  # killed before its summary: unfinished
    r = cli("ls", out)
    assert r.exit_code == 0, r.output
    header, *rows = [line.split() for line in r.output.splitlines()]
    assert header == ["run", "status", "norm", "seed", "test_acc", "epochs", "age"]
    by_name = {row[0]: row for row in rows}
    plain = runfolder.read_summary(runs["plain"])
    assert by_name[str(tb.relative_to(out))][1:6] == ["unfinished", "none", "0", "-", f"2/{EPOCHS}"]
    assert by_name[str(runs["plain"].relative_to(runs["out"]))][1:6] == \
        ["completed", "none", "1", f"{plain['test_accuracy']:.4f}", f"{EPOCHS}/{EPOCHS}"]
    r = cli("ls", out, "--status", "unfinished")
    assert [line.split()[0] for line in r.output.splitlines()[1:]] == [str(tb.relative_to(out))]
    r = cli("ls", out, "--status", "bogus")
    assert r.exit_code == 2 and "'bogus' is not one of 'running', 'completed'" in r.output


def test_age_reads_like_a_person_would_say_it():
    from normbench.listing import age

    assert [age(s) for s in (None, 5, 59, 60, 3 * 3600 + 5, 2 * 86400)] == ["-", "5s", "59s", "1m", "3h", "2d"]


# ----------------------------------------------------------------------------- progress


class _SlowFake:
    """Finishes each member 1.2 s after it starts (test_accuracy 0.5 + seed / 100), so the
    sweep's once-a-second status runs while members are under way."""

    name = "fake"

    def __init__(self):
        self.t = {}

    def submit(self, member, threads):
        import time

        self.t[member.run_id] = time.time()
        return member

    def poll(self, m):
        import time

        if time.time() - self.t[m.run_id] < 1.2:
            return False
        runfolder.write_summary(m.run_dir, {"status": "completed", "test_accuracy": 0.5 + m.config.seed / 100})
        return True

    def result(self, member, handle):
        return None

    def cancel(self, handle):
        pass


def test_seeds_until_progress_shows_counts_eta_and_half_widths(tmp_path):
    from scipy import stats

    from conftest import write_config
    from normbench import sweep as sw

    plan = sw.plan_seeds(str(write_config(tmp_path / "c.yaml")), 2, output=str(tmp_path / "r"))
    lines, status = [], []
    sw.sweep_until(plan, 1e-12, jobs=1, executor=_SlowFake(), echo=lines.append, status_line=status.append)
    assert status[0].startswith("sweep: 0/2 done, 1 running, 1 left; half-widths n/a until a group has 2 completed seeds")
    assert status[0].endswith(f" | imdb_rnn-norm=layer-bs=64-seed=0 epoch 0/{plan.cfg.train.epochs}")  # each running member
    assert [st for st in status if st.startswith("sweep: 1/2 done, 1 running, 0 left, ETA ")]  # after the first finished
    done = [ln for ln in lines if ln.startswith("[")]
    assert done[0].startswith("[1/2 done, 0 running, 1 left, ETA ") and "half-widths n/a" in done[0]
    w = stats.t.ppf(0.975, 1) * stats.sem([0.50, 0.51])
    assert done[1].startswith("[2/2 done, 0 running, 0 left, ETA 0m00s; widest half-width ")
    assert f"widest half-width {w:.4f} (" in done[1] and "target 1e-12" in done[1]


def test_progress_line_is_live_on_a_terminal_only():
    import io

    from normbench.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, log = Tty(), io.StringIO()
    for stream in (tty, log):
        p = Progress(stream, every=0)
        p.update("sweep: 0/2 done")
        p.line("[1/2 done] completed a")
        p.update("sweep: 1/2 done")
        p.close()
    assert log.getvalue() == "[1/2 done] completed a\n"  # CI and log files: the permanent lines only
    assert tty.getvalue() == "sweep: 0/2 done\r\x1b[2K[1/2 done] completed a\nsweep: 1/2 done\r\x1b[2K"


# ----------------------------------------------------------------------------- MLflow stores (issue 28)


@pytest.fixture
def three_runs(tmp_path):
    """Three finished hand-written runs (no training)."""
    from conftest import write_run

    out = tmp_path / "results"
    for seed in range(3):
        write_run(out, seed=seed)
    return out


def _mlflow_runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name("normbench").experiment_id])


def test_two_exports_at_once_on_a_fresh_store_both_succeed(three_runs, tmp_path):
    """Both processes reach MLflow's table creation together (a barrier hook in
    tests/runhooks.py holds the first until the second arrives, or 5 s): one creates the
    store and exports, the other waits for it and finds every run there (before: "table
    alembic_version already exists", a traceback)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    (tmp_path / "barrier").mkdir()
    cmd = [sys.executable, str(REPO / "tests/runhooks.py"), f"tables-barrier={tmp_path / 'barrier'}", "--",
           "export", "mlflow", str(three_runs), "--tracking-uri", uri]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    lines = sorted(o.strip().splitlines()[-1] for o in outs)
    assert lines == [f"exported 0 run(s) to {uri} (experiment normbench); 3 already there, 0 not finished",
                     f"exported 3 run(s) to {uri} (experiment normbench); 0 already there, 0 not finished"]
    assert len(_mlflow_runs(uri)) == 3


def _foreign_db(path):
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    con.execute("CREATE TABLE orders (id INTEGER)")
    con.commit()
    con.close()
    return path


def _tables(path):
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


STORES = [
    ("under-a-file", "afile/mlflow.db", "{d}/afile is a file, not a folder; choose a store path under a folder, or move the file"),
    ("a-folder", "adir", "{d}/adir is a folder, not a database file; name a file, e.g. {d}/adir/mlflow.db"),
    ("not-sqlite", "notes.db", "{d}/notes.db is not a SQLite database; name a new file or an MLflow store"),
    ("another-app", "app.db", "{d}/app.db is a SQLite database of another application (tables orders, users), not an "
                              "MLflow store, and MLflow would create its own tables inside it; name another file, "
                              "or pass --force to add them anyway"),
]


@pytest.mark.parametrize("case,name,expected", STORES, ids=[s[0] for s in STORES])
def test_a_store_path_mlflow_cannot_or_should_not_use_is_one_line(three_runs, tmp_path, case, name, expected):
    """Before: a FileExistsError traceback (under a file), MLflow's own errors, and for
    another application's SQLite file, MLflow's tables created inside it unasked."""
    pytest.importorskip("mlflow")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "notes.db").write_text("just notes\n")
    _foreign_db(tmp_path / "app.db")
    uri = f"sqlite:///{tmp_path / name}"
    r = cli("export", "mlflow", three_runs, "--tracking-uri", uri)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.strip().splitlines()[-1] == f"Error: --tracking-uri {uri}: " + expected.format(d=tmp_path)
    assert _tables(tmp_path / "app.db") == {"users", "orders"}  # untouched
    assert list((tmp_path / "adir").iterdir()) == [] and (tmp_path / "afile").read_text() == "x"


def test_force_exports_into_another_applications_sqlite_file(three_runs, tmp_path):
    pytest.importorskip("mlflow")
    db = _foreign_db(tmp_path / "app.db")
    r = cli("export", "mlflow", three_runs, "--tracking-uri", f"sqlite:///{db}", "--force")
    assert r.exit_code == 0, r.output
    assert {"users", "orders", "experiments", "runs"} <= _tables(db)
    assert len(_mlflow_runs(f"sqlite:///{db}")) == 3


def test_a_summary_json_that_is_a_folder_is_named_as_such(three_runs):
    """Before: "cannot read summary.json (Is a directory); a permissions or disk problem"."""
    from normbench import results

    run = sorted(three_runs.rglob("summary.json"))[1]
    run.unlink()
    run.mkdir()
    (bad,) = [r for r in results.load_runs([str(three_runs)]) if not r.completed]
    assert bad.problem == ("summary.json: is a folder, not the file normbench writes; move that folder out of "
                           "the run folder (it holds no result of this run) and try again")
    assert "permissions" not in cli("compare", three_runs).output


def _as_user_without_privileges(*args):
    """`normbench ARGS` in a process that file permissions bind: as is when not root;
    as root, with every capability dropped (setpriv), so a folder without write
    permission is read-only to it as to any user (Python lives under /root here, so
    switching to another uid cannot run it). None when neither is possible."""
    import os
    import shutil
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "normbench", *map(str, args)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            return None
        cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_export_into_a_read_only_results_folder_is_one_line_at_once(three_runs):
    """The default store beside read-only results: refused before MLflow opens it (before:
    MLflow retried "unable to open database file" for minutes, then one line)."""
    import os

    pytest.importorskip("mlflow")
    os.chmod(three_runs, 0o555)
    try:
        r = _as_user_without_privileges("export", "mlflow", three_runs)
        if r is None:
            pytest.skip("root without setpriv: cannot make a folder read-only to this process")
        assert r.returncode == 1, r.stdout + r.stderr
        uri = f"sqlite:///{three_runs.resolve() / 'mlflow.db'}"
        assert r.stderr.strip().splitlines()[-1] == (
            f"Error: the default store {uri}: {three_runs.resolve()} is not writable; give yourself write access, or "
            "export to a store in a folder you can write to (--tracking-uri sqlite:///FOLDER/mlflow.db)")
        assert "Traceback" not in r.stderr and not (three_runs / "mlflow.db").exists()
    finally:
        os.chmod(three_runs, 0o755)


def test_export_into_a_deleted_experiment_says_so(three_runs, tmp_path):
    """Before: "The experiment 1 must be in the 'active' state. Current state is deleted"."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 's.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.delete_experiment(client.create_experiment("gone"))
    r = cli("export", "mlflow", three_runs, "--tracking-uri", uri, "--experiment", "gone")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1] == (
        f"Error: mlflow {uri}: experiment gone is deleted (in MLflow's trash, which keeps its name); restore it "
        "(mlflow experiments restore) or choose another --experiment")
