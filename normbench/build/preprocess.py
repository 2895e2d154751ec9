"""Input preprocessing (`data.preprocess`), registered by name: the one place to add a method.

A method is fitted on the training rows only, after the validation split is cut (Keras'
`fit(validation_split=v)` validates on the last rows of x_train: `data.split`), and the
statistics it fitted then transform every row of x_train (its validation tail included)
and x_test. Validation and test rows are never fitted on, so nothing about them leaks
into training. Statistics are per feature: over every axis but the last, so per column
for tabular data (N, F), per channel for images (N, H, W, C), per feature for float
sequences (N, T, F). Token ids (data sets of kind "sequence") are refused by `check`.

The fitted statistics' fingerprint (sha256 over the method, the rows fitted and the
statistics' bytes) is summary.json's `preprocess_fingerprint`; compare groups runs by it
with their data fingerprint. NumPy is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Method:
    description: str  # what it does, for docs and `validate`
    fit: Callable | None  # (x_fit float64 array, axes) -> dict of statistics arrays; None = nothing to fit
    apply: Callable | None  # (x float64 array, stats) -> transformed array


def _minmax_fit(x, axes):
    np = _np()
    return {"min": np.min(x, axis=axes), "max": np.max(x, axis=axes)}


def _minmax_apply(x, s):
    np = _np()
    span = s["max"] - s["min"]
    return (x - s["min"]) / np.where(span > 0, span, 1.0)  # a constant feature maps to 0


def _zscore_fit(x, axes):
    np = _np()
    return {"mean": np.mean(x, axis=axes), "std": np.std(x, axis=axes)}  # population std (ddof 0), as the tutorial


def _zscore_apply(x, s):
    np = _np()
    return (x - s["mean"]) / np.where(s["std"] > 0, s["std"], 1.0)  # a constant feature maps to 0


PREPROCESS = {
    "none": Method("the data as loaded (images: uint8 pixels, scaled to [0, 1] inside the CNN)", None, None),
    "minmax": Method("min-max scaling per feature: (x - min) / (max - min), min and max of the training rows; "
                     "training rows land in [0, 1]", _minmax_fit, _minmax_apply),
    "zscore": Method("z-score standardization per feature: (x - mean) / std, mean and population std of the "
                     "training rows; training rows get mean 0 and std 1", _zscore_fit, _zscore_apply),
}


def _np():
    import numpy as np

    return np


def check(name: str, data_kind: str, where, data_name: str) -> None:
    """data.preprocess rules: a known method; never on token ids."""
    from normbench.core.checks import choice

    choice(where, "data.preprocess", name, PREPROCESS, "preprocessing")
    if name != "none" and data_kind == "sequence":
        raise where.error("data.preprocess", f"{data_name} holds token ids, which {name} would turn into numbers that "
                                             "are no ids; use none (scale inside the model instead)")


@dataclass
class Fitted:
    x_train: object  # float32, every row transformed
    x_test: object
    fingerprint: str  # sha256 of the method, the rows fitted and the statistics
    stats: dict


def fit_transform(name: str, x_train, x_test, fit_rows: int) -> Fitted:
    """Fit `name` on x_train[:fit_rows] (the rows Keras trains on) and transform all of
    x_train and x_test with those statistics, as float32."""
    import hashlib

    np = _np()
    method = PREPROCESS[name]
    if method.fit is None:
        return Fitted(x_train, x_test, "", {})
    if not 1 <= fit_rows <= len(x_train):
        raise ValueError(f"fit_rows {fit_rows} outside 1..{len(x_train)}")
    axes = tuple(range(np.ndim(x_train) - 1))  # all but the last axis: per feature / channel
    stats = method.fit(np.asarray(x_train[:fit_rows], dtype="float64"), axes)
    h = hashlib.sha256(f"{name};{fit_rows};".encode())
    for key in sorted(stats):
        a = np.ascontiguousarray(stats[key], dtype="float64")
        h.update(f"{key}{a.shape};".encode())
        h.update(memoryview(a).cast("B"))

    def apply(x):
        return method.apply(np.asarray(x, dtype="float64"), stats).astype("float32")

    return Fitted(apply(x_train), apply(x_test), "sha256:" + h.hexdigest(), stats)
