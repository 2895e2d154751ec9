"""Every failure a user can cause: one line naming the file and the fix, non-zero exit,
no traceback, and no run folder left looking complete."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_one_line_error, cli, error_line, write_config
from normbench.build.data import DATASETS
from normbench.build.models import MODELS, PRECISIONS
from normbench.build.norms import NORMS
from normbench.build.optim import OPTIMIZERS

# the choice lists an error names come from the registries (a new entry changes no test)
_MODELS, _NORMS, _DATASETS, _OPTIMIZERS = (", ".join(r) for r in (MODELS, NORMS, DATASETS, OPTIMIZERS))


def _imdb_npz(path, n=20):
    """A tiny file in Keras' IMDB source format (object arrays of word-rank lists)."""
    rng = np.random.default_rng(0)
    seqs = np.empty(n, dtype=object)
    for i in range(n):
        seqs[i] = list(rng.integers(1, 50, rng.integers(5, 30)))
    y = np.array([0, 1] * (n // 2))
    np.savez(path, x_train=seqs, y_train=y, x_test=seqs, y_test=y)
    return path


def _case_files(tmp_path):
    """Set-up for each case: returns CLI args; `cfg` is a valid config to start from."""
    good = write_config(tmp_path / "good.yaml")
    imdb = _imdb_npz(tmp_path / "imdb.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all")
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((4, 3)), y_train=np.zeros(4))
    return good, imdb, garbage, partial


# (case id, how to make the config (kwargs to write_config, or raw text), extra args, expected text)
CASES = [
    ("malformed-yaml", "name: [unclosed\nseed: 0\n", [], "malformed YAML at line 2, column 5: expected ',' or ']', but got ':'; fix the syntax"),
    ("empty-file", "", [], "the file is empty"),
    ("not-a-mapping", "- a\n- b\n", [], "expected a mapping of sections"),
    ("unknown-top-key", {"nmae": "x"}, [], "nmae: unknown key; allowed keys here: name, data, model, seed, train, output, sweep"),
    ("unknown-nested-key", {"train__epoch": 3}, [], "train.epoch: unknown key; allowed keys here: epochs,"),
    ("wrong-type-str", {"train__epochs": "five"}, [], "train.epochs: expected an integer, got 'five'"),
    ("wrong-type-float", {"train__batch_size": 64.5}, [], "train.batch_size: expected an integer, got 64.5"),
    ("bool-for-int", {"train__epochs": True}, [], "train.epochs: expected an integer, got True"),
    ("section-not-mapping", {"data": 3}, [], "data: expected a mapping with keys name, path, subset"),
    ("missing-required", {"model__norm": None}, [], "model.norm: missing; add it (a string)"),
    ("unknown-norm", {"model__norm": "batchnorm"}, [], f"model.norm: unknown norm 'batchnorm'; choose one of: {_NORMS}"),
    ("unknown-model", {"model__arch": "resnet"}, [], f"model.arch: unknown model 'resnet'; choose one of: {_MODELS}"),
    ("unknown-dataset", {"data__name": "mnist"}, [], f"data.name: unknown dataset 'mnist'; choose one of: {_DATASETS}"),
    ("unknown-optimizer", {"train__optimizer": "adagrad"}, [], f"train.optimizer: unknown optimizer 'adagrad'; choose one of: {_OPTIMIZERS}"),
    ("negative-epochs", {"train__epochs": -1}, [], "train.epochs: must be >= 1, got -1"),
    ("zero-batch", {"train__batch_size": 0}, [], "train.batch_size: must be >= 1, got 0"),
    ("split-too-big", {"train__validation_split": 1.5}, [], "train.validation_split: must be between 0 and 1 (exclusive), got 1.5"),
    ("zero-lr", {"train__learning_rate": 0}, [], "train.learning_rate: must be > 0, got 0.0"),
    ("bad-jit", {"train__jit_compile": "yes"}, [], "train.jit_compile: unknown setting 'yes'; choose one of: auto, true, false"),
    ("bad-unroll", {"model__unroll": "yes"}, [], "model.unroll: unknown setting 'yes'; choose one of: auto, true, false"),
    ("unknown-backend", {"train__backend": "torch"}, [], "train.backend: unknown backend 'torch'; choose one of: tensorflow, jax"),
    ("unknown-precision", {"train__precision": "mixed_float16"}, [], f"train.precision: unknown precision 'mixed_float16'; choose one of: {', '.join(PRECISIONS)}"),
    ("groups-dont-divide", {"model__norm": "group", "model__norm_groups": 5}, [], "model.norm_groups: 5 groups do not divide the 32 channels that imdb_rnn normalizes; use one of: 1, 2, 4, 8, 16, 32"),
    ("model-data-mismatch", {"model__arch": "cifar10_cnn"}, [], "data.name: model cifar10_cnn needs image data, 'synthetic_imdb' is sequence data; use one of: "
     + ", ".join(n for n, e in DATASETS.items() if e.kind == "image" and (not e.shape or e.shape == (32, 32, 3)))),
    ("bad-name", {"name": "a/b"}, [], "name: 'a/b' is not a folder-safe name"),
    # 1 - 1e-17 is 1.0 in floats: Keras would keep all 10 for training and none to validate
    ("subset-leaves-no-val", {"data__subset": {"train": 10, "test": 1}, "train__validation_split": 1e-17}, [],
     "data.subset.train: 10 examples leave no training or validation data at validation_split 1e-17 (Keras trains on the "
     "first floor(10 x (1 - 1e-17)) = 10 and validates on 0); use more, or change train.validation_split"),
    ("set-no-equals", {}, ["--set", "train.epochs"], "--set train.epochs: expected key.path=value, e.g. --set train.epochs=3"),
    ("set-unknown-key", {}, ["--set", "train.foo=1"], "--set train.foo=1: train.foo: unknown key; allowed keys here: epochs,"),
    ("set-wrong-type", {}, ["--set", "train.epochs=abc"], "--set train.epochs=abc: train.epochs: expected an integer, got 'abc'"),
    ("set-out-of-range", {}, ["--set", "seed=-3"], "--set seed=-3: seed: must be >= 0, got -3"),
]


@pytest.mark.parametrize("case,config,extra,expected", CASES, ids=[c[0] for c in CASES])
def test_config_errors(tmp_path, out, case, config, extra, expected):
    path = tmp_path / "bad.yaml"
    if isinstance(config, str):
        path.write_text(config)
    else:
        write_config(path, **config)
    r = cli("run", path, "--set", f"output.dir={out}", *extra)
    assert_one_line_error(r, expected, out)
    where = str(path) if not any(e.startswith("train.") or e.startswith("seed") for e in extra) else "--set"
    assert where in r.output


def test_missing_config_file(tmp_path, out):
    r = cli("run", tmp_path / "nope.yaml")
    assert_one_line_error(r, f"{tmp_path / 'nope.yaml'}: no such config file; check the path", out)


def test_config_is_a_folder(tmp_path, out):
    r = cli("validate", tmp_path)
    assert_one_line_error(r, f"{tmp_path}: is a folder, not a config file; pass a .yaml file", out)


def test_unreadable_config(tmp_path, out):
    p = tmp_path / "binary.yaml"
    p.write_bytes(b"\xff\xfe\x00bad")
    r = cli("validate", p)
    assert_one_line_error(r, f"{p}: cannot read (UnicodeDecodeError); pass a readable UTF-8 YAML file", out)


DATA_CASES = [
    ("missing-data-file", lambda f: ["--set", f"data.path={f[0].parent / 'nope.npz'}"],
     "data.path: no such file {d}/nope.npz; point it at a local imdb.npz, or set it to null to download"),
    ("data-folder-without-file", lambda f: ["--set", f"data.path={f[0].parent / 'empty'}"],
     "data.path: folder {d}/empty holds none of imdb.npz; put the imdb data there or point data.path at the file"),
    ("unreadable-data-file", lambda f: ["--set", f"data.path={f[2]}"],
     "data.path: {d}/garbage.npz is not a .npz file (no zip archive inside); check the file is complete (re-download or re-copy it)"),
    ("npz-missing-arrays", lambda f: ["--set", f"data.path={f[3]}"],
     "data.path: {d}/partial.npz lacks the arrays x_test, y_test; a data .npz needs x_train, y_train, x_test, y_test"),
    ("subset-larger-than-data", lambda f: ["--set", f"data.path={f[1]}", "--set", "data.subset={train: 100, test: 10}"],
     "--set data.subset={{train: 100, test: 10}}: data.subset.train: 100 is more than the 20 train examples in {d}/imdb.npz; use at most 20"),
]


@pytest.mark.parametrize("case,args,expected", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_data_errors(tmp_path, out, case, args, expected):
    files = _case_files(tmp_path)
    (tmp_path / "empty").mkdir()
    cfg = write_config(tmp_path / "real.yaml", data__name="imdb", data__subset=None)
    r = cli("run", cfg, "--set", f"output.dir={out}", *args(files))
    assert_one_line_error(r, expected.format(d=tmp_path), out)
    assert not out.exists() or not list(out.rglob("config.yaml")), "no run folder before the data loads"


def _bad_npz(path, case):
    """A .npz data file with one fault (or no .npz at all)."""
    import pickle

    x, y = np.zeros((8, 4, 4, 3), "float32"), np.arange(8) % 2
    if case == "object-dtype":
        words = np.empty(8, dtype=object)
        words[:] = [[1, 2]] * 8
        np.savez(path, x_train=words, y_train=y, x_test=words, y_test=y)
    elif case == "missing-key":
        np.savez(path, x_train=x, y_train=y, x_test=x)
    elif case == "zero-test-rows":
        np.savez(path, x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    elif case == "pickle":
        path.write_bytes(pickle.dumps({"x_train": x, "y_train": y}))
    elif case == "empty-file":
        path.write_bytes(b"")
    elif case == "npy":
        np.save(open(path, "wb"), x)
    elif case == "labels-mismatch":
        np.savez(path, x_train=x, y_train=y[:7], x_test=x, y_test=y)
    return path


BAD_NPZ = [
    ("object-dtype", "data.path: {f}: x_train holds Python objects (dtype object), not numbers; store numeric arrays, "
                     "e.g. numpy.asarray(x, dtype='float32')"),
    ("missing-key", "data.path: {f} lacks the arrays y_test; a data .npz needs x_train, y_train, x_test, y_test"),
    ("zero-test-rows", "data.path: {f}: the test set is empty; fix the file"),
    ("pickle", "data.path: {f} is a Python pickle, not a .npz (normbench never unpickles data); save the arrays with "
               "numpy.savez(file, x_train=..., y_train=..., x_test=..., y_test=...)"),
    ("empty-file", "data.path: {f} is empty (0 bytes); check the file is complete (re-download or re-copy it)"),
    ("npy", "data.path: {f} is a single .npy array, not a .npz of four; save the arrays with "
            "numpy.savez(file, x_train=..., y_train=..., x_test=..., y_test=...)"),
    ("labels-mismatch", "data.path: {f}: x_train has 8 examples but y_train has 7 labels (one label per example); fix the file"),
]


@pytest.mark.parametrize("command", ["validate", "validate --no-model", "run"])
@pytest.mark.parametrize("case,expected", BAD_NPZ, ids=[c[0] for c in BAD_NPZ])
def test_bad_npz_is_one_line_in_validate_as_in_run(tmp_path, out, command, case, expected):
    """Your arrays .npz, broken five ways (issue 28): validate, with or without the model,
    gives run's line, read from the file's headers, before anything is built or printed
    (before: validate printed tracebacks, or a bare "Aborted!" for the empty file, and
    `validate --no-model` said OK)."""
    f = _bad_npz(tmp_path / "d.npz", case)
    cfg = write_config(tmp_path / "c.yaml", data={"name": "arrays", "path": str(f)}, output__dir=str(out),
                       model={"layers": [{"Flatten": {}}, {"norm": "vector"}, {"Dense": {"units": 2, "activation": "softmax"}}],
                              "norm": "batch"})
    r = cli(*command.split(), cfg, "-q" if command == "run" else "--smoke")
    assert_one_line_error(r, expected.format(f=f), out)
    assert error_line(r) == "Error: " + expected.format(f=f)


def test_bad_imdb_npz_is_refused_by_validate(tmp_path, out):
    """A built-in set's local .npz is checked the same way (before: `validate` said OK for
    an empty imdb.npz; `run` then failed)."""
    f = _bad_npz(tmp_path / "imdb.npz", "empty-file")
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__path=str(f), output__dir=str(out))
    r = cli("validate", "--no-model", cfg)
    assert_one_line_error(r, f"data.path: {f} is empty (0 bytes); check the file is complete (re-download or re-copy it)", out)


def test_env_data_dir_without_file(tmp_path, out, monkeypatch):
    monkeypatch.setenv("NORMBENCH_DATA_DIR", str(tmp_path))
    cfg = write_config(tmp_path / "real.yaml", data__name="imdb", data__subset=None)
    r = cli("run", cfg, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"$NORMBENCH_DATA_DIR={tmp_path} holds none of imdb.npz; put the imdb data there or unset it to download", out)


def test_unreachable_download(tmp_path, out, monkeypatch):
    """No internet: Keras' loader raises deep inside urllib; the user sees one line."""
    import keras

    def offline(*a, **k):
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv("NORMBENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(keras.datasets.imdb, "load_data", offline)
    cfg = write_config(tmp_path / "real.yaml", data__name="imdb", data__subset=None)
    r = cli("run", cfg, "--set", f"output.dir={out}")
    assert_one_line_error(r, "could not download IMDB through keras.datasets (URL fetch failure on https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz: None -- [Errno -3] Temporary failure in name resolution); without internet, set data.path (or $NORMBENCH_DATA_DIR) to a local copy", out)


def test_resume_not_a_run_folder(tmp_path, out):
    r = cli("run", "--resume", tmp_path)
    assert_one_line_error(r, f"{tmp_path}: not a run folder (no config.yaml); pass a folder that normbench run created", out)


def test_run_needs_config_or_resume():
    r = cli("run")
    assert r.exit_code == 2 and "give either CONFIG or --resume RUN_DIR" in r.output


def test_one_line_keeps_the_reason_and_marks_a_cut():
    from normbench import one_line

    e = ValueError("\n  labels must be in [0, 2); found 7 at index 3\nTraceback detail\n")
    assert one_line(e) == "labels must be in [0, 2); found 7 at index 3"  # first non-blank line only
    assert one_line(e, kind=True) == "ValueError: labels must be in [0, 2); found 7 at index 3"
    assert one_line(KeyError()) == one_line(KeyError(), kind=True) == "KeyError"
    long = "the reason " * 30
    for limit in (20, 80, 200):
        cut = one_line(RuntimeError(long), limit, kind=True)
        assert len(cut) <= limit and cut.endswith("...") and cut.startswith("RuntimeError: the")
        assert cut[:-3].split()[-1] in ("the", "reason")  # never mid-word
    assert one_line("short text", 10) == "short text"  # exactly the limit: not cut


def _failing_training(request):
    """Make training raise an error normbench does not know (as a bug or a library
    failure would), after the run folder exists (until the test ends)."""
    import keras

    from normbench.training import train

    class Fail(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            raise RuntimeError("the injected failure\nsecond line of detail")

    request.addfinalizer(train.add_callbacks(lambda ctx: Fail()))


def test_training_failure_is_one_line_and_recorded(tmp_path, out, monkeypatch, request):
    from normbench.store import runfolder

    monkeypatch.delenv("NORMBENCH_DEBUG", raising=False)
    _failing_training(request)
    cfg = write_config(tmp_path / "c.yaml", output__dir=str(out))
    r = cli("run", cfg, "-q")
    assert_one_line_error(r, "Error: training failed: RuntimeError: the injected failure "
                              "(set NORMBENCH_DEBUG=1 for the traceback)", out, started=True)
    (run_dir,) = [c.parent for c in out.rglob("config.yaml")]
    s = runfolder.read_summary(run_dir)
    assert s["status"] == "failed" and s["error"] == "RuntimeError: the injected failure"
    assert [line.split(",")[6] for line in (out / "runs.csv").read_text().splitlines()] == ["status", "failed"]


def test_normbench_debug_shows_the_traceback(tmp_path, out, request):
    """With NORMBENCH_DEBUG set the exception leaves normbench unconverted, so Python
    prints its traceback; without it (above) the user gets one line."""
    from click.testing import CliRunner

    from normbench.cli import main

    _failing_training(request)
    cfg = write_config(tmp_path / "c.yaml", output__dir=str(out))
    r = CliRunner().invoke(main, ["run", str(cfg), "-q"], env={"NORMBENCH_DEBUG": "1"})
    assert isinstance(r.exception, RuntimeError) and str(r.exception).startswith("the injected failure")
    assert r.exit_code == 1 and "training failed" not in r.output
    assert r.exc_info[2] is not None  # the traceback Python prints


def test_a_parameter_error_speaks_the_library_s_words_and_the_cli_s_flags():
    """The library names its own parameters; the CLI renders each as the option typed."""
    from normbench.cli import _flag
    from normbench.core.errors import ParamError
    from normbench.present.plots import check_band

    with pytest.raises(ParamError) as info:
        check_band("iqr")
    assert str(info.value) == "band iqr: unknown band; choose one of: ci, std"
    assert info.value.render(_flag) == "--band iqr: unknown band; choose one of: ci, std"
    e = ParamError("max_seeds", 0, "must be at least 1; or pass {seeds_until} {{none}} and {overrides}")
    assert str(e) == "max_seeds 0: must be at least 1; or pass seeds_until {none} and overrides"
    assert e.render(_flag) == "--max-seeds 0: must be at least 1; or pass --seeds-until {none} and --set"
