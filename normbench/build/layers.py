"""normbench's own Keras layers, written with keras.ops only (TensorFlow and JAX): the
CIFAR CNN's first layer `Pixels` (at the end of this file) and, for the IMDB model,
`HoistedSimpleRNN`.

`HoistedSimpleRNN` is keras.layers.SimpleRNN's mathematics with the input projection
taken out of the time loop:

    keras.layers.SimpleRNN:  for t: h_t = tanh(x_t W + b + h_{t-1} U)      (x_t W inside the loop)
    HoistedSimpleRNN:        XW = x W + b   (one (N*T, D) x (D, U) matmul for all time steps)
                             for t: h_t = tanh(XW_t + h_{t-1} U)

with h_0 = 0. It has SimpleRNN's weights (`kernel` (D, U) glorot_uniform,
`recurrent_kernel` (U, U) orthogonal, `bias` (U,) zeros: same names, shapes, order,
initializers and parameter count, so get_weights()/set_weights() move between the two
either way), and the same output for return_sequences true or false. Built after the
same random seed, it also draws the same initial weights as SimpleRNN (it consumes the
seed stream in the same order; tests/test_layers.py checks both).
The loop is a Python loop over the time steps when `unroll=True` (one big graph: fast on
TensorFlow, slow to compile under XLA) or `keras.ops.scan` when `unroll=False`
(tf.while_loop on TensorFlow, lax.scan on JAX).

`norm="layer" | "rms"` makes it the layer-normalized RNN of Ba et al. (2016, section
3.1, "Layer normalized recurrent neural networks"): the summed inputs of every time step
are normalized over the units, per sample and per time step, before the nonlinearity:

    a_t = x_t W + h_{t-1} U                                   (no bias here)
    layer: h_t = tanh(gamma * (a_t - mean(a_t)) / sqrt(var(a_t) + epsilon) + beta)
    rms:   h_t = tanh(gamma * a_t / sqrt(mean(a_t^2) + epsilon) + beta)

mean and var are over the U units of one sample at one time step (population variance,
as keras.layers.LayerNormalization). gamma (init 1) and beta (init 0) have one value per
unit and are shared over time, as in Ba et al.; beta takes the place of SimpleRNN's
bias (a bias added before the normalization would be cancelled by the centering), so
the layer has `kernel`, `recurrent_kernel`, `gamma`, `beta` and no `bias`: U more
parameters than SimpleRNN. `rms` is the same without centering (Zhang & Sennrich 2019),
keeping beta so the cell still has a bias. epsilon defaults to Keras' own defaults for
the matching layers (1e-3 for LayerNormalization, 1e-6 for RMSNormalization), so
`layer` means the same thing inside and between the RNN layers. The input projection is
hoisted here too: x_t W does not depend on h, so it is computed for all steps at once.

Masks are refused (the tutorial's model has no mask_zero); dropout, go_backwards and
stateful are not offered.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# the norms this cell computes inside its recurrence, with their epsilons (keras.layers.LayerNormalization /
# RMSNormalization defaults); normbench.build.norms.CELL_NORMS names the same ones for configs (a test checks)
EPSILON = {"layer": 1e-3, "rms": 1e-6}
CELL_NORMS = tuple(EPSILON)


@keras.saving.register_keras_serializable(package="normbench")
class HoistedSimpleRNN(keras.layers.Layer):
    def __init__(self, units, return_sequences=False, unroll=False, norm=None, epsilon=None, **kwargs):
        if units <= 0:
            raise ValueError(f"units must be a positive integer, got {units}")
        if norm is not None and norm not in CELL_NORMS:  # None: a plain SimpleRNN cell
            raise ValueError(f"norm must be None or one of {CELL_NORMS}, got {norm!r}")
        super().__init__(**kwargs)
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        # True: the whole loop unrolled; False: a scan over the time steps; an int K >= 2: a
        # scan over chunks of K steps, each chunk unrolled (the per-step gain of unrolling
        # at a fraction of its graph; T need not be a multiple of K)
        if isinstance(unroll, bool) or unroll is None:
            self.unroll = bool(unroll)
        elif isinstance(unroll, (int, np.integer)) and unroll >= 2:
            self.unroll = int(unroll)
        else:
            raise ValueError(f"unroll must be true, false or a chunk size >= 2, got {unroll!r}")
        self.norm = norm
        self.epsilon = EPSILON.get(norm) if epsilon is None else float(epsilon)
        # SimpleRNNCell creates an (unseeded) SeedGenerator for dropout, then its
        # initializers, each drawing a seed from the global stream at construction. Doing
        # the same, in the same order, makes a model built after the same
        # keras.utils.set_random_seed start from the same weights as with SimpleRNN.
        self._seed_generator = keras.random.SeedGenerator(None)
        self.kernel_initializer = keras.initializers.GlorotUniform()
        self.recurrent_initializer = keras.initializers.Orthogonal()
        self.bias_initializer = keras.initializers.Zeros()

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel", initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        if self.norm is None:
            self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer)
        else:
            self.bias = None
            self.gamma = self.add_weight(shape=(self.units,), name="gamma", initializer="ones")
            self.beta = self.add_weight(shape=(self.units,), name="beta", initializer="zeros")

    def _normalize(self, a):
        if self.norm == "layer":
            mean = ops.mean(a, axis=-1, keepdims=True)
            centered = a - mean
            var = ops.mean(ops.square(centered), axis=-1, keepdims=True)
            return centered * ops.rsqrt(var + self.epsilon) * self.gamma + self.beta
        ms = ops.mean(ops.square(a), axis=-1, keepdims=True)
        return a * ops.rsqrt(ms + self.epsilon) * self.gamma + self.beta

    def _step(self, xw_t, h):
        a = xw_t if h is None else xw_t + ops.matmul(h, self.recurrent_kernel)
        if self.norm is not None:
            a = self._normalize(a)
        return ops.tanh(a)

    def call(self, inputs, mask=None):
        if mask is not None:
            raise ValueError(f"{self.name}: HoistedSimpleRNN does not support masks; use keras.layers.SimpleRNN (model.rnn: keras)")
        xw = ops.matmul(inputs, self.kernel)  # (N, T, U): every time step's input projection at once
        if self.bias is not None:
            xw = xw + self.bias
        steps = inputs.shape[1]
        if self.unroll is not True and self.unroll is not False:
            return self._chunked(xw, steps, self.unroll)
        if self.unroll:
            if steps is None:
                raise ValueError(f"{self.name}: unroll=True needs a known number of time steps")
            # unstack, not xw[:, t]: on TensorFlow the gradient of 200 strided slices is 200
            # full-size (N, T, U) tensors summed (much slower); unstack's gradient is one stack
            xs = ops.unstack(xw, num=steps, axis=1)
            h = self._step(xs[0], None)  # h_0 = 0, so 0 U is skipped
            outputs = [h]
            for xw_t in xs[1:]:
                h = self._step(xw_t, h)
                outputs.append(h)
            return ops.stack(outputs, axis=1) if self.return_sequences else h

        def step(h, xw_t):
            h = self._step(xw_t, h)
            return h, h

        h0 = ops.zeros_like(xw[:, 0, :])
        last, seq = ops.scan(step, h0, ops.transpose(xw, (1, 0, 2)))
        return ops.transpose(seq, (1, 0, 2)) if self.return_sequences else last

    def _chunked(self, xw, steps, k):
        """The loop as a scan over chunks of k time steps, each chunk unrolled: the first
        (steps mod k, or k) steps unrolled before the scan, so the scan's chunks are whole."""
        if steps is None:
            raise ValueError(f"{self.name}: unroll={k} needs a known number of time steps")
        head = steps % k or k  # unrolled before the scan (it also starts from h_0 = 0)
        xs = ops.unstack(xw[:, :head], num=head, axis=1)
        h = self._step(xs[0], None)
        outputs = [h]
        for xw_t in xs[1:]:
            h = self._step(xw_t, h)
            outputs.append(h)
        chunks = (steps - head) // k
        if chunks == 0:
            return ops.stack(outputs, axis=1) if self.return_sequences else h

        def step(prev, xw_chunk):  # prev, xw_chunk: (k, N, U); the carry is the last chunk's
            h = prev[-1]  # outputs (Keras' TensorFlow scan wants outputs shaped like the carry)
            hs = []
            for xw_t in ops.unstack(xw_chunk, num=k, axis=0):
                h = self._step(xw_t, h)
                hs.append(h)
            hs = ops.stack(hs, axis=0)
            return hs, hs

        rest = ops.transpose(xw[:, head:], (1, 0, 2))  # (T - head, N, U)
        rest = ops.reshape(rest, (chunks, k, -1, self.units))
        last, seq = ops.scan(step, ops.stack([h] * k, axis=0), rest)  # seq: (chunks, k, N, U)
        if not self.return_sequences:
            return last[-1]
        seq = ops.transpose(ops.reshape(seq, (chunks * k, -1, self.units)), (1, 0, 2))
        return ops.concatenate([ops.stack(outputs, axis=1), seq], axis=1)

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "return_sequences": self.return_sequences,
                "unroll": self.unroll, "norm": self.norm, "epsilon": self.epsilon}


# ----------------------------------------------------------------------------- Pixels

# NumPy's x.astype("float32") / 255 for every uint8 value: what load_data returned before
# images stayed uint8, and so what every committed run's first layer saw
PIXEL_TABLE = np.arange(256, dtype="float32") / np.float32(255)


@keras.saving.register_keras_serializable(package="normbench")
class Pixels(keras.layers.Layer):
    """Images to float32 in [0, 1], per batch, inside the model: the tutorial's scaling,
    so images can stay uint8 (a quarter of float32's memory) until the batch.

    Integer pixels (uint8 0-255) become x / 255 **bit for bit as NumPy's
    `x.astype("float32") / 255`** (the correctly rounded float32 quotient). A plain
    `cast(x, float32) / 255.0` does not give that inside a compiled function: TensorFlow's
    graph optimizer (constant folding) and XLA rewrite a division by a constant into a
    multiplication by its reciprocal, and x * float32(1/255) differs in the last bit for
    126 of the 256 values. So, on TensorFlow, the quotient is taken in float64 and rounded
    once to float32: x / 255 is never within float64's error of a float32 rounding
    boundary (its binary expansion does not end), so the one rounding is the correct one
    whether the compiler divides or multiplies by the reciprocal. JAX has no float64 by
    default (and its float32 division gave the reciprocal's values even with the divisor
    hidden from XLA); there, the 256 values are looked up in NumPy's own table. Float
    pixels (data already scaled to [0, 1]) pass through as float32, not divided again.
    No weights: the model's weights, parameter count and backups are unchanged."""

    def call(self, x):
        dtype = keras.backend.standardize_dtype(x.dtype)
        if "int" not in dtype:
            return ops.cast(x, "float32")
        if keras.backend.backend() == "tensorflow":
            return ops.cast(ops.divide(ops.cast(x, "float64"), 255.0), "float32")
        return ops.take(PIXEL_TABLE, ops.cast(x, "int32"), axis=0)


# ----------------------------------------------------------------------------- FusedBatchNormalization


@keras.saving.register_keras_serializable(package="normbench")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization whose training call on TensorFlow is one fused
    kernel (FusedBatchNormV3, oneDNN's on this CPU) forward and one back, where Keras 3
    runs plain ops (moments: mean, squared difference; then several passes for the
    gradient). The mathematics is Keras' own: normalize with the batch's mean and
    population variance (ddof 0), gamma and beta after; the moving statistics move by
    `momentum` towards the batch's mean and **population** variance. TensorFlow's kernel
    returns the batch variance with Bessel's correction (n / (n - 1)); it is taken back
    here, so the moving variance is Keras' (a batch of one gives 0, as Keras). Only
    rounding differs (the kernel sums in another order); inference and every case the
    kernel does not cover (another backend, a mask, renorm, an axis other than the last,
    rank other than 2-4, scale or center off, epsilon below the kernel's 1.001e-5) are
    Keras' own call. Weights, names, shapes and initializers are BatchNormalization's,
    so backups and get_weights()/set_weights() move between the two either way. Why:
    the norm layers were half of the CNN's training step (benchmarks/RESULTS.md, "The
    CNN's training step, per op")."""

    def _fused(self, inputs, training, mask) -> bool:
        rank = len(inputs.shape)
        return (bool(training) and self.trainable and mask is None and not self.renorm
                and keras.backend.backend() == "tensorflow" and 2 <= rank <= 4
                and self.axis in (-1, rank - 1) and self.scale and self.center
                and self.epsilon >= 1.001e-5)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")
        shape = tf.shape(x)
        channels = x.shape[-1]
        x4 = {2: lambda: tf.reshape(x, [-1, 1, 1, channels]),
              3: lambda: tf.expand_dims(x, 2),
              4: lambda: x}[len(inputs.shape)]()
        y, mean, var_bessel, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x4, scale=tf.cast(self.gamma, "float32"), offset=tf.cast(self.beta, "float32"),
            mean=tf.zeros([0]), variance=tf.zeros([0]), epsilon=self.epsilon,
            data_format="NHWC", is_training=True)
        n = tf.cast(tf.size(x) // channels, "float32")  # values per channel in this batch
        variance = tf.where(n > 1, var_bessel * ((n - 1) / tf.maximum(n, 1)), tf.zeros_like(var_bessel))
        m = self.momentum
        self.moving_mean.assign(ops.cast(self.moving_mean, "float32") * m + mean * (1.0 - m))
        self.moving_variance.assign(ops.cast(self.moving_variance, "float32") * m + variance * (1.0 - m))
        return ops.cast(tf.reshape(y, shape), self.compute_dtype)


# ----------------------------------------------------------------------------- DyT


@keras.saving.register_keras_serializable(package="normbench")
class DyT(keras.layers.Layer):
    """Dynamic Tanh (Zhu, Chen, He, LeCun and Liu, CVPR 2025, "Transformers without
    Normalization"), a drop-in for a norm layer that computes no statistics:

        y = gamma * tanh(alpha * x) + beta

    elementwise; `alpha` is one learnable scalar (initialised at `alpha_init`, 0.5 as in
    the paper's default), `gamma` (init 1) and `beta` (init 0) have one value per channel
    (the last axis), as the paper's per-channel affine. Computes in the layer's dtype
    policy; weights `alpha`, `gamma`, `beta` (names fixed so backups load)."""

    def __init__(self, alpha_init=0.5, **kwargs):
        super().__init__(**kwargs)
        self.alpha_init = float(alpha_init)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.alpha = self.add_weight(shape=(), name="alpha", initializer=keras.initializers.Constant(self.alpha_init))
        self.gamma = self.add_weight(shape=(channels,), name="gamma", initializer="ones")
        self.beta = self.add_weight(shape=(channels,), name="beta", initializer="zeros")

    def call(self, x):
        alpha = ops.cast(self.alpha, x.dtype)
        return ops.tanh(alpha * x) * ops.cast(self.gamma, x.dtype) + ops.cast(self.beta, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha_init": self.alpha_init}


# ----------------------------------------------------------------------------- PositionEmbedding


@keras.saving.register_keras_serializable(package="normbench")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned position vector to each time step: y[:, t] = x[:, t] + P[t], with
    P (maxlen, dim) initialised as keras.layers.Embedding's (uniform in [-0.05, 0.05]);
    the keras.io text Transformer's position embedding, as a layer so the model stays a
    plain functional graph. The sequence length must not exceed maxlen."""

    def __init__(self, maxlen, **kwargs):
        super().__init__(**kwargs)
        self.maxlen = int(maxlen)

    def build(self, input_shape):
        self.positions = self.add_weight(shape=(self.maxlen, input_shape[-1]), name="positions",
                                         initializer=keras.initializers.RandomUniform(-0.05, 0.05))

    def call(self, x):
        steps = ops.shape(x)[1]
        return x + ops.cast(self.positions[:steps], x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "maxlen": self.maxlen}


# ----------------------------------------------------------------------------- RandomFlipCrop


@keras.saving.register_keras_serializable(package="normbench")
class RandomFlipCrop(keras.layers.Layer):
    """normbench.build.augment's flip_crop (its docstring has the formula): zero-pad `pad`
    pixels, a random crop back to H x W and a random left-right flip, per image, when
    called with training=True; the input unchanged otherwise. The random stream is a
    keras.random.SeedGenerator(seed): its state is a variable of the layer (saved with a
    backup). Keeps the input's dtype."""

    def __init__(self, pad=4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pad, self.seed = int(pad), seed
        self._generator = keras.random.SeedGenerator(seed)
        self._convert_input_args = False  # integer pixels stay integers
        self._allow_non_tensor_positional_args = True

    def call(self, x, training=None):
        if not training:
            return x
        n, h, w, p = ops.shape(x)[0], x.shape[1], x.shape[2], self.pad
        offsets = keras.random.randint((2, n), 0, 2 * p + 1, seed=self._generator)
        flip = keras.random.uniform((n,), seed=self._generator) < 0.5
        padded = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        rows = ops.expand_dims(offsets[0], 1) + ops.expand_dims(ops.arange(h), 0)  # (N, H)
        cols = ops.expand_dims(offsets[1], 1) + ops.expand_dims(ops.arange(w), 0)  # (N, W)
        rows = ops.broadcast_to(ops.reshape(rows, (-1, h, 1, 1)), (n, h, w + 2 * p, x.shape[3]))
        y = ops.take_along_axis(padded, rows, axis=1)  # (N, H, W + 2p, C)
        cols = ops.broadcast_to(ops.reshape(cols, (-1, 1, w, 1)), (n, h, w, x.shape[3]))
        y = ops.take_along_axis(y, cols, axis=2)  # (N, H, W, C)
        return ops.where(ops.reshape(flip, (-1, 1, 1, 1)), ops.flip(y, axis=2), y)

    def compute_output_shape(self, input_shape):
        return input_shape

    # Keras saves a layer's own weights, not its seed generators' states: save the stream's
    # position too, so a resumed run augments its next batches as the uninterrupted run would
    def save_own_variables(self, store):
        store["0"] = ops.convert_to_numpy(self._generator.state)

    def load_own_variables(self, store):
        self._generator.state.assign(store["0"])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "seed": self.seed}
