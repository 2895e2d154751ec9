"""The bridges to the tools users already open (docs/bridges.md): TensorBoard event
files read back with TensorBoard's own reader, MLflow export read back with MlflowClient
from a real local store, the DataFrame API, `normbench ls` and live progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, TINY, cli
from normbench.store import runfolder

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

    from normbench.training import train

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


def _hparams_config(folder: Path):
    """The HParams experiment config TensorBoard finds in `folder`, read with its own
    reader and protos: ([metric titles in column order], {hparam: [values]})."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = _events(folder).PluginTagToContent("hparams")["_hparams_/experiment"]
    exp = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    hparams = {h.name: [getattr(v, v.WhichOneof("kind")) for v in h.domain_discrete.values] for h in exp.hparam_infos}
    metrics = [(m.name.group, m.name.tag, m.display_name) for m in exp.metric_infos]
    return metrics, hparams


def test_the_hparams_table_opens_on_the_headline(runs, tmp_path):
    """TensorBoard's HParams config: test accuracy, then validation accuracy, are the first
    metric columns, and only the keys that vary are hparams (the sweep's empty section,
    which leaked as "{}", and the constants are gone). The tiny run's own folder first,
    then a sweep's folder of three norms x two seeds."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    from conftest import write_run
    from normbench.training.callbacks import write_hparams_config

    metrics, hparams = _hparams_config(runs["tb"].parent)  # written when the TensorBoard run ended
    assert metrics[:2] == [("", "test_accuracy", "test accuracy"), ("validation", "epoch_accuracy", "validation accuracy")]
    assert list(hparams) == ["model.norm"]  # one run, nothing varied yet: the norm alone
    root = _events(runs["tb"])
    info = plugin_data_pb2.HParamsPluginData.FromString(
        root.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert "sweep" not in info.hparams and "{}" not in [v.string_value for v in info.hparams.values()]

    study = tmp_path / "r"
    for norm in ("batch", "layer", "none"):
        for seed in (0, 1):
            write_run(study, seed=seed, norm=norm, name="study", run_id=f"{norm}-{seed}")
    write_hparams_config(study / "study")
    metrics, hparams = _hparams_config(study / "study")
    assert [title for _, _, title in metrics] == ["test accuracy", "validation accuracy", "test loss", "validation loss",
                                                  "train accuracy", "train loss"]
    assert hparams == {"model.norm": ["batch", "layer", "none"], "seed": [0.0, 1.0]}


@pytest.mark.parametrize("command", ["run", "validate"])
def test_tensorboard_missing_fails_before_the_run_folder(tmp_path, monkeypatch, command):
    from normbench.core import checks

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

    from normbench.present.frames import run_name

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


def test_mlflow_runs_read_as_the_comparison(runs, mlflow_store):
    """What MLflow's runs table and charts show: run names that say norm and seed, the
    summary's constants as params (not one-point metric charts), per-epoch timestamps
    from the run's own epoch times, a training experiment, and the address of its runs
    table printed by the export."""
    from mlflow.tracking import MlflowClient

    from normbench.present.frames import run_name

    uri, output = mlflow_store
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("bridges")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # not MLflow 3's GenAI view
    assert output.splitlines()[-1] == (f"runs table: http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs "
                                       f"(after: mlflow ui --backend-store-uri {uri})")
    got = {mr.data.tags["normbench.run_id"]: mr for mr in client.search_runs([exp.experiment_id])}
    names = set()
    for key in ("tb", "plain"):
        run_dir = runs[key]
        mr, s = got[run_name(run_dir)], runfolder.read_summary(run_dir)
        names.add(mr.info.run_name)
        # seed is all that varies between the two runs (output.* is not a setting)
        assert mr.info.run_name == f"norm=none, seed={s['seed']}"
        p, m = mr.data.params, mr.data.metrics
        for k in ("n_train", "n_val", "n_test", "params", "steps_per_epoch", "epochs", "epochs_completed"):
            assert p[k] == str(s[k]) and k not in m, k
        assert p["versions.keras"] == s["versions"]["keras"] and "versions" not in p
        for k in ("test_accuracy", "test_loss", "best_val_accuracy", "wall_seconds", "mean_epoch_seconds"):
            assert m[k] == pytest.approx(s[k]) and k not in p, k
        rows = runfolder.read_history(run_dir)
        history = client.get_metric_history(mr.info.run_id, "val_accuracy")
        start = mr.info.start_time
        want, elapsed = [], 0.0
        for r in rows:
            elapsed += float(r["epoch_seconds"])
            want.append(start + int(elapsed * 1000))
        assert [h.timestamp for h in history] == want
        assert len(set(want)) == len(want)  # each epoch at its own time, not all at the end
    assert len(names) == 2


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
    from normbench.present.listing import age

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
    from normbench.orchestrate import sweep as sw

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

    from normbench.orchestrate.progress import Progress

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


def test_status_line_shows_steps_within_the_epoch_and_an_eta_that_moves(tmp_path):
    """Two members running for 60 s, one of them 40 % into its 5 epochs (epoch 3, step
    0 of 100 after 2 epochs) and the other no step yet; 3 left. The ETA is the running
    member's time to go (60 / 0.4 - 60 = 90 s) plus the mean total time (150 s) for each
    of the other 4, over 2 jobs; 30 s later, at step 50, it has shrunk."""
    from conftest import write_config
    from normbench.orchestrate import sweep as sw

    members = sw.load_sweep(str(write_config(tmp_path / "c.yaml", train__epochs=5)), grid_items=["seed=0,1"],
                            output=str(tmp_path / "r"))
    a, b = members
    runfolder.write_history(a.run_dir, [{"epoch": e, "loss": 1, "accuracy": 0.5, "val_loss": 1, "val_accuracy": 0.5,
                                         "learning_rate": 0.001, "epoch_seconds": 30} for e in (1, 2)])
    runfolder.write_progress(a.run_dir, 3, 0, 100)
    running = {a.run_id: (a, None, 1000.0), b.run_id: (b, None, 1000.0)}
    text = sw._status_text(0, 5, running, 3, [], 2, "", now=1060.0)
    assert text == (f"sweep: 0/5 done, 2 running, 3 left, ETA {sw._duration((90 + 150 * 4) / 2)} | "
                    f"{a.run_id} epoch 3/5 step 0/100, {b.run_id} epoch 0/5")
    runfolder.write_progress(a.run_dir, 3, 50, 100)
    later = sw._status_text(0, 5, running, 3, [], 2, "", now=1090.0)  # 2.5 epochs in 90 s: 180 s each
    assert later.startswith(f"sweep: 0/5 done, 2 running, 3 left, ETA {sw._duration((90 + 180 * 4) / 2)} | ")
    assert f"{a.run_id} epoch 3/5 step 50/100" in later


def test_a_training_run_writes_its_step_and_removes_it_at_the_end(tmp_path):
    """.progress during a real tiny run: each epoch's first step is written (at most once
    a second after that), with Keras' steps per epoch; gone when training ends."""
    import keras

    from normbench.training import train

    seen = []

    class Spy(keras.callbacks.Callback):
        def __init__(self, run_dir):
            super().__init__()
            self.run_dir = run_dir

        def on_epoch_end(self, epoch, logs=None):
            seen.append(runfolder.read_progress(self.run_dir))

    out = tmp_path / "r"
    with train.extra_callbacks(lambda ctx: Spy(ctx.run_dir)):
        r = cli("run", CIFAR, "-q", *_sets(*TINY, "train.epochs=2", f"output.dir={out}"))
    assert r.exit_code == 0, r.output
    (run_dir,) = [c.parent for c in out.rglob(runfolder.CONFIG)]
    steps = runfolder.read_summary(run_dir)["steps_per_epoch"]
    assert [p["epoch"] for p in seen] == [1, 2] and {p["steps"] for p in seen} == {steps}
    assert all(0 <= p["step"] < steps for p in seen)
    assert not (run_dir / runfolder.PROGRESS).exists()


def test_a_long_status_wraps_instead_of_being_cut():
    import io

    from normbench.orchestrate.progress import Progress, wrap

    names = [f"study_cifar10_small_batch-norm={n}-bs=2-learning_rate=0.001-seed={s}" for n in ("batch", "group")
             for s in range(2)]
    text = "sweep: 0/8 done, 4 running, 4 left | " + ", ".join(f"{n} epoch 1/5 step 10/313" for n in names)
    lines = wrap(text, 100)
    assert len(lines) > 1 and all(len(ln) <= 100 for ln in lines)
    assert " ".join(ln.strip() for ln in lines) == text  # every character kept: nothing cut
    assert all(any(n in ln for ln in lines) for n in names)  # each group name whole, on one line

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    p = Progress(tty, every=0)
    p.update("a " * 200)  # wider than any terminal
    shown = tty.getvalue()
    p.close()
    assert tty.getvalue() == shown + "\r\x1b[2K" + "\x1b[1A\x1b[2K" * shown.count("\n")  # every line cleared


# ----------------------------------------------------------------------------- Optuna


def test_optuna_db_names_the_metric_and_each_trials_runs(tmp_path):
    """optuna.db read back with Optuna itself (as optuna-dashboard reads it): each study's
    objective is named by the tune's --select, and each trial carries its run folders and
    seeds. The stand-in trainer (tests/tunefake.py) completes members at once."""
    optuna = pytest.importorskip("optuna")
    from conftest import write_config
    from normbench.orchestrate import tune
    from tunefake import FakeTrainer

    cfg = write_config(tmp_path / "c.yaml")
    spec = tune.load_spec(str(cfg), "model.norm=batch,none", [], output=str(tmp_path / "r"), trials=3,
                          ranges=["train.learning_rate=0.0001:0.1:log"])
    assert tune.run_tune(spec, executor=FakeTrainer(), jobs=4, echo=lambda s: None).failures == []
    folder = tmp_path / "r" / spec.cfg.name
    storage = f"sqlite:///{folder / 'optuna.db'}"
    for norm in ("batch", "none"):
        study = optuna.load_study(study_name=f"model.norm={norm}", storage=storage)
        assert study.metric_names == ["last_val_accuracy"]  # tune --select: the validation counterpart of --metric
        assert len(study.trials) == 3
        for t in study.trials:
            folders = t.user_attrs["normbench.run_folders"]
            assert t.user_attrs["normbench.seeds"] == [0, 1]  # the tuning seeds
            assert len(folders) == 2
            for f in folders:  # each a run folder of this norm at this trial's point, as run
                role = runfolder.read_role(folder / f)
                s = runfolder.read_summary(folder / f)
                assert role["role"] == "tuning" and s["norm"] == norm and s["status"] == "completed"
            lr = t.user_attrs["normbench.point"]["train.learning_rate"]
            assert lr == pytest.approx(t.params["train.learning_rate"], rel=1e-2)
            assert all(f"learning_rate={lr:g}" in f or f"learning_rate={lr}" in f for f in folders), (lr, folders)


# ----------------------------------------------------------------------------- formats for papers and scripts


def _three_norms(root: Path) -> Path:
    from conftest import write_run

    for norm, base in (("batch", 0.80), ("layer", 0.70), ("none", 0.60)):
        for seed in range(3):
            write_run(root, seed=seed, norm=norm, test_accuracy=base + 0.01 * seed, name="study_x",
                      run_id=f"{norm}_{seed}")
    write_run(root, seed=5, norm="none", summary=False, name="study_x", run_id="killed")
    return root


def test_compare_latex_is_one_booktabs_table_per_section_with_compares_numbers(tmp_path):
    import io

    import pandas as pd

    root = _three_norms(tmp_path / "r")
    r = cli("compare", root, "--format", "latex")
    assert r.exit_code == 0, r.output
    tex = r.stdout  # the note on the unfinished run goes to stderr
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert r"\caption{imdb\_rnn on synthetic\_imdb: 9 runs in 3 groups" not in tex  # the section is the CNN's
    assert r"\caption{cifar10\_cnn on synthetic\_cifar10: 9 runs in 3 groups: test\_accuracy" in tex
    body = tex[tex.index(r"\midrule") + len(r"\midrule"):tex.index(r"\bottomrule")].strip().splitlines()
    rows = [[c.strip() for c in line.removesuffix(r"\\").split("&")] for line in body]
    csv_rows = pd.read_csv(io.StringIO(cli("compare", root, "--format", "csv").stdout))
    assert [row[1] for row in rows] == list(csv_rows["model.norm"]) == ["batch", "layer", "none"]
    for row, (_, g) in zip(rows, csv_rows.iterrows()):
        assert row[3] == f"{g['test_accuracy_mean']:.4f} $\\pm$ {g['test_accuracy_std']:.4f}"
    assert rows[1][5].startswith("$-$0.1000 [$-$")  # minus signs, not hyphens
    assert tex.count(r"\item ") == 2  # a verdict per comparison with the best
    assert "_" not in tex.replace(r"\_", "")  # every underscore escaped


def test_ls_json_and_csv_load_into_pandas(tmp_path):
    import io
    import json

    import pandas as pd

    root = _three_norms(tmp_path / "r")
    r = cli("ls", root, "--format", "json")
    assert r.exit_code == 0, r.output
    df = pd.DataFrame(json.loads(r.stdout))  # the line docs/bridges.md gives
    assert len(df) == 10
    assert list(df.columns) == ["run", "status", "norm", "seed", "test_accuracy", "epochs_done", "epochs_total",
                                "age_seconds", "path"]
    by = df.set_index("run")
    assert by.loc["study_x/batch_2", "test_accuracy"] == pytest.approx(0.82)
    assert by.loc["study_x/killed", "status"] == "unfinished" and pd.isna(by.loc["study_x/killed", "test_accuracy"])
    csv_df = pd.read_csv(io.StringIO(cli("ls", root, "--format", "csv").stdout))
    assert list(csv_df["run"]) == list(df["run"])
    assert csv_df["test_accuracy"].tolist() == pytest.approx(df["test_accuracy"].tolist(), nan_ok=True)
    r = cli("ls", root, "--status", "failed", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []  # no rows: still valid JSON, nothing else on stdout
def test_mlflow_tells_apart_runs_of_one_config_on_different_data(tmp_path):
    """Issue 28: the same config in two output folders, trained on different data (another
    NORMBENCH_DATA_DIR), has the same run id and config.yaml; its identity (data
    fingerprint included) differs, so both are exported. A bit-identical copy of one of
    them in a third folder is the same run: already there."""
    import shutil

    from conftest import write_run

    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    a = write_run(tmp_path / "a", seed=0, run_id="r", data="cifar10")
    b = write_run(tmp_path / "b", seed=0, run_id="r", data="cifar10", fingerprint="sha256:" + "cd" * 32)
    assert (a / "config.yaml").read_bytes() == (b / "config.yaml").read_bytes()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = cli("export", "mlflow", tmp_path / "a", tmp_path / "b", "--tracking-uri", uri)
    assert r.exit_code == 0, r.output
    assert "exported 2 run(s)" in r.output
    shutil.copytree(a, tmp_path / "c" / a.parent.name / a.name)
    r = cli("export", "mlflow", tmp_path / "a", tmp_path / "b", tmp_path / "c", "--tracking-uri", uri)
    assert "exported 0 run(s)" in r.output and "3 already there" in r.output, r.output
    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs([client.get_experiment_by_name("normbench").experiment_id])
    assert sorted(m.data.tags["normbench.path"] for m in found) == sorted([str(a), str(b)])
    assert len({m.data.tags["normbench.store.identity"] for m in found}) == 2
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
    lines = sorted(next(ln for ln in o.strip().splitlines() if ln.startswith("exported")) for o in outs)
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
    from normbench.analysis.runs import load_runs

    run = sorted(three_runs.rglob("summary.json"))[1]
    run.unlink()
    run.mkdir()
    (bad,) = [r for r in load_runs([str(three_runs)]) if not r.completed]
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
