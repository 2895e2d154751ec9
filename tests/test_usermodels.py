"""Your model, your data: model.layers, model.arch file.py:function, model.from, data
arrays / image_folder; end to end through the CLI, and their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import REPO, cli, error_line, sweep_here
from normbench import NormbenchError
from normbench.schema.config import from_dict
from normbench.build.models import build_model

TINY_CIFAR = {"name": "t", "data": {"name": "synthetic_cifar10", "subset": {"train": 64, "test": 32}},
              "train": {"epochs": 1, "batch_size": 32}}


def _summary(m):
    return [(type(layer).__name__, layer.name, layer.output.shape, layer.count_params()) for layer in m.layers]


@pytest.mark.parametrize("arch,data,norm", [("cifar10_cnn", "synthetic_cifar10", "batch"),
                                            ("cifar10_cnn", "synthetic_cifar10", "group"),
                                            ("imdb_rnn", "synthetic_imdb", "layer")])
def test_yaml_tutorial_models_match_the_registered_builders(arch, data, norm):
    base = {"name": "t", "data": {"name": data}}
    reg = build_model(from_dict({**base, "model": {"arch": arch, "norm": norm}}), 10 if arch == "cifar10_cnn" else 2)
    own = build_model(from_dict({**base, "model": {"layers": f"{REPO}/configs/models/{arch}.yaml", "norm": norm}}),
                      10 if arch == "cifar10_cnn" else 2)
    assert _summary(own) == _summary(reg)
    assert own.count_params() == reg.count_params() and own.layers[0].input.dtype == reg.layers[0].input.dtype


def _cfg(tmp_path, model, data=None, **train):
    raw = {**TINY_CIFAR, "model": model, "output": {"dir": str(tmp_path / "results")}}
    if data:
        raw["data"] = data
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import subprocess
    import sys

    p = tmp_path_factory.mktemp("m") / "their.keras"
    subprocess.run([sys.executable, str(REPO / "examples/make_model.py"), str(p)], check=True, capture_output=True)
    return p


def test_saved_model_validate_lists_every_slot_and_checks_groups(tmp_path, saved):
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "group", "norm_groups": 3, "insert_after": ["dense"]}))
    assert r.exit_code == 1  # 3 groups do not divide bn_1's 16 channels
    assert error_line(r) == ("Error: model.norm_groups: 3 groups do not divide the 16 channels of slot bn_1 "
                             "(slot bn_1); use one of: 1, 2, 4, 8, 16")
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "layer", "insert_after": ["conv_1"]}))
    assert r.exit_code == 0, r.output
    slots = [line for line in r.output.splitlines() if line.startswith("# slot")]
    assert slots == [
        "# slot conv_1_norm: conv, input (None, 32, 32, 16), (inserted) -> LayerNormalization(axis=[1, 2, 3])",
        "# slot bn_1: conv, input (None, 32, 32, 16), BatchNormalization(axis=-1) -> LayerNormalization(axis=[1, 2, 3])",
        "# slot bn_2: conv, input (None, 16, 16, 32), BatchNormalization(axis=-1) -> LayerNormalization(axis=[1, 2, 3])",
        "# slot bn_dense: vector, input (None, 64), BatchNormalization(axis=-1) -> LayerNormalization(axis=[-1])",
    ]


def test_keep_weights_keeps_the_saved_non_norm_weights(saved):
    import keras

    src = keras.saving.load_model(saved, compile=False)
    for keep in (True, False):
        cfg = from_dict({**TINY_CIFAR, "model": {"from": str(saved), "norm": "none", "keep_weights": keep or None}})
        model = build_model(cfg, 10)
        same = np.array_equal(model.get_layer("conv_1").get_weights()[0], src.get_layer("conv_1").get_weights()[0])
        assert same is keep
        assert "bn_1" in [layer.name for layer in model.layers] and type(model.get_layer("bn_1")).__name__ == "Identity"


def test_three_model_paths_train_and_compare_groups_them_by_norm(tmp_path, saved):
    out = tmp_path / "results"
    configs = {
        "layers": {"layers": f"{REPO}/configs/models/cifar10_cnn.yaml"},
        "python": {"arch": f"{REPO}/examples/resnet.py:build"},
        "from": {"from": str(saved)},
    }
    for kind, model in configs.items():
        raw = {**TINY_CIFAR, "name": kind, "model": {**model, "norm": "batch"}, "output": {"dir": str(out)}}
        p = tmp_path / f"{kind}.yaml"
        p.write_text(yaml.safe_dump(raw))
        if kind == "from":  # a sweep names its members after the model file
            sweep_here(p, "model.norm=batch,none")
            assert sorted(d.name for d in (out / kind).iterdir() if d.is_dir()) == [
                f"{saved.stem}-norm={n}-bs=32-seed=0" for n in ("batch", "none")]
            continue
        for norm in ("batch", "none"):
            r = cli("run", p, "--quiet", "--set", f"model.norm={norm}")
            assert r.exit_code == 0, r.output
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs
    from normbench.store import runfolder

    runs = load_runs([str(out)])
    assert len(runs) == 6 and all(r.completed for r in runs)
    for r in runs:
        s = runfolder.read_summary(r.path)
        assert s["model_sha256"].startswith("sha256:") and s["norm_slots"]
    comp = results.compare(runs)
    assert len(comp.groups) == 6  # three models x two norms, never mixed
    text = cli("compare", str(out)).output
    assert "examples/resnet.py:build on synthetic_cifar10" in text and f"{saved} on synthetic_cifar10" in text


def _arrays(path, n_train=40, n_test=20, classes=3, shape=(6, 6, 3), y_test=None):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.random((n_train, *shape)).astype("float32"), y_train=np.arange(n_train) % classes,
             x_test=rng.random((n_test, *shape)).astype("float32"),
             y_test=np.arange(n_test) % classes if y_test is None else y_test)
    return path


def test_arrays_data_trains_a_layers_model_and_infers_classes(tmp_path):
    f = _arrays(tmp_path / "d.npz")
    model = {"layers": [{"Conv2D": {"filters": 4, "kernel_size": 3}}, {"norm": "conv"}, {"Flatten": {}},
                        {"Dense": {"units": 3, "activation": "softmax"}}], "norm": "batch"}
    r = cli("run", _cfg(tmp_path, model, {"name": "arrays", "path": str(f)}), "--quiet")
    assert r.exit_code == 0, r.output
    from normbench.analysis.runs import load_runs

    (run,) = load_runs([str(tmp_path / "results")])
    assert run.summary["n_test"] == 20 and run.summary["model_source"] == "model.layers"


def test_image_folder_data(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 4)):
        for c in ("cat", "dog"):
            (tmp_path / "img" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype="uint8")).save(tmp_path / "img" / split / c / f"{i}.png")
    model = {"layers": [{"Rescaling": {"scale": 0.00392}}, {"Flatten": {}}, {"Dense": {"units": 4}}, {"norm": "vector"},
                        {"Dense": {"units": 2, "activation": "softmax"}}], "norm": "layer"}
    data = {"name": "image_folder", "path": str(tmp_path / "img"), "image_size": [8, 8]}
    r = cli("run", _cfg(tmp_path, model, data), "--quiet")
    assert r.exit_code == 0, r.output
    from normbench.analysis.runs import load_runs

    (run,) = load_runs([str(tmp_path / "results")])
    assert run.summary["n_test"] == 8 and run.completed


LAYERS = [{"Flatten": {}}, {"Dense": {"units": 4}}, {"norm": "vector"}, {"Dense": {"units": 10, "activation": "softmax"}}]


@pytest.mark.parametrize("key,value", [("unroll", True), ("unroll", 4), ("unroll", "auto"), ("rnn", "fast"),
                                       ("norm_placement", "recurrent")])
def test_a_user_model_refuses_the_keys_only_imdb_rnn_reads(tmp_path, key, value):
    """model.unroll, model.rnn and model.norm_placement shape the built-in imdb_rnn only:
    a user's model would ignore them silently, so validate refuses each one set."""
    r = cli("validate", _cfg(tmp_path, {"layers": LAYERS, "norm": "layer", key: value}))
    assert error_line(r) == (f"Error: {tmp_path}/c.yaml: model.{key}: your own model does not read it, only the built-in "
                             "imdb_rnn does; remove it")


@pytest.mark.parametrize("path", ["from", "arch"])
def test_every_kind_of_user_model_refuses_them_and_names_the_set(tmp_path, saved, path):
    builder = tmp_path / "b.py"
    builder.write_text("def build(norm, input_shape, num_classes):\n    raise ValueError('not built')\n")
    p = _cfg(tmp_path, {path: str(saved) if path == "from" else f"{builder}:build", "norm": "layer"})
    assert error_line(cli("validate", p, "--set", "model.unroll=1")) == (
        "Error: --set model.unroll=1: model.unroll: your own model does not read it, only the built-in imdb_rnn does; "
        "remove it")
    assert error_line(cli("validate", p, "--set", "model.params.width=4")) == (
        "Error: --set model.params.width=4: model.params.width: your own model reads no model.params (they are a "
        "built-in model's options); remove it")


def test_a_user_model_written_with_those_keys_at_their_defaults_validates(tmp_path):
    """Only a key set away from its default is refused: the defaults say nothing."""
    model = {"layers": LAYERS, "norm": "layer", "unroll": False, "rnn": "keras", "norm_placement": "between"}
    r = cli("validate", _cfg(tmp_path, model))
    assert r.exit_code == 0, r.output


class Sub:
    pass


@pytest.mark.parametrize("case", ["unknown-layer", "bad-args", "shape", "missing-file", "labels", "input-shape",
                                  "subclassed", "lambda", "no-module", "no-function", "raises", "groups"])
def test_user_model_errors_are_one_line(tmp_path, case, saved):
    dense = {"Dense": {"units": 3, "activation": "softmax", "name": "head"}}
    f = _arrays(tmp_path / "d.npz")
    arrays = {"name": "arrays", "path": str(f)}
    builder = tmp_path / "b.py"
    builder.write_text("def build(norm, input_shape, num_classes):\n    raise ValueError('no luck')\n")
    model, data, expected = None, arrays, None
    if case == "unknown-layer":
        model = {"layers": [{"Flatten": {}}, {"Dense2": {"units": 3}}]}
        expected = "Error: model.layers[1] (Dense2): unknown layer class 'Dense2'; use a keras.layers class name, e.g. Dense"
    elif case == "bad-args":
        model = {"layers": [{"Flatten": {}}, {"Dense": {"units": 3, "unit": 3, "name": "head"}}]}
        expected = ("Error: model.layers[1] (Dense head): bad arguments (ValueError: Unrecognized keyword arguments "
                    "passed to Dense: {'unit': 3}); see keras.layers.Dense")
    elif case == "shape":
        model = {"layers": [{"Flatten": {}}, {"norm": "conv"}, dense]}
        expected = "Error: model.layers[1] (norm conv): a conv slot takes rank-4 input, this one gets (None, 108); use norm vector"
    elif case == "missing-file":
        model = {"from": str(tmp_path / "nope.keras")}
        expected = (f"Error: {tmp_path}/c.yaml: model.from: no such file {tmp_path}/nope.keras; save your model with "
                    "model.save('model.keras') and point here")
    elif case == "labels":
        f = _arrays(tmp_path / "d.npz", y_test=np.full(20, 5))
        model, data = {"layers": [{"Flatten": {}}, dense], "norm": "none"}, {**arrays, "classes": 3}
        expected = f"Error: data.path: {f}: y_test[0] = 5 is not a class (0-2, data.classes: 3); fix the labels or data.classes"
    elif case == "input-shape":
        model = {"from": str(saved)}
        expected = (f"Error: model.from: {saved} takes input (None, 32, 32, 3), the data's examples have shape "
                    "[6, 6, 3]; use data that fits the model")
    elif case == "subclassed" or case == "lambda":
        import keras

        p = tmp_path / f"{case}.keras"
        if case == "subclassed":
            @keras.saving.register_keras_serializable(package="test_usermodels")
            class Mine(keras.Model):
                def __init__(self, **kw):
                    super().__init__(**kw)
                    self.d = keras.layers.Dense(3)

                def call(self, x):
                    return self.d(keras.ops.reshape(x, (-1, 108)))

            m = Mine()
            m(np.zeros((1, 6, 6, 3), "float32"))
            expected = (f"Error: model.from: {p} is a subclassed model (Mine): its layers are code, not a graph normbench "
                        "can rewrite; save a Sequential or functional model, or write a Python builder (model.arch: file.py:function)")
        else:
            m = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Flatten(),
                                  keras.layers.Dense(3)])
            expected = (f"Error: model.from: {p} holds a Lambda layer, whose Python code would run when it loads, and "
                        "normbench loads saved models with Keras' safe_mode on; if you trust the file, set model.safe_mode: false")
        m.save(p)
        model = {"from": str(p)}
    elif case == "no-module":
        model = {"arch": "no_such_pkg.models:build"}
        expected = ("Error: model.arch: no module named 'no_such_pkg' (no_such_pkg.models:build); check the name and that "
                    "it is importable (run from its folder or set PYTHONPATH)")
    elif case == "no-function":
        model = {"arch": f"{builder}:make"}
        expected = f"Error: model.arch: {builder} has no function 'make'; define it or fix the name after ':'"
    elif case == "raises":
        model = {"arch": f"{builder}:build"}
        expected = f"Error: model.arch: {builder}:build raised ValueError: no luck; fix the builder"
    elif case == "groups":  # Keras' own check fires inside the builder: the fix is the config's, not the builder's
        builder.write_text("import keras\n\ndef build(norm, input_shape, num_classes):\n"
                           "    x = inp = keras.Input(input_shape)\n    x = norm('conv')(keras.layers.Conv2D(12, 3)(x))\n"
                           "    out = keras.layers.Dense(num_classes, activation='softmax')(keras.layers.Flatten()(x))\n"
                           "    return keras.Model(inp, out)\n")
        model = {"arch": f"{builder}:build", "norm": "group"}
        expected = (f"Error: model.arch: {builder}:build raised ValueError: Number of groups (8) must be a multiple of the number of channels (12).; set model.norm_groups to a number that "
                    "divides the channels of every norm slot")
    model.setdefault("norm", "batch")
    p = _cfg(tmp_path, model, data)
    r = cli("run", p, "--quiet") if case == "labels" else cli("validate", p)
    assert error_line(r) == expected
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("summary.json"))
