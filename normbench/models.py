"""Model builders, registered by name. Keras is imported inside the builders only.

Each builder reproduces one of the tutorial's architectures; every norm slot is a
`make_norm(...)` call, so `model.norm: none` gives an Identity layer, not a branch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from normbench import NormbenchError
from normbench.norms import make_norm


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable  # (model_config, data_config, num_classes) -> keras.Model
    data_kind: str  # "sequence" (token ids) or "image"
    loss: str
    norm_channels: tuple[int, ...]  # channel count at each norm slot, for group checks
    description: str


MODELS: dict[str, ModelSpec] = {}


def register(name, *, data_kind, loss, norm_channels, description):
    def wrap(fn):
        MODELS[name] = ModelSpec(name, fn, data_kind, loss, tuple(norm_channels), description)
        return fn

    return wrap


# Layers carry fixed names: Keras' default names count up per process (embedding_10 ...),
# and a resume backup must load into a model built in another process.


@register(
    "imdb_rnn",
    data_kind="sequence",
    loss="binary_crossentropy",
    norm_channels=(32, 32),
    description="Embedding(10000,128) > SimpleRNN(32, seq) > norm > SimpleRNN(32) > norm > Dense(1, sigmoid)",
)
def imdb_rnn(model, data, num_classes):
    import keras
    from keras import layers

    norm = lambda where, name: make_norm(model.norm, where, model.norm_groups, name)  # noqa: E731
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            layers.Embedding(data.num_words, 128, name="embedding"),
            layers.SimpleRNN(32, return_sequences=True, unroll=model.unroll, name="rnn_1"),
            norm("sequence", "norm_1"),
            layers.SimpleRNN(32, unroll=model.unroll, name="rnn_2"),
            norm("vector", "norm_2"),
            layers.Dense(1, activation="sigmoid", name="head"),
        ],
        name=f"imdb_rnn_{model.norm}",
    )


@register(
    "cifar10_cnn",
    data_kind="image",
    loss="sparse_categorical_crossentropy",
    norm_channels=(32, 64, 128, 128),
    description="3 x [Conv2D(32/64/128, 3x3, relu) > norm > MaxPool] > Flatten > Dense(128, relu) > norm > Dense(10, softmax)",
)
def cifar10_cnn(model, data, num_classes):
    import keras
    from keras import layers

    norm = lambda where, name: make_norm(model.norm, where, model.norm_groups, name)  # noqa: E731
    blocks = []
    for i, filters in enumerate((32, 64, 128), start=1):
        blocks += [
            layers.Conv2D(filters, (3, 3), activation="relu", name=f"conv_{i}"),
            norm("conv", f"norm_{i}"),
            layers.MaxPooling2D((2, 2), name=f"pool_{i}"),
        ]
    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            *blocks,
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            norm("vector", "norm_4"),
            layers.Dense(num_classes, activation="softmax", name="head"),
        ],
        name=f"cifar10_cnn_{model.norm}",
    )


def build_model(config, num_classes: int):
    """The Keras model for a validated Config (not compiled)."""
    spec = MODELS.get(config.model.arch)
    if spec is None:
        raise NormbenchError(f"unknown model {config.model.arch!r}; choose one of: {', '.join(MODELS)}")
    model = dataclasses.replace(config.model, unroll=resolved_unroll(config))
    return spec.build(model, config.data, num_classes)


# `model.unroll: auto` unrolls on TensorFlow only for runs of at least this many training
# steps (epochs x steps per epoch). Measured on the 2-core CPU (benchmarks/RESULTS.md and
# README, Performance): unrolling the 200-step SimpleRNN saves ~22 ms per training step at
# batch 64 (51 -> 29 ms/step) but costs ~10-20 s more tracing and compiling (train and
# test functions; 30-40 s on a loaded machine), so it pays off after ~500-900 steps.
UNROLL_AUTO_MIN_STEPS = 1000


def planned_steps(config) -> int:
    """Training steps a config asks for (epochs x steps per epoch), from the config alone:
    data.subset.train, else the data set's size (a local file may hold fewer examples)."""
    from normbench.data import DATASETS, SYNTHETIC_SIZE

    if config.data.subset:
        n = config.data.subset.train
    elif config.data.name.startswith("synthetic_"):
        n = SYNTHETIC_SIZE["train"]
    else:
        n = DATASETS[config.data.name].size[0]
    n_fit = math.ceil(n * (1 - config.train.validation_split))  # as Keras splits
    return config.train.epochs * math.ceil(n_fit / config.train.batch_size)


def resolved_unroll(config) -> bool:
    """model.unroll with "auto" decided. Unrolled RNN loops are 1.4-1.8x faster per step
    on TensorFlow's CPU kernels and ~7x slower under JAX/XLA (benchmarks/RESULTS.md), but
    unrolling costs ~10-20 s of extra compiling, which a short run never earns back (the
    IMDB smoke config: 75 steps, 35 s against 18 s). So "auto" unrolls on TensorFlow when
    the run has at least UNROLL_AUTO_MIN_STEPS (1000) training steps: the tutorial's IMDB
    run (5 x 313 steps) unrolls, the smoke configs and --smoke runs do not."""
    if config.model.unroll == "auto":
        return config.train.backend == "tensorflow" and planned_steps(config) >= UNROLL_AUTO_MIN_STEPS
    return bool(config.model.unroll)
