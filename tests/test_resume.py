"""No interrupt loses finished epochs, and a resumed run is the run uninterrupted.

Every signal and fault here is put at an exact point of training by a hook
(tests/runhooks.py runs `normbench` in a fresh process with the hook installed): after
epoch 2's row and backup are written, inside the backup's save, inside the final test
evaluation, when the disk fills. Nothing races a timer. The runs are the smoke configs
on tiny subsets (160 training examples, 3 epochs); a resumed run is compared with the
same run uninterrupted, loss and accuracy columns digit for digit (CPU runs here are
reproducible run to run; see test_sweep.py's byte-identical property)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, cli
from normbench.build import optim
from normbench.store import runfolder

RUNHOOKS = Path(__file__).with_name("runhooks.py")
TINY3 = ["--set", "data.subset={train: 160, test: 64}", "--set", "train.epochs=3"]
CONFIGS = {  # both models, as shipped apart from the subset and epochs
    "imdb": [str(REPO / "configs/smoke/imdb_ln.yaml"), *TINY3],
    "cifar": [str(REPO / "configs/smoke/cifar10_bn.yaml"), *TINY3],
}
CURVES = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]  # epoch_seconds, learning_rate aside


def normbench(*args, hooks=()):
    """`normbench ARGS` in a fresh process with runhooks HOOKS installed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(RUNHOOKS), *hooks, "--", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)


def run_config(name, out, *extra, hooks=()):
    return normbench("run", *CONFIGS[name], "-q", "--set", f"output.dir={out}", *extra, hooks=hooks)


def the_run_dir(out) -> Path:
    (cfg,) = Path(out).rglob(runfolder.CONFIG)
    return cfg.parent


def curves(run_dir):
    return [tuple(r[c] for c in CURVES) for r in runfolder.read_history(run_dir)]


def counts(path):
    return json.loads(Path(path).read_text())


def backup_epoch(run_dir):
    return json.loads((run_dir / runfolder.BACKUP / "training_metadata.json").read_text())["epoch"]


def error_lines(p):
    """What the user reads on stderr, less TensorFlow's own start-up lines."""
    return [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith(("WARNING: All log messages", "I0000"))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted runs, each once per module: name -> (run folder, probe)."""
    done = {}

    def get(name):
        if name not in done:
            out = tmp_path_factory.mktemp(f"ref_{name}")
            p = run_config(name, out, hooks=[f"probe={out / 'probe.json'}"])
            assert p.returncode == 0, p.stderr[-3000:]
            done[name] = (the_run_dir(out), counts(out / "probe.json"))
        return done[name]

    return get


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Each model's run SIGKILLed right after epoch 2's row, best weights and backup
    were written; tests resume copies of it."""
    done = {}

    def get(name, dest):
        if name not in done:
            out = tmp_path_factory.mktemp(f"killed_{name}")
            p = run_config(name, out, hooks=["kill-after-epoch=2"])
            assert p.returncode == -9, p.stderr[-3000:]
            done[name] = the_run_dir(out)
        return Path(shutil.copytree(done[name], dest))

    return get


# ----------------------------------------------------------------------------- SIGKILL


@pytest.mark.parametrize("name", ["imdb", "cifar"])
def test_killed_after_epoch_2_resumes_to_the_uninterrupted_history(tmp_path, reference, killed, name):
    run_dir = killed(name, tmp_path / "run")
    assert [r[0] for r in curves(run_dir)] == ["1", "2"]
    assert not (run_dir / runfolder.SUMMARY).exists()  # nothing looks finished
    assert backup_epoch(run_dir) == 2

    p = normbench("run", "--resume", run_dir, "-q", hooks=[f"count={tmp_path / 'count.json'}"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert counts(tmp_path / "count.json")["epochs"] == 1  # only epoch 3 was trained
    ref_dir, _ = reference(name)
    assert curves(run_dir) == curves(ref_dir)  # Adam's state and BN's statistics came back too
    s, ref = runfolder.read_summary(run_dir), runfolder.read_summary(ref_dir)
    assert s["status"] == "completed" and s["epochs_completed"] == 3
    assert (s["test_accuracy"], s["test_loss"]) == (ref["test_accuracy"], ref["test_loss"])
    assert not (run_dir / runfolder.BACKUP).exists()


def test_garbage_rows_in_history_keep_the_backup(tmp_path, reference, killed):
    """A crash can leave a block of NUL bytes or a cut, undecodable line at the end of
    history.csv; the resume drops those rows and continues from the backup's epoch 2
    (it used to take the parse error for a broken backup and retrain from epoch 1)."""
    run_dir = killed("imdb", tmp_path / "run")
    with open(run_dir / runfolder.HISTORY, "ab") as f:
        f.write(b"\x00" * 48 + b"\n3,0.69\xff\xfe")

    p = normbench("run", "--resume", run_dir, "-q", hooks=[f"count={tmp_path / 'count.json'}"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert counts(tmp_path / "count.json")["epochs"] == 1  # continued from epoch 2
    # the NUL block reads as a blank line; the cut line is the row dropped
    assert error_lines(p) == [f"normbench: {run_dir / runfolder.HISTORY}: dropped 1 unreadable row(s); "
                              "continuing from the backup's epoch 2"]
    assert curves(run_dir) == curves(reference("imdb")[0])
    assert runfolder.read_summary(run_dir)["epochs_completed"] == 3


# ----------------------------------------------------------------------------- SIGTERM


def test_sigterm_inside_the_backup_save_finishes_the_save_first(tmp_path, reference):
    """SIGTERM between the model's weights and the optimizer's variables of epoch 1's
    backup: the save completes, then the run stops as interrupted; the resume gets
    Adam's moments back (a save cut there left weights without optimizer state, which
    Keras loads with only a warning) and ends exactly as the uninterrupted run."""
    out = tmp_path / "out"
    p = run_config("imdb", out, hooks=["term-in-backup-save"])
    run_dir = the_run_dir(out)
    assert p.returncode == 130, p.stderr[-3000:]
    assert f"Resume with: normbench run --resume {run_dir}" in p.stderr
    assert runfolder.read_summary(run_dir)["status"] == "interrupted"
    assert backup_epoch(run_dir) == 1

    p = normbench("run", "--resume", run_dir, "-q", hooks=[f"count={tmp_path / 'count.json'}"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Skipping variable loading for optimizer" not in p.stderr
    assert counts(tmp_path / "count.json")["epochs"] == 2
    assert curves(run_dir) == curves(reference("imdb")[0])


def test_sigterm_during_the_test_evaluation_then_resume_only_evaluates(tmp_path, reference):
    out = tmp_path / "out"
    p = run_config("imdb", out, hooks=["term-in-evaluate"])
    run_dir = the_run_dir(out)
    assert p.returncode == 130, p.stderr[-3000:]
    assert "interrupted; finished epochs are kept" in p.stderr
    assert runfolder.read_summary(run_dir)["status"] == "interrupted"
    assert backup_epoch(run_dir) == 3  # kept until summary.json is written
    history = (run_dir / runfolder.HISTORY).read_bytes()

    p = normbench("run", "--resume", run_dir, "-q", hooks=[f"count={tmp_path / 'count.json'}"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert counts(tmp_path / "count.json") == {"train_batches": 0, "epochs": 0, "evaluations": 1}
    assert (run_dir / runfolder.HISTORY).read_bytes() == history
    s, ref = runfolder.read_summary(run_dir), runfolder.read_summary(reference("imdb")[0])
    assert s["status"] == "completed" and s["epochs_completed"] == s["epochs"] == 3
    # the last epoch's weights came back from the backup: the test figures of the run
    assert (s["test_accuracy"], s["test_loss"]) == (ref["test_accuracy"], ref["test_loss"])
    assert not (run_dir / runfolder.BACKUP).exists()


# ----------------------------------------------------------------------------- full disk


def _no_temp_files(out):
    left = [p.name for p in Path(out).rglob(".*") if ".tmp" in p.name]
    assert left == [], left


def _assert_disk_full_line(p, run_dir):
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    assert error_lines(p) == [f"Error: output.dir: no space left on the device of {run_dir}; free some space, "
                              f"then resume with: normbench run --resume {run_dir}"]


def test_a_full_disk_is_one_line_and_resumes(tmp_path, reference):
    """Emulated (always runs): after epoch 1 the disk is full: history.csv's append still
    fits, the best weights' and summary's temp files and the backup do not."""
    out = tmp_path / "out"
    p = run_config("cifar", out, hooks=["disk-full-after-epoch=1"])
    run_dir = the_run_dir(out)
    _assert_disk_full_line(p, run_dir)
    _no_temp_files(out)
    assert not (run_dir / runfolder.SUMMARY).exists()
    assert backup_epoch(run_dir) == 1  # epoch 1's backup is intact

    p = normbench("run", "--resume", run_dir, "-q")
    assert p.returncode == 0, p.stderr[-3000:]
    assert curves(run_dir) == curves(reference("cifar")[0])


@pytest.fixture
def tiny_fs(tmp_path):
    """A 2 MB tmpfs (skipped where this process may not mount one)."""
    d = tmp_path / "fs"
    d.mkdir()
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True, text=True)
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs here ({e})")
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip()})")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_a_real_full_disk_is_one_line_and_resumes_once_space_is_back(tiny_fs, tmp_path, reference):
    """Output on a 2 MB filesystem: the IMDB model's 5 MB of best weights do not fit
    after epoch 1. Exit 1, one line, no temp files; with space back the resume ends as
    the uninterrupted run."""
    p = run_config("imdb", tiny_fs / "out")
    run_dir = the_run_dir(tiny_fs / "out")
    _assert_disk_full_line(p, run_dir)
    _no_temp_files(tiny_fs)
    # the removed temp file freed the room for a summary that says "failed": nothing looks finished
    assert runfolder.status(run_dir) in (None, "failed")

    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_fs)], check=True)
    p = normbench("run", "--resume", run_dir, "-q")
    assert p.returncode == 0, p.stderr[-3000:]
    assert curves(run_dir) == curves(reference("imdb")[0])
    _no_temp_files(tiny_fs)


# ----------------------------------------------------------------------------- what flags do


@pytest.fixture(scope="module")
def deterministic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("det")
    p = run_config("imdb", out, "--set", "train.deterministic=true", "--threads", "3",
                   hooks=[f"probe={out / 'probe.json'}"])
    assert p.returncode == 0, p.stderr[-3000:]
    return runfolder.read_summary(the_run_dir(out)), counts(out / "probe.json")


def test_deterministic_turns_op_determinism_on_in_the_run(deterministic_run, reference):
    """On this CPU runs are byte-identical without the flag too (test_sweep.py), so what
    the flag does is checked where it acts: inside the training process."""
    summary, probe = deterministic_run
    assert probe["op_determinism"] is True
    assert summary["deterministic"] is True and summary["op_determinism"] is True
    ref_dir, ref_probe = reference("imdb")
    assert ref_probe["op_determinism"] is False
    ref = runfolder.read_summary(ref_dir)
    assert ref["deterministic"] is False and ref["op_determinism"] is False


def test_threads_sets_tensorflow_threads_in_the_run(deterministic_run, reference):
    _, probe = deterministic_run
    assert (probe["intra_op_threads"], probe["inter_op_threads"]) == (3, 2)  # inter: at most 2
    _, ref_probe = reference("imdb")
    assert (ref_probe["intra_op_threads"], ref_probe["inter_op_threads"]) == (0, 0)  # TensorFlow's default


# ----------------------------------------------------------------------------- train.eval


def test_eval_best_restores_the_best_epochs_weights(tmp_path, out, monkeypatch):
    """train.eval: best. A hook flips the output layer's weights at the end of the last
    epoch's training, so its validation accuracy collapses and an earlier epoch is the
    best; the model the test evaluation ends with must then reproduce that epoch's
    validation accuracy, and no weight file may outlive the run."""
    import keras
    import numpy as np

    from normbench.training import train

    class FlipHead(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params["epochs"] == self._epoch + 1 and batch + 1 == self.params["steps"]:
                head = self.model.get_layer("head")
                head.set_weights([-w for w in head.get_weights()])

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    real_evaluate, seen = train._evaluate, {}

    def evaluate(model, data, cfg, best):
        result = real_evaluate(model, data, cfg, best)
        from normbench.build.data import split

        n_fit, _ = split(len(data.x_train), cfg.train.validation_split)  # Keras' split
        seen["val"] = model.evaluate(data.x_train[n_fit:], data.y_train[n_fit:], batch_size=cfg.train.batch_size,
                                     verbose=0, return_dict=True)
        return result

    monkeypatch.setattr(train, "_evaluate", evaluate)
    with train.extra_callbacks(lambda ctx: FlipHead()):
        r = cli("run", REPO / "configs/smoke/cifar10_none.yaml", "-q", "--set", f"output.dir={out}",
                "--set", "data.subset={train: 320, test: 64}", "--set", "train.epochs=3", "--set", "train.eval=best")
    assert r.exit_code == 0, r.output
    run_dir = Path(r.output.strip().rsplit(" -> ", 1)[1])
    s = runfolder.read_summary(run_dir)
    rows = {int(row["epoch"]): row for row in runfolder.read_history(run_dir)}
    assert s["eval"] == "best" and s["best_epoch"] < 3  # the flip made an earlier epoch the best
    best = rows[s["best_epoch"]]
    assert float(best["val_accuracy"]) > float(rows[3]["val_accuracy"])
    assert seen["val"]["accuracy"] == pytest.approx(float(best["val_accuracy"]), abs=1e-6)
    assert seen["val"]["loss"] == pytest.approx(float(best["val_loss"]), rel=1e-4)
    assert s["test_accuracy"] == s["test_accuracy_best"] != s["test_accuracy_last"]
    assert s["test_loss"] == s["test_loss_best"] != s["test_loss_last"]
    # no weight file outlives the run (.lock: the folder's lock, runlock.py)
    assert sorted(p.name for p in run_dir.rglob("*")) == [".lock", "config.json", "config.yaml", "history.csv", "summary.json"]


def test_an_atomic_write_cut_short_keeps_the_old_file_and_no_temp_file(tmp_path):
    from normbench.core.atomic import atomic_file, write_atomic

    target = tmp_path / "best.npz"
    write_atomic(target, b"old")
    with pytest.raises(OSError):
        with atomic_file(target, "wb") as f:
            f.write(b"half of the new")
            raise OSError(28, "No space left on device")  # what a full disk raises mid-write
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["best.npz"]
    write_atomic(target, "new")
    assert target.read_text() == "new"
