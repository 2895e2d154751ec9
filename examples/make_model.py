"""Make a small saved functional CNN with BatchNormalization, as someone else's model
would arrive: `python examples/make_model.py OUT.keras [--size 32]`. normbench then swaps
its norms: configs/examples/saved_functional.yaml (docs/own-model.md)."""

import argparse

import keras
from keras import layers


def make(size: int = 32, classes: int = 10) -> keras.Model:
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    for i, filters in enumerate((16, 32), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv_{i}")(x)
        x = layers.BatchNormalization(name=f"bn_{i}")(x)
        x = layers.Activation("relu", name=f"relu_{i}")(x)
        x = layers.MaxPooling2D(name=f"pool_{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    x = layers.BatchNormalization(name="bn_dense")(x)
    outputs = layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="their_cnn")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", help="where to write the .keras file")
    ap.add_argument("--size", type=int, default=32, help="image height and width")
    ap.add_argument("--classes", type=int, default=10)
    a = ap.parse_args()
    make(a.size, a.classes).save(a.out)
    print(f"wrote {a.out}")
