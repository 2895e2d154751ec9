"""The model factory: the tutorial's layer lists, norms by name, exact axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from normbench.schema.config import from_dict
from normbench.build.models import MODELS, build_model
from normbench.build.norms import NORMS, make_norm
from normbench import NormbenchError

NORM_CLASSES = {"BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization"}


def _config(arch, norm, **model):
    data = "synthetic_imdb" if arch == "imdb_rnn" else "synthetic_cifar10"
    return from_dict({"name": "t", "data": {"name": data}, "model": {"arch": arch, "norm": norm, **model}})


def _model(arch, norm, **kw):
    return build_model(_config(arch, norm, **kw), 2 if arch == "imdb_rnn" else 10)


def _kind(layer) -> str:
    """A layer's Keras class: normbench's FusedBatchNormalization is a BatchNormalization
    (Keras' layer with a fused training kernel, tests/test_fused_norm.py)."""
    import keras

    return "BatchNormalization" if isinstance(layer, keras.layers.BatchNormalization) else layer.__class__.__name__


def _kinds(model):
    return [_kind(layer) for layer in model.layers]


def test_imdb_rnn_is_the_tutorial_model():
    m = _model("imdb_rnn", "layer")
    assert _kinds(m) == ["Embedding", "SimpleRNN", "LayerNormalization", "SimpleRNN", "LayerNormalization", "Dense"]
    emb, rnn1, _, rnn2, _, head = m.layers
    assert (emb.input_dim, emb.output_dim) == (10000, 128)
    assert rnn1.units == 32 and rnn1.return_sequences and rnn2.units == 32 and not rnn2.return_sequences
    assert head.units == 1 and head.activation.__name__ == "sigmoid"
    assert m.input_shape == (None, 200) and m.output_shape == (None, 1)
    assert MODELS["imdb_rnn"].loss == "binary_crossentropy"


def test_cifar10_cnn_is_the_tutorial_model():
    m = _model("cifar10_cnn", "batch")
    assert _kinds(m) == [
        "Pixels",  # uint8 images to float32 x / 255, the tutorial's scaling (tests/test_pixels.py)
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Conv2D", "BatchNormalization", "MaxPooling2D",
        "Flatten", "Dense", "BatchNormalization", "Dense",
    ]
    convs = [layer for layer in m.layers if layer.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 64, 128]
    assert all(c.kernel_size == (3, 3) and c.activation.__name__ == "relu" for c in convs)
    dense = [layer for layer in m.layers if layer.__class__.__name__ == "Dense"]
    assert dense[0].units == 128 and dense[0].activation.__name__ == "relu"
    assert dense[1].units == 10 and dense[1].activation.__name__ == "softmax"
    assert m.input_shape == (None, 32, 32, 3) and m.output_shape == (None, 10)


@pytest.mark.parametrize("arch,slots", [("imdb_rnn", 2), ("cifar10_cnn", 4)])
def test_none_has_no_normalization_and_batch_has_exactly_the_slots(arch, slots):
    none = _kinds(_model(arch, "none"))
    assert not NORM_CLASSES & set(none)
    assert none.count("Identity") == slots
    batch = _kinds(_model(arch, "batch"))
    assert batch.count("BatchNormalization") == slots
    assert not (NORM_CLASSES - {"BatchNormalization"}) & set(batch)
    # same layers otherwise: the norm slot is the only difference
    assert [k for k in batch if k != "BatchNormalization"] == [k for k in none if k != "Identity"]


def _norms(model):
    return [layer for layer in model.layers if _kind(layer) in NORM_CLASSES]


def test_axes_conv():
    ln = _norms(_model("cifar10_cnn", "layer"))
    # per sample over all features of a feature map (Ba et al.), not per pixel over channels
    assert [list(layer.axis) for layer in ln] == [[1, 2, 3]] * 3 + [[-1]]
    assert ln[0].gamma.shape == (30, 30, 32)
    bn = _norms(_model("cifar10_cnn", "batch"))
    assert [layer.axis for layer in bn] == [-1] * 4
    assert [tuple(layer.gamma.shape) for layer in bn] == [(32,), (64,), (128,), (128,)]  # per channel
    rms = _norms(_model("cifar10_cnn", "rms"))
    assert [r.__class__.__name__ for r in rms] == ["RMSNormalization"] * 4
    assert list(rms[0].axis) == [1, 2, 3]
    gn = _norms(_model("cifar10_cnn", "group", norm_groups=8))
    assert all(layer.groups == 8 for layer in gn)


def test_axes_sequence():
    m = _model("imdb_rnn", "layer")
    ln = _norms(m)
    # after the sequence-returning RNN: per sample and time step, over the 32 units
    assert ln[0].input.shape == (None, 200, 32)
    assert [list(layer.axis) for layer in ln] == [[-1], [-1]]
    assert tuple(ln[0].gamma.shape) == (32,)
    assert [b.axis for b in _norms(_model("imdb_rnn", "batch"))] == [-1, -1]  # per unit, over N and time


def test_layer_norm_statistics_are_per_sample_over_all_features():
    """Numerically: each sample of a conv map gets mean 0, std 1 over H x W x C."""
    import numpy as np

    x = np.random.default_rng(0).normal(3, 2, (4, 6, 6, 8)).astype("float32")
    y = np.asarray(make_norm("layer", "conv")(x))
    assert np.allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    assert np.allclose(y.std(axis=(1, 2, 3)), 1, atol=1e-2)
    assert not np.allclose(y.mean(axis=-1), 0, atol=1e-2)  # not per pixel


def test_unknown_norm_lists_choices():
    with pytest.raises(NormbenchError, match=f"unknown norm 'batchnorm'; choose one of: {', '.join(NORMS)}$"):
        make_norm("batchnorm", "conv")


def test_group_norm_groups_must_divide_every_channel_count():
    with pytest.raises(NormbenchError, match="12 groups do not divide the 32/64/128 channels that cifar10_cnn normalizes; use one of: 1, 2, 4, 8, 16, 32"):
        _config("cifar10_cnn", "group", norm_groups=12)
    _config("cifar10_cnn", "group", norm_groups=32)  # divides 32, 64, 128


# 1000 training steps and more: auto unrolls on TensorFlow (the tutorial's IMDB run is
# 5 epochs x 313 steps); fewer (the smoke configs: 3 x 25) it does not
REAL = {"name": "imdb"}  # 25,000 reviews: 20,000 to fit, 313 steps of 64 per epoch
SMOKE = {"name": "synthetic_imdb", "subset": {"train": 2000, "test": 500}}


@pytest.mark.parametrize(
    "unroll, backend, data, epochs, expected",
    [("auto", "tensorflow", REAL, 5, True), ("auto", "tensorflow", SMOKE, 3, False), ("auto", "tensorflow", REAL, 3, False),
     ("auto", "tensorflow", SMOKE, 40, True), ("auto", "jax", REAL, 5, False), (False, "tensorflow", REAL, 5, False),
     (True, "tensorflow", SMOKE, 1, True), (True, "jax", SMOKE, 1, True)],
)
def test_unroll_auto_unrolls_on_tensorflow_for_long_runs_only(unroll, backend, data, epochs, expected):
    from normbench.build.optim import UNROLL_AUTO_MIN_STEPS, planned_steps, resolved_unroll

    cfg = from_dict({"name": "t", "data": data, "model": {"arch": "imdb_rnn", "norm": "layer", "unroll": unroll},
                     "train": {"backend": backend, "epochs": epochs}})
    assert planned_steps(cfg) == epochs * (313 if data is REAL else 25)
    assert UNROLL_AUTO_MIN_STEPS == 1000
    assert resolved_unroll(cfg) is expected
    if backend == "tensorflow":  # this process runs Keras on TensorFlow: check the built layers too
        rnns = [layer for layer in build_model(cfg, 2).layers if "RNN" in layer.__class__.__name__]
        assert [r.unroll for r in rnns] == [expected, expected]


@pytest.mark.parametrize("norm", ["group", "rms"])
def test_group_and_rms_norms_learn(out, norm):
    """The CIFAR smoke model with GroupNormalization (8 groups) / RMSNormalization trains:
    validation accuracy well above chance (0.1) after 3 epochs on 320 images, training
    loss down. Measured: both at 0.9-1.0 (the synthetic classes are easy)."""
    import json

    from conftest import REPO, cli

    r = cli("run", REPO / "configs/smoke/cifar10_none.yaml", "-q", "--set", f"output.dir={out}", "--set", f"model.norm={norm}",
            "--set", "data.subset={train: 320, test: 64}", "--set", "train.epochs=3")
    assert r.exit_code == 0, r.output
    run_dir = Path(r.output.strip().rsplit(" -> ", 1)[1])
    from normbench.store import runfolder

    rows = runfolder.read_history(run_dir)
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["norm"] == norm and s["status"] == "completed"
    assert float(rows[-1]["val_accuracy"]) > 0.5 and s["test_accuracy"] > 0.5
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_precision_mixed_bfloat16_reaches_keras():
    """train.precision: mixed_bfloat16 builds every layer under Keras' mixed_bfloat16
    policy (bfloat16 compute, float32 weights) except the output layer, which computes
    in float32, as does the loss; float32 (the default) leaves everything float32, and
    building never changes the process's global policy (a later model is float32)."""
    import keras

    cfg = from_dict({"name": "t", "data": {"name": "synthetic_cifar10"}, "model": {"arch": "cifar10_cnn", "norm": "batch"},
                     "train": {"precision": "mixed_bfloat16"}})
    m = build_model(cfg, 10)
    *body, head = m.layers
    assert {layer.compute_dtype for layer in body} == {"bfloat16"}
    assert {v.dtype for v in m.weights} == {"float32"}
    assert head.name == "head" and head.compute_dtype == "float32"
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    pixels, conv = m.layers[:2]
    # Pixels hands the first convolution exact float32 x / 255; the convolution computes in bfloat16
    assert keras.backend.standardize_dtype(pixels(x).dtype) == "float32"
    assert keras.backend.standardize_dtype(conv(pixels(x)).dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(m(x).dtype) == "float32"
    m.compile(optimizer="adam", loss=MODELS["cifar10_cnn"].loss)
    loss = m.compute_loss(x, np.array([0, 1]), m(x), training=False)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert keras.config.dtype_policy().name == "float32"
    plain = _model("cifar10_cnn", "batch")
    assert {layer.compute_dtype for layer in plain.layers} == {"float32"}
    rnn = build_model(from_dict({"name": "t", "data": {"name": "synthetic_imdb"}, "model": {"arch": "imdb_rnn", "norm": "layer"},
                                 "train": {"precision": "mixed_bfloat16"}}), 2)
    assert rnn.layers[1].compute_dtype == "bfloat16" and rnn.layers[-1].compute_dtype == "float32"


def test_precision_mixed_bfloat16_learns(out):
    """A CIFAR smoke run in mixed_bfloat16 trains (validation and test accuracy well
    above chance, 0.1) and records its policy in summary.json and config.yaml."""
    import json

    import yaml

    from conftest import REPO, cli

    r = cli("run", REPO / "configs/smoke/cifar10_ln.yaml", "-q", "--set", f"output.dir={out}",
            "--set", "train.precision=mixed_bfloat16", "--set", "data.subset={train: 320, test: 64}", "--set", "train.epochs=3")
    assert r.exit_code == 0, r.output
    run_dir = Path(r.output.strip().rsplit(" -> ", 1)[1])
    from normbench.store import runfolder

    rows = runfolder.read_history(run_dir)
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["precision"] == "mixed_bfloat16" and s["status"] == "completed"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["precision"] == "mixed_bfloat16"
    assert float(rows[-1]["val_accuracy"]) > 0.5 and s["test_accuracy"] > 0.5
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


# ----------------------------------------------------------------------------- a model's own options


def test_a_model_declares_its_own_options_with_register():
    """A new built-in model with one option of its own is one @register: config parses
    model.params into its dataclass, checks types and keys, and round-trips it."""
    import dataclasses

    from normbench.build import models

    @dataclasses.dataclass(frozen=True)
    class WideParams:
        width: int = 16  # units of the hidden layer

    def check(m, where):
        if m.params.width < 1:
            raise where.error("model.params.width", f"must be >= 1, got {m.params.width}")

    models.register("toy_wide", data_kind="image", loss="sparse_categorical_crossentropy", norm_channels=(16,),
                    description="toy", params=WideParams, check=check)(lambda *a: None)
    try:
        raw = {"name": "t", "data": {"name": "synthetic_cifar10"}, "model": {"arch": "toy_wide", "norm": "batch"}}
        assert from_dict(raw).model.params == WideParams(16)  # the default
        cfg = from_dict({**raw, "model": {**raw["model"], "params": {"width": 4}}})
        assert cfg.model.params.width == 4 and cfg.to_dict()["model"]["params"] == {"width": 4}
        assert from_dict(cfg.to_dict()) == cfg
        for params, text in [({"width": "x"}, "<config>: model.params.width: expected an integer, got 'x'"),
                             ({"depth": 2}, "<config>: model.params.depth: unknown key; allowed keys here: width"),
                             ({"width": 0}, "<config>: model.params.width: must be >= 1, got 0")]:
            with pytest.raises(NormbenchError) as e:
                from_dict({**raw, "model": {**raw["model"], "params": params}})
            assert str(e.value) == text
    finally:
        models.MODELS.pop("toy_wide")
    # a model without params: none accepted, none written into config.yaml
    with pytest.raises(NormbenchError, match="model.params: model cifar10_cnn takes no params; remove model.params"):
        _config("cifar10_cnn", "batch", params={"width": 4})
    assert "params" not in _config("cifar10_cnn", "batch").to_dict()["model"]
