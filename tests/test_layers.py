"""normbench.build.layers.HoistedSimpleRNN: SimpleRNN's maths and weights with the input projection
out of the loop, and the layer-normalized recurrence of Ba et al. (2016) checked against NumPy;
model.rnn / model.norm_placement in the config and the IMDB model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO, cli, write_config
from normbench.build.models import PLACEMENTS, RNNS
from normbench.training import train
from normbench.schema.config import from_dict

N, T, D, U = 3, 6, 5, 4


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(N, T, D)).astype("float32")


def _randomize(layer, seed=1):
    """Non-trivial weights (the initial bias is 0 and gamma 1, which would hide mistakes)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])


@pytest.mark.parametrize("unroll", [False, True, 2, 4, 6, 8])  # ints: chunks of that many unrolled steps (T = 6)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_hoisted_equals_keras_simple_rnn_both_ways(return_sequences, unroll):
    import keras

    from normbench.build.layers import HoistedSimpleRNN

    keras_rnn = keras.layers.SimpleRNN(U, return_sequences=return_sequences)
    fast = HoistedSimpleRNN(U, return_sequences=return_sequences, unroll=unroll)
    keras_rnn.build((None, T, D))
    fast.build((None, T, D))
    # same weights by name, shape and order
    assert [(w.name, tuple(w.shape)) for w in fast.weights] == [(w.name, tuple(w.shape)) for w in keras_rnn.weights]
    assert fast.count_params() == keras_rnn.count_params() == D * U + U * U + U
    x = _x()
    _randomize(keras_rnn)
    fast.set_weights(keras_rnn.get_weights())  # keras -> fast
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(keras_rnn(x)), rtol=1e-5, atol=1e-5)
    _randomize(fast, seed=2)
    keras_rnn.set_weights(fast.get_weights())  # fast -> keras
    expected_shape = (N, T, U) if return_sequences else (N, U)
    y = np.asarray(fast(x))
    assert y.shape == expected_shape
    np.testing.assert_allclose(y, np.asarray(keras_rnn(x)), rtol=1e-5, atol=1e-5)


def test_hoisted_has_simple_rnns_initial_weights_after_the_same_seed():
    import keras

    from normbench.build.layers import HoistedSimpleRNN

    keras.utils.set_random_seed(7)
    keras_rnn = keras.layers.SimpleRNN(U)
    keras.utils.set_random_seed(7)
    fast = HoistedSimpleRNN(U)
    for layer in (keras_rnn, fast):
        layer.build((None, T, D))
    for a, b in zip(keras_rnn.get_weights(), fast.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert np.abs(fast.get_weights()[0]).max() > 0  # not trivially zero


def test_hoisted_refuses_masks():
    from normbench.build.layers import HoistedSimpleRNN

    layer = HoistedSimpleRNN(U)
    with pytest.raises(ValueError, match="HoistedSimpleRNN does not support masks; use keras.layers.SimpleRNN"):
        layer(_x(), mask=np.ones((N, T), dtype=bool))


def _numpy_ln_rnn(x, kernel, recurrent, gamma, beta, norm, eps):
    """Ba et al. (2016) eq. 4-5, written out: h_t = tanh(g/sigma_t * (a_t - mu_t) + b)."""
    h = np.zeros((x.shape[0], kernel.shape[1]), dtype="float64")
    out = []
    for t in range(x.shape[1]):
        a = x[:, t, :].astype("float64") @ kernel + h @ recurrent
        if norm == "layer":
            mu = a.mean(axis=1, keepdims=True)
            sigma = np.sqrt(((a - mu) ** 2).mean(axis=1, keepdims=True) + eps)
            n = (a - mu) / sigma
        else:
            n = a / np.sqrt((a**2).mean(axis=1, keepdims=True) + eps)
        h = np.tanh(gamma * n + beta)
        out.append(h)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("unroll", [False, True, 4])
@pytest.mark.parametrize("norm, eps", [("layer", 1e-3), ("rms", 1e-6)])
def test_recurrent_norm_matches_numpy(norm, eps, unroll):
    from normbench.build.layers import HoistedSimpleRNN

    layer = HoistedSimpleRNN(U, return_sequences=True, unroll=unroll, norm=norm)
    layer.build((None, T, D))
    # one gain and one bias per unit, in place of SimpleRNN's bias
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [
        ("kernel", (D, U)), ("recurrent_kernel", (U, U)), ("gamma", (U,)), ("beta", (U,))]
    assert layer.count_params() == D * U + U * U + 2 * U
    assert layer.epsilon == eps
    _randomize(layer)
    x = _x()
    expected = _numpy_ln_rnn(x, *layer.get_weights(), norm, eps)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-5)
    last = HoistedSimpleRNN(U, unroll=unroll, norm=norm)
    last.build((None, T, D))
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(last(x)), expected[:, -1], rtol=1e-4, atol=1e-5)


def test_recurrent_layer_norm_normalizes_every_sample_and_time_step():
    """With the initial gain 1 and bias 0, atanh(h_t) is the normalized summed input: mean 0
    and variance s/(s + eps) over the units, for each sample and time step separately."""
    from normbench.build.layers import HoistedSimpleRNN

    layer = HoistedSimpleRNN(16, return_sequences=True, norm="layer")
    x = 3 + 5 * _x()  # far from normalized inputs
    pre = np.arctanh(np.clip(np.asarray(layer(x), dtype="float64"), -1 + 1e-7, 1 - 1e-7))
    assert pre.shape == (N, T, 16)
    np.testing.assert_allclose(pre.mean(axis=-1), 0, atol=1e-4)
    np.testing.assert_allclose(pre.var(axis=-1), 1, atol=2e-2)  # eps=1e-3 shrinks it slightly
    assert np.abs(pre.mean(axis=(0, 1))).max() > 0.05  # per sample and step, not per unit


# ----------------------------------------------------------------------------- config + model


def _cfg(**model):
    return from_dict({"name": "t", "data": {"name": "synthetic_imdb"}, "model": {"arch": "imdb_rnn", "norm": "layer", **model}})


def _kinds(model):
    return [layer.__class__.__name__ for layer in model.layers]


def test_model_rnn_and_placement_build_the_right_layers():
    from normbench.build.models import build_model

    assert _kinds(build_model(_cfg(), 2)) == ["Embedding", "SimpleRNN", "LayerNormalization", "SimpleRNN", "LayerNormalization", "Dense"]
    fast = build_model(_cfg(rnn="fast", unroll=True), 2)
    assert _kinds(fast) == ["Embedding", "HoistedSimpleRNN", "LayerNormalization", "HoistedSimpleRNN", "LayerNormalization", "Dense"]
    assert [(r.norm, r.unroll, r.return_sequences) for r in fast.layers[1:4:2]] == [(None, True, True), (None, True, False)]
    slow = build_model(_cfg(), 2)
    assert fast.count_params() == slow.count_params()
    for norm in ("layer", "rms"):
        for rnn in ("keras", "fast"):  # the recurrent cell is normbench's whatever model.rnn says
            m = build_model(_cfg(norm=norm, rnn=rnn, norm_placement="recurrent"), 2)
            # norm inside each RNN layer, the slots between them Identity
            assert _kinds(m) == ["Embedding", "HoistedSimpleRNN", "Identity", "HoistedSimpleRNN", "Identity", "Dense"]
            assert [r.norm for r in m.layers[1:4:2]] == [norm, norm]
    control = build_model(_cfg(norm="none", norm_placement="recurrent"), 2)
    assert _kinds(control) == ["Embedding", "SimpleRNN", "Identity", "SimpleRNN", "Identity", "Dense"]


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"model__norm": "batch", "model__norm_placement": "recurrent"},
         "model.norm_placement: recurrent cannot use norm 'batch': batch norm inside the recurrence needs per-time-step "
         "batch statistics (Cooijmans et al. 2016), which are not implemented; use norm layer, rms or none, or "
         "norm_placement: between"),
        ({"model__norm": "group", "model__norm_placement": "recurrent"},
         "model.norm_placement: recurrent cannot use norm 'group': not implemented inside the recurrence; "
         "use norm layer, rms, none, or norm_placement: between"),
        ({"model__norm_placement": "inside"},
         f"model.norm_placement: unknown norm placement 'inside'; choose one of: {', '.join(PLACEMENTS)}"),
        ({"model__rnn": "cudnn"}, f"model.rnn: unknown rnn implementation 'cudnn'; choose one of: {', '.join(RNNS)}"),
        ({"model__rnn": "keras", "model__unroll": 20},
         "model.unroll: a chunk size (20) needs model.rnn: fast (keras.layers.SimpleRNN unrolls all steps or none); "
         "set model.rnn: fast or unroll true/false"),
        ({"model__rnn": "fast", "model__unroll": 1},
         "model.unroll: a chunk size must be >= 2, got 1; or use true, false or auto"),
        ({"model__arch": "cifar10_cnn", "data__name": "synthetic_cifar10", "model__norm_placement": "recurrent"},
         "model.norm_placement: model cifar10_cnn has no recurrence to normalize; use between, or a model with one: imdb_rnn"),
        # keys only imdb_rnn reads: the CNN would ignore them silently, so they are refused
        ({"model__arch": "cifar10_cnn", "data__name": "synthetic_cifar10", "model__unroll": True},
         "model.unroll: cifar10_cnn does not read it, only the built-in imdb_rnn does; remove it"),
        ({"model__arch": "cifar10_cnn", "data__name": "synthetic_cifar10", "model__rnn": "fast"},
         "model.rnn: cifar10_cnn does not read it, only the built-in imdb_rnn does; remove it"),
    ],
)
def test_placement_and_rnn_errors_are_one_line(tmp_path, changes, expected):
    cfg = write_config(tmp_path / "c.yaml", **changes)
    r = cli("validate", cfg)
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == f"Error: {cfg}: {expected}"
    assert "Traceback" not in r.output


@pytest.mark.skipif(not train._installed("jax"), reason="jax not installed (pip install '.[jax]')")
def test_layers_on_jax():
    """The same equality and NumPy checks under the JAX backend, in its own process."""
    code = textwrap.dedent(
        """
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        import test_layers as t
        for rs in (True, False):
            for unroll in (False, True):
                t.test_hoisted_equals_keras_simple_rnn_both_ways(rs, unroll)
        for norm, eps in (("layer", 1e-3), ("rms", 1e-6)):
            t.test_recurrent_norm_matches_numpy(norm, eps, False)
        t.test_recurrent_layer_norm_normalizes_every_sample_and_time_step()
        print("ok")
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=REPO / "tests")
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


@pytest.mark.parametrize(
    "model, backend, expected",
    [({"rnn": "fast"}, "tensorflow", True), ({"rnn": "fast"}, "jax", False),
     ({"norm_placement": "recurrent"}, "tensorflow", False),  # a normalized cell compiles too slowly unrolled
     ({"norm_placement": "recurrent", "norm": "none"}, "tensorflow", True),  # the plain control cell
     ({"norm_placement": "recurrent", "unroll": True}, "tensorflow", True)],
)
def test_unroll_auto_with_rnn_and_placement(model, backend, expected):
    from normbench.build.optim import resolved_unroll

    # real IMDB, 5 epochs: 1565 steps, long enough for auto to unroll (optim.UNROLL_AUTO_MIN_STEPS)
    cfg = from_dict({"name": "t", "data": {"name": "imdb"}, "train": {"backend": backend},
                     "model": {"arch": "imdb_rnn", "norm": "layer", "unroll": "auto", **model}})
    assert resolved_unroll(cfg) is expected


def test_recurrent_run_completes(tmp_path):
    """The whole run path (fit, backup, test evaluation) with the normalized cell."""
    import json

    from conftest import TINY

    cfg = write_config(tmp_path / "c.yaml", output__dir=str(tmp_path / "out"))
    sets = [a for t in [*TINY, "model.norm_placement=recurrent", "model.rnn=fast"] for a in ("--set", t)]
    r = cli("run", cfg, *sets)
    assert r.exit_code == 0, r.output
    (summary,) = (tmp_path / "out").glob("*/*/summary.json")
    s = json.loads(summary.read_text())
    assert s["status"] == "completed" and s["unroll"] is False
    assert s["params"] == 1287329  # two SimpleRNNs' bias and the two LayerNorm slots replaced by gamma/beta per cell
