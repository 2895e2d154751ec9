"""Normalization layers by name: one table, no `if norm:` anywhere in model code.

Every norm slot in a model calls `make_norm(name, where, groups)`, where `where` says
what the slot normalizes:

- "conv":     a feature map (batch, height, width, channels)
- "sequence": a sequence-returning RNN's output (batch, time, units)
- "vector":   a flat feature vector (batch, units)

Axes, exactly:

| name  | layer                       | conv                          | sequence                       | vector       |
|-------|-----------------------------|-------------------------------|--------------------------------|--------------|
| batch | BatchNormalization()*       | per channel, over N, H, W     | per unit, over N and time      | per unit, over N |
| layer | LayerNormalization(axis=..) | per sample over H, W, C: [1,2,3] | per sample and time step over units: -1 | per sample over units: -1 |
| group | GroupNormalization(groups)  | per sample and group over H, W, C/g | per sample and group over time, units/g | per sample and group |
| rms   | RMSNormalization(axis=..)   | like layer, no centering: [1,2,3] | like layer: -1             | like layer: -1 |
| instance | GroupNormalization(groups=C) | per sample and channel over H, W | per sample and unit over time | refused (one value per group) |
| dyt   | DyT (normbench.build.layers)      | gamma * tanh(alpha * x) + beta elementwise, gamma/beta per channel (last axis), alpha one scalar |  |  |
| none  | Identity()                  | -                             | -                              | -            |

*`normbench.build.layers.FusedBatchNormalization`: Keras' BatchNormalization (same weights,
same mathematics, population variance in the moving statistics) whose training call on
TensorFlow is one fused kernel; only rounding differs.

`layer` on a conv map uses axis [1, 2, 3] because layer normalization (Ba et al. 2016)
normalizes each sample over *all* its features; Keras' default axis=-1 would normalize
each pixel over its channels only. Its gain and bias then have one value per (h, w, c)
unit, as in Ba et al.'s per-neuron gain. `rms` is `keras.layers.RMSNormalization`, not
`LayerNormalization(rms_scaling=True)`, which Keras itself warns scales wrongly.
"""

from __future__ import annotations

from normbench.core.errors import NormbenchError

SLOTS = ("conv", "sequence", "vector")


def _batch(where, groups, **kw):
    from normbench.build.layers import FusedBatchNormalization  # Keras' layer, one fused kernel on TensorFlow

    return FusedBatchNormalization(**kw)


def _layer(where, groups, **kw):
    from keras import layers

    return layers.LayerNormalization(axis=[1, 2, 3] if where == "conv" else -1, **kw)


def _group(where, groups, **kw):
    from keras import layers

    return layers.GroupNormalization(groups=groups, axis=-1, **kw)


def _rms(where, groups, **kw):
    from keras import layers

    return layers.RMSNormalization(axis=[1, 2, 3] if where == "conv" else -1, **kw)


def _instance(where, groups, **kw):
    from keras import layers

    if where == "vector":  # as PyTorch's InstanceNorm1d refuses (N, C): each group would hold one value
        raise NormbenchError("norm 'instance' has nothing to normalize in a vector slot (one value per channel and "
                             "sample, so it would output beta whatever the input); use a model whose slots are "
                             "conv or sequence maps, or another norm")
    return layers.GroupNormalization(groups=-1, axis=-1, **kw)  # groups=-1: one group per channel


def _dyt(where, groups, **kw):
    from normbench.build.layers import DyT  # Dynamic Tanh (Zhu et al. 2025)

    return DyT(**kw)


def _none(where, groups, **kw):
    from keras import layers

    return layers.Identity(**kw)


# name -> factory(where, groups, **layer_kwargs); the axes are in the module docstring
NORMS = {
    "batch": _batch,
    "layer": _layer,
    "group": _group,
    "rms": _rms,
    "instance": _instance,
    "dyt": _dyt,
    "none": _none,
}


# the norms that can also normalize inside an RNN's recurrence (model.norm_placement:
# recurrent, layers.HoistedSimpleRNN's `norm`); "none" there is the plain cell
CELL_NORMS = ("layer", "rms")
RECURRENT_NORMS = (*CELL_NORMS, "none")  # the model.norm values norm_placement: recurrent accepts


def make_norm(name: str, where: str, groups: int = 8, layer_name: str | None = None):
    """Build the norm layer `name` for a slot of kind `where` (see the module docstring).
    `layer_name` names the Keras layer (stable names keep resume backups loadable)."""
    if name not in NORMS:
        raise NormbenchError(f"unknown norm {name!r}; choose one of: {', '.join(NORMS)}")
    if where not in SLOTS:
        raise ValueError(f"unknown norm slot {where!r}; one of {SLOTS}")
    return NORMS[name](where, groups, **({"name": layer_name} if layer_name else {}))


def slot_norm(m, name: str, kind: str, default: str | None = None) -> str:
    """The norm of one slot (model.norms): its name's entry, else its kind's, else `default`
    (the slot's own, e.g. the MLP's input slot: params.input_norm), else model.norm."""
    norms = m.norms or {}
    return norms.get(name, norms.get(kind, default if default is not None else m.norm))
