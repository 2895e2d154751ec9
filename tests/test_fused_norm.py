"""normbench.build.layers.FusedBatchNormalization: Keras' BatchNormalization with one fused kernel
for the training call on TensorFlow. Same outputs, gradients and moving statistics as
Keras' layer (up to rounding), the moving variance with NumPy's ddof = 0 (TensorFlow's
kernel returns ddof = 1), and the kernel really runs in the models' training step."""

from __future__ import annotations

import numpy as np
import pytest

MOMENTUM = 0.99  # Keras' default


def _pair(shape, seed=0):
    import keras

    from normbench.build.layers import FusedBatchNormalization

    rng = np.random.default_rng(seed)
    keras_bn, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
    weights = [rng.uniform(0.5, 1.5, shape[-1]), rng.normal(size=shape[-1]),  # gamma, beta
               rng.normal(size=shape[-1]), rng.uniform(0.5, 2, shape[-1])]    # moving mean, variance
    for layer in (keras_bn, fused):
        layer.build(shape)
        layer.set_weights([w.astype("float32") for w in weights])
    return keras_bn, fused


def _step(layer, x):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.sin(y))  # a non-linear loss: gradients that differ per value
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return y.numpy(), [g.numpy() for g in grads], [v.numpy() for v in layer.non_trainable_weights]


def _close(a, b, rtol):
    scale = max(float(np.abs(a).max()), 1e-6)
    assert float(np.abs(a - b).max()) <= rtol * scale, (float(np.abs(a - b).max()), scale)


@pytest.mark.parametrize("shape", [(16, 6, 6, 8), (32, 10), (4, 7, 5), (1, 12)])  # conv, vector, sequence slots; a batch of one
def test_fused_matches_keras_batch_normalization(shape):
    keras_bn, fused = _pair(shape)
    x = (np.random.default_rng(1).normal(size=shape) * 3 + 1).astype("float32")
    for _ in range(3):  # three steps: the moving statistics accumulate
        y1, g1, m1 = _step(keras_bn, x)
        y2, g2, m2 = _step(fused, x)
        _close(y1, y2, 1e-5)
        for a, b in zip(g1, g2):
            _close(a, b, 1e-4)
        for a, b in zip(m1, m2):
            _close(a, b, 1e-6)
    _close(keras_bn(x, training=False).numpy(), fused(x, training=False).numpy(), 1e-6)


def test_moving_variance_is_the_population_variance():
    """One step from moving (0, 1): mean and variance move by 1 - momentum towards the
    batch's mean and its variance with ddof = 0 (NumPy), not TensorFlow's ddof = 1."""
    from normbench.build.layers import FusedBatchNormalization

    x = np.random.default_rng(2).normal(2.0, 3.0, size=(5, 3, 2, 4)).astype("float32")  # 30 values per channel
    layer = FusedBatchNormalization()
    layer(x, training=True)
    mean, var = x.reshape(-1, 4).mean(0), x.reshape(-1, 4).var(0, ddof=0)
    np.testing.assert_allclose(layer.moving_mean.numpy(), (1 - MOMENTUM) * mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), MOMENTUM + (1 - MOMENTUM) * var, rtol=1e-5)
    ddof1 = MOMENTUM + (1 - MOMENTUM) * x.reshape(-1, 4).var(0, ddof=1)
    assert np.all(np.abs(layer.moving_variance.numpy() - ddof1) > 1e-5)  # the two are told apart


def test_the_models_training_step_runs_the_fused_kernel():
    """The CNN with norm batch: every norm slot is the fused layer, and the traced
    training step holds TensorFlow's FusedBatchNormV3 (and its gradient) once per slot."""
    import tensorflow as tf

    from normbench.schema.config import from_dict
    from normbench.build.layers import FusedBatchNormalization
    from normbench.build.models import build_model

    cfg = from_dict({"name": "t", "data": {"name": "synthetic_cifar10"}, "model": {"arch": "cifar10_cnn", "norm": "batch"}})
    model = build_model(cfg, 10)
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in model.layers) == 4

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True))
        return tape.gradient(loss, model.trainable_weights)

    ops = [op.type for op in step.get_concrete_function(tf.TensorSpec([8, 32, 32, 3], tf.uint8)).graph.get_operations()]
    assert ops.count("FusedBatchNormV3") == 4 and ops.count("FusedBatchNormGradV3") == 4


def test_other_cases_are_keras_own_call():
    """A mask, an axis other than the last, or inference: Keras' layer, to the bit."""
    import keras

    from normbench.build.layers import FusedBatchNormalization

    x = np.random.default_rng(3).normal(size=(6, 4, 5)).astype("float32")
    for kw in ({"axis": 1}, {"center": False}):
        a, b = keras.layers.BatchNormalization(**kw), FusedBatchNormalization(**kw)
        np.testing.assert_array_equal(a(x, training=True).numpy(), b(x, training=True).numpy())
    mask = np.ones((6, 4), bool)
    mask[:, -1] = False
    a, b = keras.layers.BatchNormalization(), FusedBatchNormalization()
    np.testing.assert_array_equal(a(x, training=True, mask=mask).numpy(), b(x, training=True, mask=mask).numpy())
    np.testing.assert_array_equal(a(x, training=False).numpy(), b(x, training=False).numpy())  # inference


def test_under_mixed_bfloat16_it_computes_in_float32_and_returns_bfloat16():
    """train.precision: mixed_bfloat16: like Keras' layer, the statistics in float32 and
    the output in the policy's bfloat16; the same values as Keras' layer to bfloat16's
    precision, the moving statistics to float32's."""
    import keras

    from normbench.build.layers import FusedBatchNormalization

    x = np.random.default_rng(4).normal(1.0, 2.0, size=(8, 5, 5, 6)).astype("float32")
    a, b = keras.layers.BatchNormalization(dtype="mixed_bfloat16"), FusedBatchNormalization(dtype="mixed_bfloat16")
    ya, yb = a(x, training=True), b(x, training=True)
    assert keras.backend.standardize_dtype(yb.dtype) == "bfloat16" == keras.backend.standardize_dtype(ya.dtype)
    np.testing.assert_allclose(np.asarray(yb, "float32"), np.asarray(ya, "float32"), atol=0.05)
    for va, vb in zip(a.non_trainable_weights, b.non_trainable_weights):
        np.testing.assert_allclose(vb.numpy(), va.numpy(), rtol=1e-5)
