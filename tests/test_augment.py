"""train.augment: flip_crop against NumPy (each output is a crop of the zero-padded
image, maybe flipped), applied in training steps only (validation, evaluate and predict
see the images unchanged), reproducible per seed, recorded in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, cli
from normbench import NormbenchError
from normbench.build.augment import AUGMENTS
from normbench.schema.config import from_dict
from normbench.build.models import build_model


def _images(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype("uint8")


def _windows(x, y, pad=4):
    """For each image, the (dy, dx, flipped) windows of the padded input equal to the output."""
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    out = []
    for i in range(len(x)):
        found = []
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                w = padded[i, dy:dy + 32, dx:dx + 32]
                found += [(dy, dx, f) for f, v in ((False, w), (True, w[:, ::-1])) if np.array_equal(v, y[i])]
        out.append(found)
    return out


def test_flip_crop_is_a_padded_crop_maybe_flipped():
    from normbench.build.augment import layer

    x = _images(16)
    aug = layer("flip_crop", seed=3)
    y = np.asarray(aug(x, training=True))
    assert y.dtype == np.uint8 and y.shape == x.shape
    windows = _windows(x, y)
    assert all(len(w) == 1 for w in windows)  # random images: exactly one window matches
    chosen = [w[0] for w in windows]
    assert len(set(chosen)) > 8 and {f for _, _, f in chosen} == {True, False}  # per image, not per batch
    assert np.array_equal(np.asarray(aug(x, training=False)), x)
    assert np.array_equal(np.asarray(aug(x)), x)  # inference by default


def test_flip_crop_is_reproducible_per_seed():
    from normbench.build.augment import layer

    x = _images(16)
    a, b, c = layer("flip_crop", 3), layer("flip_crop", 3), layer("flip_crop", 4)
    ya, yb, yc = (np.asarray(aug(x, training=True)) for aug in (a, b, c))
    assert np.array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    assert not np.array_equal(ya, np.asarray(a(x, training=True)))  # the stream moves on per batch


def _cnn(augment, seed=0):
    train = {"optimizer": "sgd", "learning_rate": 1e-9}
    if augment:
        train["augment"] = augment
    return from_dict({"name": "t", "seed": seed, "data": {"name": "synthetic_cifar10"},
                      "model": {"arch": "cifar10_cnn", "norm": "none"}, "train": train})


def test_augmentation_changes_training_steps_only():
    """Same weights with and without the augment layer: predict and evaluate (validation's
    path) agree exactly; one training step moves the weights differently (its gradient
    is taken on augmented images)."""
    import keras

    plain, aug = build_model(_cnn(None), 10), build_model(_cnn("flip_crop"), 10)
    assert aug.layers[0].name == "augment" and [layer.name for layer in aug.layers[1:]] == [layer.name for layer in plain.layers]
    for layer in plain.layers:
        aug.get_layer(layer.name).set_weights(layer.get_weights())
    for m in (plain, aug):
        m.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    x, y = _images(32), np.arange(32) % 10
    np.testing.assert_array_equal(aug.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert aug.evaluate(x, y, verbose=0) == plain.evaluate(x, y, verbose=0)
    before = plain.get_layer("conv_1").get_weights()[0]
    plain.train_on_batch(x, y)
    aug.train_on_batch(x, y)
    moved = np.abs(plain.get_layer("conv_1").get_weights()[0] - before).max()
    apart = np.abs(aug.get_layer("conv_1").get_weights()[0] - plain.get_layer("conv_1").get_weights()[0]).max()
    assert moved > 0 and apart > 0.1 * moved


def test_augment_is_recorded_and_a_run_repeats_with_its_seed(out):
    """Two runs with train.augment and the same seed give the same history; config.yaml
    records the augmentation."""
    runs = []
    for _ in range(2):
        r = cli("run", REPO / "configs/smoke/cifar10_none.yaml", "-q", "--set", f"output.dir={out}",
                "--set", "train.augment=flip_crop", "--set", "data.subset={train: 160, test: 32}",
                "--set", "train.epochs=2", "--set", "train.deterministic=true")
        assert r.exit_code == 0, r.output
        runs.append(Path(r.output.strip().rsplit(" -> ", 1)[1]))
    from normbench.store import runfolder

    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    histories = [[[row[k] for k in keys] for row in runfolder.read_history(d)] for d in runs]
    assert len(histories[0]) == 2 and histories[0] == histories[1]
    config = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert config["train"]["augment"] == "flip_crop"
    assert json.loads((runs[0] / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("changes, message", [
    ({"augment": "mixup"}, f"train.augment: unknown augmentation 'mixup'; choose one of: {', '.join(AUGMENTS)}"),
    ({"augment": "flip_crop", "imdb": True}, "train.augment: flip_crop augments image data, 'synthetic_imdb' is sequence data; remove it"),
])
def test_augment_errors(changes, message):
    imdb = changes.pop("imdb", False)
    raw = {"name": "t", "data": {"name": "synthetic_imdb" if imdb else "synthetic_cifar10"},
           "model": {"arch": "imdb_rnn" if imdb else "cifar10_cnn", "norm": "none"}, "train": changes}
    with pytest.raises(NormbenchError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        from_dict(raw)


def test_no_augment_leaves_config_yaml_as_before():
    cfg = from_dict({"name": "t", "data": {"name": "synthetic_cifar10"}, "model": {"arch": "cifar10_cnn", "norm": "none"}})
    assert "augment" not in cfg.to_dict()["train"]


def test_an_augmented_model_survives_a_backup(tmp_path):
    """A resume backup is a saved .keras model: the augment layer loads back with its
    random stream where it was, so the next training batch is augmented as it would have been."""
    import keras

    model = build_model(_cnn("flip_crop", seed=5), 10)
    x = _images(8)
    model.layers[0](x, training=True)  # move the stream on
    model.save(tmp_path / "backup.keras")
    loaded = keras.models.load_model(tmp_path / "backup.keras")
    assert loaded.layers[0].name == "augment"
    np.testing.assert_array_equal(np.asarray(loaded.layers[0](x, training=True)), np.asarray(model.layers[0](x, training=True)))
