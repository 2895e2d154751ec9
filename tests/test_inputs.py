"""Hostile and broken inputs (issue 10): bad data is refused before any compute, small
YAML files cannot exhaust the machine, `validate` means the run will start, and library
errors keep their real reason. Each case: one line, exit status 1, no traceback, and no
run folder left looking complete."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, cli, write_config
from normbench.build import data as nbdata
from normbench.schema.config import from_dict, read_yaml


def _no_run_folder(out):
    assert not out.exists() or not list(out.rglob("config.yaml")), "a run folder was created"


# ----------------------------------------------------------------------------- data

IMDB_X = np.arange(80).reshape(8, 10) % 40 + 1
IMDB_Y = np.array([0, 1] * 4)
CIFAR_X = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3)).astype(np.uint8)
CIFAR_Y = np.arange(20) % 10


def _keras_imdb(rank_fix=None, **changes):
    """Keras' IMDB source format: object arrays of word-rank lists."""
    seqs = [[int(w) for w in row] for row in IMDB_X]
    if rank_fix:
        rank_fix(seqs)
    x = np.empty(len(seqs), dtype=object)
    x[:] = seqs
    return {"x_train": x, "y_train": IMDB_Y, "x_test": x, "y_test": IMDB_Y, **changes}


def _set(a, idx, value):
    a = a.copy()
    a[idx] = value
    return a


def _neg_rank(seqs):
    seqs[3][4] = -5


# (case, data set, arrays written to the .npz, expected text after "<file>: ")
DATA_CASES = [
    ("imdb-labels-0-4", "imdb", {"y_train": _set(IMDB_Y, 5, 4)},
     "y_train[5] = 4 is not a class of imdb (0-1); fix or replace the file"),
    ("imdb-keras-format-label", "imdb", _keras_imdb(y_test=_set(IMDB_Y, 6, 2)),
     "y_test[6] = 2 is not a class of imdb (0-1); fix or replace the file"),
    ("fractional-label", "imdb", {"y_train": _set(IMDB_Y.astype(float), 1, 0.5)},
     "y_train[1] = 0.5 is not an integer class label; fix or replace the file"),
    ("nan-label", "imdb", {"y_test": _set(IMDB_Y.astype(float), 7, np.nan)},
     "y_test[7] = nan is not a finite number; fix or replace the file"),
    ("text-labels", "imdb", {"y_train": np.array(list("01010101"))},
     "y_train has dtype <U1, expected numeric class labels; fix or replace the file"),
    ("negative-token-id", "imdb", {"x_train": _set(IMDB_X, (2, 3), -1)},
     "x_train[2, 3] = -1 is not a token id (integers >= 0); fix or replace the file"),
    ("nan-token-id", "imdb", {"x_test": _set(IMDB_X.astype(float), (4, 9), np.nan)},
     "x_test[4, 9] = nan is not a finite number; fix or replace the file"),
    ("negative-word-rank", "imdb", _keras_imdb(_neg_rank),
     "x_train[3][4] = -5 is not a word rank (integers >= 0); fix or replace the file"),
    ("x-y-length", "imdb", {"y_train": IMDB_Y[:7]},
     "x_train has 8 examples but y_train has 7 labels (one label per example); fix or replace the file"),
    ("empty-test-set", "imdb", {"x_test": IMDB_X[:0], "y_test": IMDB_Y[:0]},
     "the test set is empty (x_test has 0 examples, y_test 0 labels); fix or replace the file"),
    ("cifar-label-10", "cifar10", {"y_test": _set(CIFAR_Y, 13, 10)},
     "y_test[13] = 10 is not a class of cifar10 (0-9); fix or replace the file"),
    ("nan-pixel", "cifar10", {"x_train": _set(CIFAR_X / 255.0, (4, 5, 6, 2), np.nan)},
     "x_train[4, 5, 6, 2] = nan is not a finite number; fix or replace the file"),
    ("float-pixels-0-255", "cifar10", {"x_train": CIFAR_X.astype(np.float32)},
     f"x_train[0, 0, 0, 0] = {CIFAR_X[0, 0, 0, 0]} is outside [0, 1], the range of float pixels; "
     "store pixels as uint8 0-255 or as floats already scaled to [0, 1]"),
    ("int-pixel-300", "cifar10", {"x_test": _set(CIFAR_X.astype(np.int16), (9, 31, 0, 1), 300)},
     "x_test[9, 31, 0, 1] = 300 is outside 0-255, the range of integer pixels; "
     "store pixels as uint8 0-255 or as floats already scaled to [0, 1]"),
]


def _data_config(tmp_path, dataset, arrays):
    if dataset == "imdb":
        base = {"x_train": IMDB_X, "y_train": IMDB_Y, "x_test": IMDB_X, "y_test": IMDB_Y}
        model = {}
    else:
        base = {"x_train": CIFAR_X, "y_train": CIFAR_Y, "x_test": CIFAR_X, "y_test": CIFAR_Y}
        model = {"model__arch": "cifar10_cnn", "model__norm": "none"}
    path = tmp_path / f"{dataset}.npz"
    np.savez(path, **{**base, **arrays})
    cfg = write_config(tmp_path / "real.yaml", data__name=dataset, data__subset=None, data__path=str(path),
                       train__epochs=1, **model)
    return cfg, path


@pytest.mark.parametrize("case,dataset,arrays,expected", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_is_refused_before_training(tmp_path, out, case, dataset, arrays, expected):
    cfg, path = _data_config(tmp_path, dataset, arrays)
    r = cli("run", cfg, "--set", f"output.dir={out}", "-q")
    assert_one_line_error(r, f"Error: data.path: {path}: {expected}", out)
    assert r.output.startswith(f"Error: data.path: {path}: {expected}")
    _no_run_folder(out)


def test_bad_data_from_the_data_dir_names_the_variable(tmp_path, out, monkeypatch):
    monkeypatch.setenv("NORMBENCH_DATA_DIR", str(tmp_path))
    np.savez(tmp_path / "imdb.npz", x_train=IMDB_X, y_train=_set(IMDB_Y, 2, 3), x_test=IMDB_X, y_test=IMDB_Y)
    cfg = write_config(tmp_path / "real.yaml", data__name="imdb", data__subset=None)
    r = cli("run", cfg, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"$NORMBENCH_DATA_DIR: {tmp_path / 'imdb.npz'}: y_train[2] = 3 is not a class of imdb (0-1)", out)


def _data_cfg(**data):
    arch = "cifar10_cnn" if "cifar" in data["name"] else "imdb_rnn"
    return from_dict({"name": "t", "data": data, "model": {"arch": arch, "norm": "none"}}).data


def test_float_pixels_in_0_1_are_used_as_they_are(tmp_path):
    """A float copy already scaled to [0, 1] is not divided by 255 a second time: it gives
    the same images as the uint8 copy it came from."""
    scaled = CIFAR_X / 255.0
    np.savez(tmp_path / "u8.npz", x_train=CIFAR_X, y_train=CIFAR_Y, x_test=CIFAR_X, y_test=CIFAR_Y)
    np.savez(tmp_path / "f.npz", x_train=scaled, y_train=CIFAR_Y, x_test=scaled, y_test=CIFAR_Y)
    a = nbdata.load_data(_data_cfg(name="cifar10", path=str(tmp_path / "u8.npz")))
    b = nbdata.load_data(_data_cfg(name="cifar10", path=str(tmp_path / "f.npz")))
    assert a.x_train.dtype == np.uint8 and b.x_train.dtype == np.float32 and b.x_train.max() > 0.9
    np.testing.assert_allclose(a.x_train / 255.0, b.x_train, atol=1e-6)  # the model divides uint8 only


def test_checks_run_on_the_keras_download_too(monkeypatch):
    """Arrays from keras.datasets are checked like local ones, named by their source."""
    import keras

    x = np.array([[1, 5, 9], [1, 7]] * 2, dtype=object)
    fake = lambda num_words=None: ((x, np.array([0, 1, 0, 7])), (x, np.array([0, 1, 0, 1])))  # noqa: E731
    monkeypatch.delenv("NORMBENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(keras.datasets.imdb, "load_data", fake)
    with pytest.raises(nbdata.NormbenchError) as e:
        nbdata.load_data(_data_cfg(name="imdb", maxlen=4))
    assert str(e.value) == ("keras.datasets.imdb: y_train[3] = 7 is not a class of imdb (0-1); "
                            "delete Keras' cached copy in ~/.keras/datasets to download it again")


# ----------------------------------------------------------------------------- library errors


def test_reason_skips_tensorflow_decoration():
    from normbench import one_line
    from normbench.core.reasons import describe

    class InvalidArgumentError(Exception):
        pass

    text = (
        "Graph execution error:\n\nDetected at node compile_loss/SparseSoftmaxCrossEntropyWithLogits defined at "
        "(most recent call last):\n  File \"<stdin>\", line 5, in <module>\n\n  File \"/x/trainer.py\", line 399, in fit\n\n"
        "Received a label value of 5 which is outside the valid range of [0, 3).  Label values: 1 0 5 2\n"
        "\t [[{{node compile_loss/SparseSoftmaxCrossEntropyWithLogits}}]] [Op:__inference_multi_step_on_iterator_538]"
    )
    assert describe(InvalidArgumentError(text)) == (
        "InvalidArgumentError: Received a label value of 5 which is outside the valid range of [0, 3). Label values: 1 0 5 2"
    )
    long = "The first sentence says what broke. " + "x" * 400
    assert one_line(long, 300) == "The first sentence says what broke."
    assert describe(MemoryError()).startswith("out of memory (MemoryError); use a smaller train.batch_size")


def test_library_error_keeps_its_reason(tmp_path, out, monkeypatch):
    """With the data checks switched off, a label outside the classes reaches TensorFlow:
    the one line carries TensorFlow's reason, not "Graph execution error:"."""
    monkeypatch.setattr(nbdata, "check_arrays", lambda *a, **k: None)
    cfg, _ = _data_config(tmp_path, "cifar10", {"y_train": np.full(20, 12)})
    r = cli("run", cfg, "--set", f"output.dir={out}", "--set", "train.batch_size=4", "-q")
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and "Traceback" not in r.output and len(lines) == 1, r.output
    # TensorFlow's reason, whichever op meets the label first: the loss or the accuracy name label 12,
    # a segment op its flattened index (once seen: "segment_ids[3] = 42"); all say the classes 0-9
    assert lines[0].startswith("Error: training failed: InvalidArgumentError: "), lines[0]
    assert "[0, 10)" in lines[0] and "Graph execution error" not in lines[0], lines[0]
    assert lines[0].endswith("(set NORMBENCH_DEBUG=1 for the traceback)")
    assert_one_line_error(r, "training failed", out, started=True)  # and no summary says completed


def test_memory_error_is_one_line(tmp_path, out, monkeypatch):
    import normbench.build.models
    import normbench.training.train

    def oom(*a, **k):
        raise MemoryError()

    cfg = write_config(tmp_path / "c.yaml")
    monkeypatch.setattr(normbench.build.models, "build_model", oom)
    r = cli("validate", cfg)
    fix = "use a smaller train.batch_size, data.subset, data.maxlen or data.num_words, or free memory"
    assert r.exit_code == 1 and r.output.splitlines()[-1] == f"Error: out of memory (MemoryError); {fix}", r.output
    monkeypatch.setattr(normbench.training.train, "prepare", oom)
    r = cli("run", cfg, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"training failed: out of memory (MemoryError); {fix}", out)


# ----------------------------------------------------------------------------- YAML


def _laughs(path):
    """A "billion laughs": 9 levels of 9 aliases each, 9**9 zeros from ~400 bytes."""
    lines = ["name: lol", "data: {name: synthetic_imdb}", "model: {arch: imdb_rnn, norm: none}", "sweep:",
             "  a: &a [0,0,0,0,0,0,0,0,0]"]
    for prev, c in zip("abcdefgh", "bcdefghi"):
        lines.append(f"  {c}: &{c} [" + ",".join([f"*{prev}"] * 9) + "]")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_billion_laughs_is_refused_in_bounded_memory(tmp_path):
    """The real command in a subprocess limited to 2 GB of address space and 60 s: it
    must answer with one line at once (before the fix it ran out of memory or time)."""
    path = _laughs(tmp_path / "lol.yaml")
    assert path.stat().st_size < 500
    limit = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from normbench.cli import main
        sys.argv = ["normbench"] + sys.argv[1:]
        main()
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        r = subprocess.run([sys.executable, "-c", limit, "validate", "--no-model", str(path)],
                           capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("validate of a 400-byte YAML ran for 60 s")
    assert r.returncode == 1, r.stderr[-500:]
    assert r.stderr == f"Error: {path}: line 6: YAML aliases (*a) are not supported; write the value out in full\n"
    assert r.stdout == ""


def test_any_alias_is_refused(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("name: x\ndata: {name: synthetic_imdb}\nmodel: &m {arch: imdb_rnn, norm: none}\nsweep: {model: [*m]}\n")
    with pytest.raises(nbdata.NormbenchError) as e:
        read_yaml(path)
    assert str(e.value) == f"{path}: line 4: YAML aliases (*m) are not supported; write the value out in full"


@pytest.mark.parametrize("text,line,key,first", [
    ("name: a\nseed: 1\nname: b\n", 3, "'name'", 1),
    ("name: a\ntrain:\n  epochs: 1\n  batch_size: 8\n  epochs: 3\n", 5, "'epochs'", 3),
    ("name: a\ndata: {name: imdb, name: cifar10}\n", 2, "'name'", 2),
])
def test_duplicate_keys_are_an_error(tmp_path, out, text, line, key, first):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    r = cli("run", path, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"Error: {path}: line {line}: duplicate key {key} (first at line {first}); keep only one", out)


# ----------------------------------------------------------------------------- validate


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if anything loads data: these errors must come before."""
    def loaded(*a, **k):
        raise AssertionError("data were loaded before the error")

    monkeypatch.setattr(nbdata, "load_data", loaded)


LIMIT_CASES = [
    ("num-words", ["--set", "data.num_words=1000000000"],
     "--set data.num_words=1000000000: data.num_words: must be <= 100000, got 1000000000; "
     "IMDB has 88,584 distinct words, so 100000 already keeps every one"),
    ("maxlen", ["--set", "data.maxlen=1000000"],
     "--set data.maxlen=1000000: data.maxlen: must be <= 2500, got 1000000; "
     "the longest IMDB review has 2,494 tokens, so 2500 already keeps every one"),
    ("batch-size", ["--set", "train.batch_size=100000"],
     "--set train.batch_size=100000: train.batch_size: must be <= 8192, got 100000; use a smaller batch"),
    ("seed", ["--set", "seed=4294967296"],
     "--set seed=4294967296: seed: must be <= 4294967295, got 4294967296; Keras seeds NumPy, which takes 0 to 2**32-1"),
    ("synthetic-subset", ["--set", "data.subset={train: 1000000000, test: 10}"],
     "--set data.subset={train: 1000000000, test: 10}: data.subset.train: 1000000000 is more than the 25000 train "
     "examples synthetic_imdb generates at most; use at most 25000"),
    ("download-subset", ["--set", "data.name=cifar10", "--set", "model.arch=cifar10_cnn", "--set", "data.subset={train: 100, test: 20000}"],
     "--set data.subset={train: 100, test: 20000}: data.subset.test: 20000 is more than the 10000 test examples cifar10 has; "
     "use at most 10000"),
]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case,args,expected", LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_limits_are_checked_by_validate(tmp_path, out, no_data, command, case, args, expected):
    cfg = write_config(tmp_path / "c.yaml")
    r = cli(command, cfg, "--set", f"output.dir={out}", *args)
    assert_one_line_error(r, f"Error: {expected}", out)
    _no_run_folder(out)


def test_largest_seed_is_accepted(tmp_path):
    r = cli("validate", "--no-model", write_config(tmp_path / "c.yaml"), "--set", "seed=4294967295")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("where", ["file", "under-file"])
def test_output_dir_that_is_a_file(tmp_path, no_data, command, where):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder\n")
    target = blocker if where == "file" else blocker / "sub"
    r = cli(command, write_config(tmp_path / "c.yaml"), "--set", f"output.dir={target}")
    assert_one_line_error(
        r, f"Error: --set output.dir={target}: output.dir: {blocker} is a file, not a folder; "
        "choose another output.dir or move the file", tmp_path / "none")
    assert blocker.read_text() == "not a folder\n"


@pytest.mark.parametrize("command", ["validate", "run"])
def test_subset_larger_than_local_data(tmp_path, out, no_data, command):
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=IMDB_X, y_train=IMDB_Y, x_test=IMDB_X[:3], y_test=IMDB_Y[:3])
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__path=str(path), data__subset={"train": 8, "test": 4})
    r = cli(command, cfg, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"Error: {cfg}: data.subset.test: 4 is more than the 3 test examples in {path}; use at most 3", out)
    _no_run_folder(out)


def test_local_sizes_read_headers_only(tmp_path):
    """The sizes come from the .npz headers; Keras' object-array format included."""
    np.savez(tmp_path / "imdb.npz", **_keras_imdb())
    cfg = _data_cfg(name="imdb", path=str(tmp_path / "imdb.npz"))
    assert nbdata.local_sizes(cfg) == (str(tmp_path / "imdb.npz"), {"train": 8, "test": 8})
