"""The norms `instance` and `dyt` against NumPy, in each slot kind (conv, sequence,
vector), with non-trivial weights; DyT's initial values and its round trip through a
saved model (resume backups)."""

from __future__ import annotations

import numpy as np
import pytest

from normbench import NormbenchError
from normbench.build.norms import make_norm

SHAPES = {"conv": (3, 5, 4, 6), "sequence": (3, 7, 6), "vector": (3, 6)}


def _x(where, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, SHAPES[where]).astype("float32")


def _set(layer, x, seed=1):
    """Build the layer on x and give it random weights (gamma 1, beta 0 hide mistakes)."""
    layer(x)
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0.5, 0.5, w.shape).astype("float32") for w in layer.get_weights()])
    return layer


@pytest.mark.parametrize("where", ["conv", "sequence"])
def test_instance_matches_numpy(where):
    """Per sample and channel, over every other axis but the batch: (x - mean) /
    sqrt(var + 1e-3) * gamma + beta, population variance, gamma and beta per channel."""
    x = _x(where)
    layer = _set(make_norm("instance", where), x)
    gamma, beta = layer.get_weights()
    axes = tuple(range(1, x.ndim - 1))  # conv: H, W; sequence: time
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    assert gamma.shape == (x.shape[-1],)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-4)


def test_instance_refuses_a_vector_slot():
    with pytest.raises(NormbenchError, match="norm 'instance' has nothing to normalize in a vector slot"):
        make_norm("instance", "vector")


@pytest.mark.parametrize("where", ["conv", "sequence", "vector"])
def test_dyt_matches_numpy(where):
    """gamma * tanh(alpha * x) + beta: alpha one scalar, gamma and beta per channel."""
    x = _x(where)
    layer = _set(make_norm("dyt", where), x)
    alpha, gamma, beta = layer.get_weights()
    assert alpha.shape == () and gamma.shape == beta.shape == (x.shape[-1],)
    np.testing.assert_allclose(np.asarray(layer(x)), gamma * np.tanh(alpha * x) + beta, rtol=1e-5, atol=1e-5)


def test_dyt_starts_at_alpha_half_and_identity_affine():
    x = _x("sequence")
    layer = make_norm("dyt", "sequence", layer_name="norm_1")
    y = np.asarray(layer(x))
    alpha, gamma, beta = layer.get_weights()
    assert float(alpha) == 0.5 and np.all(gamma == 1) and np.all(beta == 0)
    np.testing.assert_allclose(y, np.tanh(0.5 * x), rtol=1e-6, atol=1e-6)
    assert len(layer.trainable_weights) == 3


def test_dyt_and_instance_survive_a_saved_model(tmp_path):
    """A resume backup is a saved .keras model: both layers load back with their weights."""
    import keras

    for norm in ("dyt", "instance"):
        x = _x("conv")
        model = keras.Sequential([keras.Input(x.shape[1:]), make_norm(norm, "conv", layer_name="norm_1")])
        _set(model.layers[0], x)
        path = tmp_path / f"{norm}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)


def test_instance_on_a_model_with_a_vector_slot_is_a_one_line_error(tmp_path):
    from conftest import REPO, cli

    r = cli("validate", REPO / "configs/smoke/cifar10_none.yaml", "--set", "model.norm=instance")
    assert r.exit_code != 0
    assert r.output.strip().splitlines()[-1] == (
        "Error: --set model.norm=instance: model.norm: instance has nothing to normalize in cifar10_cnn's vector "
        "norm slot (one value per channel); use another norm, or a model without vector slots: imdb_transformer")
