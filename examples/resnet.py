"""A small ResNet-style CNN as a normbench Python builder (model.arch:
examples/resnet.py:build). Residual additions need a functional graph, which a
model.layers list (Sequential) cannot describe; a builder can, and every norm slot is
`norm("conv")`, filled from model.norm (docs/own-model.md)."""

import keras
from keras import layers


def block(x, norm, filters, name):
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, name=f"{name}_proj")(x)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    y = norm("conv", f"{name}_norm1")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    y = norm("conv", f"{name}_norm2")(y)
    return layers.Activation("relu")(layers.Add()([shortcut, y]))


def build(norm, input_shape, num_classes):
    """norm(kind, name=None) -> the model.norm layer for a conv | sequence | vector slot;
    input_shape: one example's shape, e.g. (32, 32, 3); num_classes: from the data."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(16, 3, padding="same", name="stem")(x)
    x = block(x, norm, 16, "res1")
    x = layers.MaxPooling2D()(x)
    x = block(x, norm, 32, "res2")
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name="small_resnet")
