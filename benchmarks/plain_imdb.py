"""The tutorial's IMDB experiment as a plain Keras script (LayerNormalization), the
baseline of the whole-process comparison in benchmarks/RESULTS.md ("End to end, real
IMDB"). Offline, it reads a local copy of Keras' imdb.npz source file and applies
exactly the steps keras.datasets.imdb.load_data(num_words=10000) applies (its cached
copy is checked against a hash, so a rebuilt file cannot stand in for it).

    python benchmarks/plain_imdb.py ../shared/data/imdb.npz
"""

import sys

import keras
import numpy as np
from plain_models import tutorial_model

path = sys.argv[1]
with np.load(path, allow_pickle=True) as f:
    x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
rng = np.random.RandomState(113)  # keras.datasets.imdb's shuffle
idx = np.arange(len(x_train)); rng.shuffle(idx); x_train, y_train = x_train[idx], y_train[idx]
idx = np.arange(len(x_test)); rng.shuffle(idx); x_test, y_test = x_test[idx], y_test[idx]


def encode(x):  # start_char=1, index_from=3, oov_char=2, num_words=10000
    return [w if w < 10000 else 2 for w in [1] + [w + 3 for w in x]]


x_train = keras.utils.pad_sequences([encode(x) for x in x_train], maxlen=200)
x_test = keras.utils.pad_sequences([encode(x) for x in x_test], maxlen=200)

keras.utils.set_random_seed(0)
model = tutorial_model("imdb_rnn", "layer")  # benchmarks/plain_models.py
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=5, batch_size=64, validation_split=0.2, verbose=2)
loss, acc = model.evaluate(x_test, y_test, verbose=0)
print(f"test_accuracy {acc:.4f} test_loss {loss:.4f}")
