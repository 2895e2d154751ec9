"""Gradient norms at initialisation: layer norm between the RNN layers vs inside the
recurrence (norm_placement: recurrent), on one batch of 64 of the IMDB smoke config's
synthetic reviews (200 pre-padded tokens), seed 0. Explains why the recurrent cell
stays at chance in results/study/study_imdb_recurrent (results/README.md).

    python benchmarks/recurrent_gradients.py > benchmarks/results/recurrent_gradients.txt
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from normbench.core.quiet import import_keras  # noqa: E402

keras = import_keras()
import tensorflow as tf  # noqa: E402

from normbench.schema.config import load_config  # noqa: E402
from normbench.build.data import load_data  # noqa: E402
from normbench.build.models import build_model  # noqa: E402

print("placement  variable  shape  gradient-norm")
for placement in ("between", "recurrent"):
    cfg = load_config("configs/smoke/imdb_ln.yaml", [f"model.norm_placement={placement}", "model.unroll=false"])
    keras.utils.set_random_seed(0)
    data = load_data(cfg.data, 0)
    model = build_model(cfg, 2)
    x, y = data.x_train[:64], data.y_train[:64].astype("float32")[:, None]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, model(x, training=True)))
    for v, g in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables)):
        print(f"{placement}  {v.path.split('/', 1)[1]}  {tuple(v.shape)}  {float(tf.norm(g)):.3g}")
