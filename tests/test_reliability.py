"""Reliability, round three (issue 18): what summary.json records is what Keras trained,
inputs that passed `validate` but could not run are refused there in one line, no run
folder goes missing from compare/plot without a word, `run --resume .` works. Each test
failed on the code before these fixes (docs/reliability.md lists the outcomes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, cli, write_config, write_run
from normbench.build import data, optim
from normbench.store import runfolder
from normbench.training import train

# ----------------------------------------------------------------------------- the split


def test_split_is_keras_own_formula():
    """data.split is the slicing of keras' train_validation_split, float expression included."""
    import keras

    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    for n, s in [(13, 0.3), (7, 0.5), (10, 0.7), (11, 0.9), (160, 0.2), (3, 0.34), (1001, 0.1)]:
        (tr, _), (va, _) = train_validation_split((np.zeros(n), np.zeros(n)), validation_split=s)
        assert data.split(n, s) == (len(tr), len(va)), (n, s)
    assert keras  # imported for its side effect of choosing the backend


@pytest.fixture
def seen():
    """What Keras' fit actually did, counted by a callback after normbench's own."""
    import keras

    counts = {"train_batches": [], "val_batches": 0, "iterations": None, "total_steps": None}

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            counts["train_batches"].append(0)

        def on_train_batch_begin(self, batch, logs=None):
            counts["train_batches"][-1] += 1

        def on_test_batch_begin(self, batch, logs=None):  # fit's validation (the test set is evaluated later)
            counts["val_batches"] += 1

        def on_train_end(self, logs=None):
            opt = self.model.optimizer
            counts["iterations"] = int(keras.ops.convert_to_numpy(opt.iterations))
            counts["total_steps"] = getattr(opt._learning_rate, "total_steps", None)  # what the schedule was built for

    with train.extra_callbacks(lambda ctx: Count()):  # the public hook: after normbench's own
        yield counts


# (examples, validation_split, batch): n * (1 - split) not whole, where ceil and floor differ
@pytest.mark.parametrize("n,split,batch", [(13, 0.3, 1), (7, 0.5, 2)])
def test_summary_counts_are_what_keras_fit_saw(out, seen, n, split, batch):
    r = cli("run", REPO / "configs/smoke/imdb_none.yaml", "-q", "--set", f"output.dir={out}",
            "--set", f"data.subset={{train: {n}, test: 4}}", "--set", "data.maxlen=12", "--set", "train.epochs=2",
            "--set", f"train.batch_size={batch}", "--set", f"train.validation_split={split}",
            "--set", "train.schedule=cosine")
    assert r.exit_code == 0, r.output
    s = json.loads(next(out.rglob("summary.json")).read_text())
    n_fit = int(np.floor(n * (1 - split)))  # Keras' slicing, written out again
    assert (s["n_train"], s["n_val"]) == (n_fit, n - n_fit)
    assert seen["train_batches"] == [s["steps_per_epoch"]] * 2 == [-(-n_fit // batch)] * 2
    assert s["optimizer_steps"] == seen["iterations"] == seen["total_steps"] == sum(seen["train_batches"])
    assert seen["val_batches"] == 2 * -(-(n - n_fit) // batch)
    if batch == 1:  # one example per batch: the counts are the examples themselves
        assert seen["train_batches"][0] == s["n_train"] and seen["val_batches"] == 2 * s["n_val"]


def test_budget_steps_uses_the_same_split():
    from normbench.schema.config import from_dict, read_yaml

    raw = read_yaml(REPO / "configs/smoke/imdb_none.yaml")
    raw["data"]["subset"] = {"train": 13, "test": 4}
    raw["train"].update(validation_split=0.3, batch_size=2, base_batch_size=1, budget="steps", epochs=2)
    p = optim.plan(from_dict(raw), 13)
    # n = floor(13 * 0.7) = 9: S = 5 at batch 2, 9 at batch 1; E = floor(2 * 9 / 5 + 1/2) = 4
    assert (p.n_fit, p.n_val, p.steps_per_epoch, p.epochs, p.total_steps) == (9, 4, 5, 4, 20)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_split_leaving_no_training_example_fails_in_validate(tmp_path, out, command):
    # 10 x (1 - 0.9) is 0.9999999999999998 in floats: Keras trains on 0 examples (the
    # old ceil said 1, passed validate, and Keras failed after the data loaded)
    cfg = write_config(tmp_path / "c.yaml", data__subset={"train": 10, "test": 4}, train__validation_split=0.9)
    r = cli(command, cfg, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"Error: {cfg}: data.subset.train: 10 examples leave no training or validation data at "
                              "validation_split 0.9 (Keras trains on the first floor(10 x (1 - 0.9)) = 0 and validates on 10); "
                              "use more, or change train.validation_split", out)
    assert not (out / "runs.csv").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_local_file_too_small_to_split_fails_in_validate(tmp_path, out, command):
    path = tmp_path / "imdb.npz"
    x = np.arange(30).reshape(3, 10) % 40 + 1
    np.savez(path, x_train=x, y_train=np.array([0, 1, 0]), x_test=x, y_test=np.array([0, 1, 0]))
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__path=str(path), data__subset=None,
                       train__validation_split=0.8)
    r = cli(command, cfg, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"Error: {cfg}: data.path: 3 examples leave no training or validation data at validation_split "
                              "0.8 (Keras trains on the first floor(3 x (1 - 0.8)) = 0 and validates on 3); "
                              f"{path} holds only 3 training examples; use a larger file, or change train.validation_split", out)


def test_a_whole_set_that_cannot_split_fails_in_validate(tmp_path, out):
    cfg = write_config(tmp_path / "c.yaml", data__subset=None)  # synthetic_imdb: 5000 training examples
    r = cli("validate", cfg, "--set", f"output.dir={out}", "--set", "train.validation_split=1e-17")
    assert_one_line_error(r, "Error: --set train.validation_split=1e-17: train.validation_split: 5000 examples leave no "
                              "training or validation data at validation_split 1e-17 (Keras trains on the first "
                              "floor(5000 x (1 - 1e-17)) = 5000 and validates on 0); the synthetic_imdb training set has "
                              "5000, or change train.validation_split", out)


# ----------------------------------------------------------------------------- values that validated but could not run

VALUE_CASES = [
    ("inf-lr", ["--set", "train.learning_rate=.inf"],
     "--set train.learning_rate=.inf: train.learning_rate: must be a finite number, got inf; e.g. 0.001"),
    ("inf-weight-decay", ["--set", "train.optimizer=adamw", "--set", "train.weight_decay=.inf"],
     "--set train.weight_decay=.inf: train.weight_decay: must be a finite number, got inf; e.g. 0.004"),
    ("lr-scaling-overflow", ["--set", "train.learning_rate=1e308", "--set", "train.lr_scaling=linear",
                             "--set", "train.base_batch_size=1"],
     "--set train.learning_rate=1e308: train.learning_rate: 1e+308 x the linear lr_scaling of batch 64 / 1 overflows "
     "to inf; use a smaller rate"),
    ("name-too-long", ["--set", "name=" + "n" * 300],
     f"--set name={'n' * 300}: name: the component '{'n' * 24}'... is 300 bytes, more than the 255 a file or folder name may have; shorten it"),
]


@pytest.mark.parametrize("case,args,expected", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_that_cannot_train_fail_in_validate(tmp_path, out, case, args, expected):
    cfg = write_config(tmp_path / "c.yaml")
    for command in ("validate", "run"):
        r = cli(command, cfg, "--set", f"output.dir={out}", *args)
        assert_one_line_error(r, f"Error: {expected}", out)


@pytest.mark.parametrize("key", ["output__dir", "data__path", "name"])
def test_a_nul_byte_in_a_path_fails_in_validate_and_sweep(tmp_path, out, key):
    cfg = write_config(tmp_path / "c.yaml", **{key: f"{out}/a\0b" if key != "name" else "a\0b"})
    dotted = key.replace("__", ".")
    for args in (["validate", cfg], ["run", cfg], ["sweep", cfg, "--grid", "seed=0,1", "--dry-run"],
                 ["sweep", cfg, "--grid", "seed=0,1"]):
        r = cli(*args)
        if key == "name":  # the folder-safe name check comes first
            assert_one_line_error(r, f"Error: {cfg}: name: 'a\\x00b' is not a folder-safe name", out)
        else:
            assert_one_line_error(r, f"Error: {cfg}: {dotted}: '{out}/a\\x00b' contains a NUL byte, which no path "
                                      "can hold; remove it", out)


def test_grid_data_paths_are_checked_before_the_first_member_trains(tmp_path, out, monkeypatch):
    good = tmp_path / "imdb.npz"
    x = np.arange(160).reshape(16, 10) % 40 + 1
    np.savez(good, x_train=x, y_train=np.arange(16) % 2, x_test=x, y_test=np.arange(16) % 2)
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__path=str(good), data__subset=None)
    monkeypatch.setattr(train, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a member trained")))
    missing = tmp_path / "missing.npz"
    for dry in ([], ["--dry-run"]):
        r = cli("sweep", cfg, "--set", f"output.dir={out}", "--grid", f"data.path={good},{missing}", *dry)
        assert_one_line_error(r, f"Error: --grid data.path={missing}: data.path: no such file {missing}; "
                                  "point it at a local imdb.npz, or set it to null to download", out)
    long = tmp_path / ("d" * 300)
    r = cli("sweep", cfg, "--set", f"output.dir={out}", "--grid", f"data.path={good},{long}", "--dry-run")
    assert_one_line_error(r, f"Error: --grid data.path={long}: data.path: the component '{'d' * 24}'... is 300 bytes, "
                              "more than the 255 a file or folder name may have; shorten it", out)


def test_sweep_member_folder_name_too_long(tmp_path, out):
    """Each --grid value is short enough, the member folder name they make is not."""
    deep = tmp_path / ("p" * 120) / ("q" * 120)
    deep.mkdir(parents=True)
    x = np.arange(160).reshape(16, 10) % 40 + 1
    for name in ("a.npz", "b.npz"):
        np.savez(deep / name, x_train=x, y_train=np.arange(16) % 2, x_test=x, y_test=np.arange(16) % 2)
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__subset=None)
    r = cli("sweep", cfg, "--set", f"output.dir={out}", "--grid", f"data.path={deep / 'a.npz'},{deep / 'b.npz'}", "--dry-run")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.startswith("Error: --grid data.path: the member folder name 'imdb_rnn-norm=layer-bs=64-path=_")
    assert "more than the 255 a folder name may have; use shorter values" in r.output


def test_sweep_output_with_a_nul_byte(tmp_path, out):
    r = cli("sweep", write_config(tmp_path / "c.yaml"), "--grid", "seed=0,1", "--output", f"{out}/a\0b", "--dry-run")
    assert_one_line_error(r, f"Error: --output '{out}/a\\x00b': '{out}/a\\x00b' contains a NUL byte, which no path "
                              "can hold; remove it", out)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_seeds_until_nan_is_refused(tmp_path, value):
    r = cli("sweep", write_config(tmp_path / "c.yaml"), "--seeds-until", value, "--max-seeds", "3", "--dry-run")
    assert r.exit_code == 2
    assert (f"Error: Invalid value for '--seeds-until': {value} is not a finite number; give the half-width to reach, "
            "e.g. 0.01") in r.output


def test_summary_json_never_holds_infinity(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    s = {k: None for k in runfolder.SUMMARY_KEYS if k not in runfolder.OPTIONAL_SUMMARY_KEYS}
    s.update(status="diverged", peak_learning_rate=float("inf"), final_train_loss=float("nan"), host={"x": [float("-inf")]})
    runfolder.write_summary(d, s)

    def refuse(name):
        raise AssertionError(f"{name} in summary.json")

    back = json.loads((d / "summary.json").read_text(), parse_constant=refuse)  # strict JSON
    assert back["peak_learning_rate"] is None and back["final_train_loss"] is None and back["host"] == {"x": [None]}


# ----------------------------------------------------------------------------- compare / plot find every run


def _compare(*paths):
    return cli("compare", *paths, "--format", "csv")


def test_a_symlinked_run_folder_is_compared_once(tmp_path):
    real, search = tmp_path / "elsewhere", tmp_path / "results"
    a = write_run(real, seed=0)
    write_run(search, seed=1)
    (search / "exp_batch" / "linked").symlink_to(a, target_is_directory=True)
    (search / "again").symlink_to(real, target_is_directory=True)  # the same run through a second link
    (search / "loop").symlink_to(search, target_is_directory=True)  # a link loop ends
    from normbench.analysis.runs import load_runs

    runs = load_runs([search])
    assert sorted(r.summary["seed"] for r in runs) == [0, 1]  # before: the linked run was not followed
    r = _compare(search)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1].split(",")[r.output.splitlines()[0].split(",").index("n")] == "2"


def test_a_folder_that_cannot_be_listed_is_reported_not_skipped(tmp_path, monkeypatch):
    search = tmp_path / "results"
    write_run(search, seed=0)
    write_run(search, seed=1)
    locked = write_run(search, seed=2, name="other").parent  # results/other: cannot be listed
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(os.fsdecode(path)) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # as chmod 000 would (the tests may run as root)
    r = cli("compare", search)
    assert r.exit_code == 0, r.output
    assert "not averaged: 1 run that did not complete" in r.output
    line = next(ln for ln in r.output.splitlines() if str(locked) in ln)
    assert "unreadable" in line and "cannot list this folder (permission denied), so runs in it are left out" in line
    r = cli("plot", search, "-o", tmp_path / "p.png")
    assert r.exit_code == 0, r.output
    assert f"not averaged: unreadable run {locked} (cannot list this folder (permission denied)" in r.output


def test_an_unreadable_summary_is_a_permissions_problem(tmp_path, monkeypatch):
    search = tmp_path / "results"
    write_run(search, seed=0)
    bad = write_run(search, seed=1)
    real_read = Path.read_text

    def read_text(self, *a, **k):
        if self == bad / "summary.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    r = cli("compare", search)
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if str(bad) in ln)
    assert "unreadable" in line and "cannot read summary.json (permission denied); a permissions or disk problem, " \
                                     "not a broken run: give yourself read access" in line
    assert "delete" not in line


# ----------------------------------------------------------------------------- run --resume .


def test_resume_dot_resolves_the_run_folder(tmp_path, out, monkeypatch):
    r = cli("run", write_config(tmp_path / "c.yaml"), "-q", "--set", f"output.dir={out}",
            "--set", "data.subset={train: 20, test: 4}", "--set", "data.maxlen=12", "--set", "train.epochs=1")
    assert r.exit_code == 0, r.output
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    s = json.loads((run_dir / "summary.json").read_text())
    runfolder.write_summary(run_dir, {**s, "status": "interrupted"})  # a run to resume
    monkeypatch.chdir(run_dir)
    r = cli("run", "--resume", ".", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((run_dir / "summary.json").read_text())["run_id"] == run_dir.name  # before: ""
    assert not (run_dir / "runs.csv").exists()  # before: written inside the run folder
    rows = (out / "runs.csv").read_text().splitlines()[1:]
    assert len(rows) == 1 and rows[0].startswith(f"{run_dir.name},")  # one line, replaced, beside the run
