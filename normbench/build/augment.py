"""Training-time data augmentation, by name (`train.augment`): a Keras layer put first
in the model, active only when Keras calls the model with training=True (the training
steps of fit), an identity in validation, test and predict, so only training inputs
change. Seeded per run: the layer's random stream starts from the run's `seed`, and its
state is a model variable, so a resumed run's backup carries it on.

flip_crop (the standard CIFAR recipe: He et al. 2016, section 4.2; Wu & He 2018), per
example, for images (N, H, W, C):
    zero-pad `pad` pixels on every side, then take a random H x W window (offsets dy, dx
    uniform in 0..2*pad each), then flip it left-right with probability 1/2:
    y[i, r, c] = P[i, dy_i + r, dx_i + c]         P = x[i] zero-padded by `pad`
    y[i, r, c] = y[i, r, W - 1 - c]               when flip_i
The image keeps its dtype (uint8 stays uint8: the model's Pixels layer scales after it).

Keras is imported inside functions, except in the layer's own module section below,
which is imported only when a model is built.
"""

from __future__ import annotations

from normbench.core.errors import NormbenchError

# train.augment -> (description, the data kind it applies to)
AUGMENTS = {
    "flip_crop": ("zero-pad 4 pixels, random 32x32 crop, random left-right flip, per image (training steps only)", "image"),
}
FLIP_CROP_PAD = 4  # pixels of zero padding around a CIFAR image (He et al. 2016)


def check(cfg, where) -> None:
    """train.augment: a known name, for the data kind it augments."""
    name = cfg.train.augment
    if name is None:
        return
    from normbench.core.checks import choice
    from normbench.build.data import DATASETS

    choice(where, "train.augment", name, AUGMENTS, "augmentation")
    kind = DATASETS[cfg.data.name].kind
    wanted = AUGMENTS[name][1]
    if kind != wanted and kind != "any":
        raise where.error("train.augment", f"{name} augments {wanted} data, {cfg.data.name!r} is {kind} data; remove it")


def layer(name: str, seed: int):
    """The augmentation layer `name`, its random stream seeded by `seed`."""
    if name not in AUGMENTS:
        raise NormbenchError(f"unknown augmentation {name!r}; choose one of: {', '.join(AUGMENTS)}")
    from normbench.build.layers import RandomFlipCrop

    return RandomFlipCrop(pad=FLIP_CROP_PAD, seed=seed, name="augment")


def apply(model, name: str, seed: int):
    """`model` with augmentation `name` as its first layer: a Sequential stays one flat
    Sequential (its norm slots stay top-level layers); another model is wrapped."""
    import keras

    aug = layer(name, seed)
    inp = keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype)
    if isinstance(model, keras.Sequential):
        return keras.Sequential([inp, aug, *model.layers], name=model.name)
    return keras.Model(inp, model(aug(inp)), name=model.name)
