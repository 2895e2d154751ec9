"""How to scale uint8 images to float32 x / 255 inside a compiled Keras model, exactly.

For each way of writing the CNN's first layer, on the backend Keras runs on
(KERAS_BACKEND=tensorflow or jax), this prints how many of the 256 pixel values differ
from NumPy's x.astype("float32") / 255 (what load_data computed for the whole set before
images stayed uint8) and the layer's time per batch of 64 CIFAR images, in a compiled
function (tf.function, or jax.jit), with and without XLA (jit_compile) on TensorFlow:

  divide_f32   cast to float32, divide by 255.0 (the obvious layer)
  multiply     cast to float32, multiply by 1/255 (what keras.layers.Rescaling does)
  divide_f64   cast to float64, divide by 255.0, cast to float32 (normbench on TensorFlow)
  table        look the 256 values up in NumPy's own table (normbench on JAX)

    python benchmarks/pixel_scaling.py                        # TensorFlow
    KERAS_BACKEND=jax python benchmarks/pixel_scaling.py      # JAX
    python benchmarks/pixel_scaling.py --quick                # a smoke check: 1 x 2 calls
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

BATCH = 64
REPS, CALLS = 5, 50


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 x 2 calls per way: the mismatches, not the timing")
    args = ap.parse_args(argv)
    reps, calls = (1, 2) if args.quick else (REPS, CALLS)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras import ops

    backend = keras.backend.backend()
    table = np.arange(256, dtype="float32") / np.float32(255)
    ways = {
        "divide_f32": lambda x: ops.divide(ops.cast(x, "float32"), 255.0),
        "multiply": lambda x: ops.multiply(ops.cast(x, "float32"), 1.0 / 255.0),
        "divide_f64": lambda x: ops.cast(ops.divide(ops.cast(x, "float64"), 255.0), "float32"),
        "table": lambda x: ops.take(table, ops.cast(x, "int32"), axis=0),
    }
    x = (np.random.default_rng(0).permutation(BATCH * 32 * 32 * 3) % 256).astype("uint8").reshape(BATCH, 32, 32, 3)
    expected = x.astype("float32") / 255.0
    print(f"backend {backend}, batch {BATCH} x 32 x 32 x 3 uint8; ms per call: best of {reps} x {calls} calls")
    for name, fn in ways.items():
        if backend == "jax" and name == "divide_f64":
            print(f"{name:11s} (no float64 in JAX without jax_enable_x64)")
            continue
        for jit in (False, True) if backend == "tensorflow" else (True,):
            if backend == "tensorflow":
                import tensorflow as tf

                f = tf.function(fn, jit_compile=jit)
                arg = tf.constant(x)
                call = lambda: f(arg).numpy()  # noqa: E731
            else:
                import jax

                f = jax.jit(fn)
                arg = jax.numpy.asarray(x)
                call = lambda: np.asarray(f(arg))  # noqa: E731
            out = call()
            wrong = int((out.view(np.uint32) != expected.view(np.uint32)).sum())
            values = len(np.unique(x[out != expected])) if wrong else 0
            best = float("inf")
            for _ in range(reps):
                t = time.perf_counter()
                for _ in range(calls):
                    call()
                best = min(best, (time.perf_counter() - t) / calls * 1000)
            label = f"{name}{' +XLA' if jit and backend == 'tensorflow' else ''}"
            print(f"{label:16s} wrong in the last bit: {wrong:6d} of {out.size} pixels ({values:3d} of 256 values)  "
                  f"{best:6.3f} ms/batch")


if __name__ == "__main__":
    main()
