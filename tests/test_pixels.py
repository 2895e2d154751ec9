"""CIFAR images stay uint8 until the batch: the CNN's first layer (normbench.build.layers.Pixels)
scales them to float32 x / 255 with NumPy's values bit for bit, so a run fed uint8 images
trains exactly as one fed the float32 arrays load_data used to make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, cli
from normbench.store import runfolder
from normbench.training import train
from normbench.schema.config import DataConfig, Subset, from_dict
from normbench.build.data import fingerprint, load_data
from normbench.build.models import build_model

ALL_PIXELS = (np.arange(32 * 32 * 3 * 2) % 256).astype(np.uint8).reshape(2, 32, 32, 3)  # every value 0-255


def _cnn(input_dtype=None):
    cfg = from_dict({"name": "t", "data": {"name": "synthetic_cifar10"}, "model": {"arch": "cifar10_cnn", "norm": "batch"}})
    return build_model(cfg, 10, input_dtype)


def _first_layer(model, jit_compile):
    """The model's first layer as a compiled model: what fit/evaluate/predict run."""
    import keras

    sub = keras.Model(model.inputs, model.layers[0].output)
    sub.compile(jit_compile=jit_compile)
    return sub


@pytest.mark.parametrize("jit_compile", [False, True])
def test_cnn_takes_uint8_and_its_first_layer_is_numpy_x_over_255(jit_compile):
    """Inside a compiled function (TensorFlow's graph optimizer; XLA with jit_compile) a
    plain cast-and-divide becomes a multiplication by 1/255, off in the last bit for half
    the values: the layer's output must be NumPy's x.astype(float32) / 255 exactly."""
    model = _cnn()  # no dtype given: uint8, what every CIFAR-10 source gives
    assert model.inputs[0].dtype == "uint8" and _cnn("uint8").inputs[0].dtype == "uint8"
    assert model.layers[0].__class__.__name__ == "Pixels" and model.layers[0].count_params() == 0
    out = _first_layer(model, jit_compile).predict(ALL_PIXELS, verbose=0)
    assert out.dtype == np.float32
    expected = ALL_PIXELS.astype("float32") / 255.0
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))  # bit for bit


def test_float_images_keep_a_float_input_and_are_not_divided_again():
    model = _cnn("float32")
    assert model.inputs[0].dtype == "float32"
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    assert np.array_equal(_first_layer(model, False).predict(x, verbose=0), x)


def test_the_layer_round_trips_through_keras_serialization():
    import keras

    model = _cnn()
    again = keras.Sequential.from_config(model.get_config())
    assert again.layers[0].__class__.__name__ == "Pixels" and again.inputs[0].dtype == "uint8"
    restored = keras.models.model_from_json(model.to_json())
    assert restored.layers[0].__class__.__name__ == "Pixels"


def test_load_data_keeps_images_uint8_and_fingerprints_them(tmp_path):
    x = ALL_PIXELS.repeat(10, axis=0)
    y = np.arange(20) % 10
    np.savez(tmp_path / "u8.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    np.savez(tmp_path / "i16.npz", x_train=x.astype(np.int16), y_train=y, x_test=x[:10].astype(np.int16), y_test=y[:10])
    for _ in range(2):  # a miss fills the cache, then a hit reads it
        d = load_data(DataConfig(name="cifar10", path=str(tmp_path / "u8.npz")))
        assert d.x_train.dtype == np.uint8 and np.array_equal(d.x_train, x)
        assert d.fingerprint == fingerprint(x, y, x[:10], y[:10])
    d = load_data(DataConfig(name="cifar10", path=str(tmp_path / "i16.npz")))  # other integer pixels: uint8
    assert d.x_train.dtype == np.uint8 and np.array_equal(d.x_train, x)
    assert d.fingerprint == fingerprint(x.astype(np.int16), y, x[:10].astype(np.int16), y[:10])  # as before


def _run(path: Path, out: Path) -> Path:
    r = cli("run", REPO / "configs/smoke/cifar10_none.yaml", "-q", "--set", "data.name=cifar10",
            "--set", f"data.path={path}", "--set", "data.subset=null", "--set", "train.epochs=3",
            "--set", f"output.dir={out}")
    assert r.exit_code == 0, r.output
    return Path(r.output.strip().rsplit(" -> ", 1)[1])


def test_uint8_run_is_bit_identical_to_a_run_on_float32_x_over_255(tmp_path):
    """The same images as a uint8 .npz and as the float32 x / 255 arrays load_data used
    to make (saved as a float .npz, which is used as it is): every history value and test
    metric equal, not just close. The float run is also the check that float sources in
    [0, 1] still train (loss down, accuracy well above chance)."""
    d = load_data(DataConfig(name="synthetic_cifar10", subset=Subset(320, 64)), 0)
    assert d.x_train.dtype == np.uint8
    np.savez(tmp_path / "u8.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    np.savez(tmp_path / "f32.npz", x_train=d.x_train.astype("float32") / 255.0, y_train=d.y_train,
             x_test=d.x_test.astype("float32") / 255.0, y_test=d.y_test)
    u8 = _run(tmp_path / "u8.npz", tmp_path / "u8")
    f32 = _run(tmp_path / "f32.npz", tmp_path / "f32")
    rows = {k: runfolder.read_history(p) for k, p in (("u8", u8), ("f32", f32))}
    summary = {k: json.loads((p / "summary.json").read_text()) for k, p in (("u8", u8), ("f32", f32))}
    assert len(rows["u8"]) == 3
    for a, b in zip(rows["u8"], rows["f32"], strict=True):
        del a["epoch_seconds"], b["epoch_seconds"]
        assert a == b  # the CSV holds full-precision reprs: equal strings, equal floats
    for key in ("test_loss_last", "test_accuracy_last", "test_loss_best", "test_accuracy_best", "best_epoch"):
        assert summary["u8"][key] == summary["f32"][key], key
    assert summary["u8"]["data_fingerprint"] == fingerprint(d.x_train, d.y_train, d.x_test, d.y_test)
    float_rows = rows["f32"]
    assert float(float_rows[-1]["loss"]) < float(float_rows[0]["loss"])
    assert float(float_rows[-1]["val_accuracy"]) > 0.5 and summary["f32"]["test_accuracy"] > 0.5  # chance: 0.1


@pytest.mark.skipif(not train._installed("jax"), reason="jax not installed (pip install '.[jax]')")
def test_on_jax_the_first_layer_is_exact_and_uint8_trains_as_float(tmp_path):
    """train.backend: jax (its own process): XLA turns a division by 255 into a
    multiplication too, so the layer looks NumPy's values up; one epoch on uint8 images
    and on float32 x / 255 gives the same weights."""
    script = f"""
import numpy as np, keras
from normbench.schema.config import from_dict
from normbench.build.models import build_model
assert keras.backend.backend() == "jax"
cfg = from_dict({{"name": "t", "data": {{"name": "synthetic_cifar10"}}, "model": {{"arch": "cifar10_cnn", "norm": "batch"}}}})
x = (np.arange(32 * 32 * 3 * 64) % 256).astype(np.uint8).reshape(64, 32, 32, 3)
x = x[np.random.default_rng(0).permutation(64)]
y = np.arange(64) % 10
m = build_model(cfg, 10, "uint8")
first = keras.Model(m.inputs, m.layers[0].output)
out = first.predict(x, verbose=0)
assert out.dtype == np.float32 and np.array_equal(out, x.astype("float32") / 255.0), "first layer"
weights = []
for dtype, data in (("uint8", x), ("float32", x.astype("float32") / 255.0)):
    keras.utils.set_random_seed(0)
    m = build_model(cfg, 10, dtype)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(data, y, batch_size=16, epochs=1, verbose=0)
    weights.append(m.get_weights())
assert all(np.array_equal(a, b) for a, b in zip(*weights)), "trained weights"
print("ok")
"""
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
