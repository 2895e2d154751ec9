"""normbench explain: what batch and layer normalization compute on a small matrix,
from the real Keras layers, checked against (x - mean) / sqrt(var + eps).

Everything is computed in float64, the Keras layers included (dtype="float64"): in
float32 the variance of values around 1e20 already overflows and the layers return zeros.
Values beyond MAX_ABS (whose squares would overflow float64 too) are refused in one line.

The only module of the results side that imports Keras (inside `explain`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from normbench.core.errors import ParamError, literal

TUTORIAL_MATRIX = [[2, 4, 6, 8, 10], [5, 3, 1, 9, 7], [7, 8, 2, 4, 6]]
MAX_ROWS, MAX_COLS = 12, 8
MAX_ABS = 1e150  # squares (the variance) stay finite in float64
_MATRIX_HELP = 'write numbers separated by "," and rows by ";", e.g. {matrix} "1,2,3;4,5,6"'  # a ParamError reason


def parse_matrix(matrix: str) -> list[list[float]]:
    """'1,2,3;4,5,6' (or CSV lines, or a CSV file's path) -> rows of floats."""
    src, text = None, matrix  # src: the CSV file the text came from

    def error(reason: str) -> ParamError:  # about the matrix parameter, or the file it named
        if src is None:
            return ParamError("matrix", matrix, reason, shown=False)
        return ParamError(None, matrix, f"{literal(src)}: {reason}")

    if "\n" not in text and ";" not in text and os.path.isfile(text):
        src = text
        try:
            text = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise error(f"cannot read ({e.__class__.__name__}); pass readable CSV text") from None
    rows = []
    for i, line in enumerate((r for r in re.split(r"[;\n]", text) if r.strip()), 1):
        row = []
        for j, cell in enumerate((c for c in re.split(r"[,\s]+", line.strip()) if c), 1):
            try:
                v = float(cell)
            except ValueError:
                raise error(f"{literal(repr(cell))} (row {i}, column {j}) is not a number; {_MATRIX_HELP}") from None
            if not math.isfinite(v):
                raise error(f"{literal(repr(cell))} (row {i}, column {j}) is not a finite number; {_MATRIX_HELP}")
            if abs(v) > MAX_ABS:
                raise error(f"{literal(repr(cell))} (row {i}, column {j}) is too large: its square overflows float64; "
                            f"use values within ±{MAX_ABS:g}, or rescale the matrix")
            row.append(v)
        rows.append(row)
    if not rows:
        raise error(f"no numbers; {_MATRIX_HELP}")
    for i, row in enumerate(rows[1:], 2):
        if len(row) != len(rows[0]):
            raise error(
                f"row {i} has {len(row)} value{'s' * (len(row) != 1)} but row 1 has {len(rows[0])}; "
                "give every row the same number of columns"
            )
    if len(rows) > MAX_ROWS or len(rows[0]) > MAX_COLS:
        raise error(f"{len(rows)} x {len(rows[0])} is too big to print; use at most {MAX_ROWS} rows x {MAX_COLS} columns")
    return rows


@dataclass
class Explanation:
    x: object  # (rows, cols) float64
    tutorial: bool
    bn_eps: float
    ln_eps: float
    bn_mean: object  # per column
    bn_std: object  # per column, population std (ddof=0)
    bn_keras: object  # BatchNormalization()(x, training=True)
    bn_numpy: object
    ln_mean: object  # per row
    ln_std: object
    ln_keras: object  # LayerNormalization()(x)
    ln_numpy: object

    @property
    def bn_diff(self) -> float:
        return float(abs(self.bn_keras - self.bn_numpy).max())

    @property
    def ln_diff(self) -> float:
        return float(abs(self.ln_keras - self.ln_numpy).max())


def explain(matrix=None) -> Explanation:
    """Batch and layer normalization of a small matrix (rows = samples, columns =
    features), from the real Keras layers, checked against (x - mean) / sqrt(var + eps)."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from normbench.core.quiet import import_keras

    keras = import_keras()

    x = np.asarray(TUTORIAL_MATRIX if matrix is None else matrix, dtype="float64")
    if x.ndim != 2 or x.size == 0:
        raise ParamError("matrix", x, f"expected a 2-D matrix of numbers; {_MATRIX_HELP}", shown=False)
    if not np.all(np.isfinite(x)) or np.abs(x).max() > MAX_ABS:
        raise ParamError("matrix", x, f"values must be finite and within ±{MAX_ABS:g} (their squares overflow float64 "
                                      "beyond)", shown=False)
    # float64 layers: in float32 the variance of values near 1e20 overflows and the output is all zeros
    bn = keras.layers.BatchNormalization(dtype="float64")  # axis=-1: one mean/var per column, over the rows
    ln = keras.layers.LayerNormalization(dtype="float64")  # axis=-1: one mean/var per row, over the columns
    bn_keras = keras.ops.convert_to_numpy(bn(x, training=True)).astype("float64")
    ln_keras = keras.ops.convert_to_numpy(ln(x)).astype("float64")
    bn_mean, bn_var = x.mean(axis=0), x.var(axis=0)
    ln_mean, ln_var = x.mean(axis=1), x.var(axis=1)
    return Explanation(
        x=x, tutorial=matrix is None, bn_eps=float(bn.epsilon), ln_eps=float(ln.epsilon),
        bn_mean=bn_mean, bn_std=np.sqrt(bn_var), bn_keras=bn_keras,
        bn_numpy=(x - bn_mean) / np.sqrt(bn_var + bn.epsilon),
        ln_mean=ln_mean, ln_std=np.sqrt(ln_var), ln_keras=ln_keras,
        ln_numpy=(x - ln_mean[:, None]) / np.sqrt(ln_var[:, None] + ln.epsilon),
    )


def _d2(v) -> str:
    v = float(v)
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    return f"{0.0 if round(v, 2) == 0 else v:.2f}"


def _after(layer: str, unit: str, names: list[str], std_in, std_out, eps: float, over: int) -> str:
    """What the layer's output looks like per column (batch norm) or row (layer norm),
    from the numbers, not promised: one value per statistic gives zeros, a constant
    column/row gives zeros, a spread small next to sqrt(epsilon) gives an output std < 1."""
    if over == 1:
        one = "sample (one row)" if unit == "column" else "feature (one column)"
        return (f"After {layer}: every output is 0, not unit variance. With one {one}, each {unit}'s mean is its "
                f"only value and its variance 0, so (x - mean) / sqrt(0 + {eps:g}) = 0.")
    const = [n for n, s in zip(names, std_in) if s == 0]
    weak = [(n, s, o) for n, s, o in zip(names, std_in, std_out) if s > 0 and o < 0.99]
    ok = len(names) - len(const) - len(weak)
    parts = []
    pre = "column " if unit == "column" else ""  # rows are named "sample 1", ...
    if const:
        parts.append(f"{pre}{', '.join(const)} {'is' if len(const) == 1 else 'are'} constant (std 0), "
                     f"so {'its' if len(const) == 1 else 'their'} outputs are 0 (std 0, not 1)")
    parts += [f"{pre}{n} has std {_g(s)}, small next to sqrt(epsilon) = {_g(math.sqrt(eps))}, "
              f"so its output std is only {o:.2f}" for n, s, o in weak]
    if ok:
        parts.append(f"{'every' if ok == len(names) else 'every other'} {unit} has mean 0 and std ~1")
    return f"After {layer}: " + "; ".join(parts) + "."


def _g(v) -> str:
    return f"{float(v):.2g}"


def format_explanation(e: Explanation) -> str:
    n, m = e.x.shape
    cols = [f"f{j + 1}" for j in range(m)]
    rows = [f"sample {i + 1}" for i in range(n)]
    w = max(7, *(len(_d2(v)) + 2 for v in e.x.ravel()))
    lw = max(len(r) for r in rows + ["column mean"]) + 1

    def line(name, values, width=w):
        return f"  {name:<{lw}}" + "".join(f"{s:>{width}}" for s in values)

    def matrix(a):
        return [line(rows[i], [_d2(v) for v in a[i]]) for i in range(n)]

    c0, bm, bs = e.x[:, 0], _d2(e.bn_mean[0]), _d2(e.bn_std[0])
    out = [f"Batch normalization vs layer normalization on a {n} x {m} matrix x: rows are samples (a batch), columns are features."]
    if e.tutorial:
        out.append("The tutorial's worked example is the first column, f1 = (2, 5, 7); the other columns are illustrative.")
    out += [
        "",
        "x, with the statistics each layer uses (std = population std, ddof=0, as both layers use):",
        line("", cols) + "   |" + f"{'row mean':>10}{'row std':>9}",
        *[r + "   |" + f"{_d2(e.ln_mean[i]):>10}{_d2(e.ln_std[i]):>9}" for i, r in enumerate(matrix(e.x))],
        line("column mean", [_d2(v) for v in e.bn_mean]),
        line("column std", [_d2(v) for v in e.bn_std]),
        "",
        f"Batch normalization  keras.layers.BatchNormalization(dtype='float64')(x, training=True), epsilon = {e.bn_eps:g}:",
        "  each feature (column) across the samples in the batch: uses the column mean and std.",
        f"Layer normalization  keras.layers.LayerNormalization(dtype='float64')(x), epsilon = {e.ln_eps:g}:",
        "  each sample (row) across its features: uses the row mean and std.",
        "Both compute (x - mean) / sqrt(std^2 + epsilon), then scale by gamma = 1 and shift by beta = 0 (their initial values).",
        "",
        f"Worked example, batch norm of column f1: mean = ({' + '.join(_d2(v) for v in c0)}) / {n} = {bm}, std = {bs}",
        *[f"  {rows[i]}: ({_d2(v)} - {bm}) / sqrt({bs}^2 + {e.bn_eps:g}) = {_d2(e.bn_keras[i, 0])}" for i, v in enumerate(c0)],
        f"Worked example, layer norm of sample 1: mean = {_d2(e.ln_mean[0])}, std = {_d2(e.ln_std[0])}",
        "  " + "  ".join(f"f{j + 1}: {_d2(e.ln_keras[0, j])}" for j in range(m)),
        "",
        "Side by side, the outputs of the Keras layers:",
    ]
    title = "  batch norm (per column, across rows)"
    bw = max(len(line("", cols)), len(title))
    out.append(f"{title:<{bw}}   |  layer norm (per row, across columns)")
    out.append(f"{line('', cols):<{bw}}   |" + "".join(f"{c:>{w}}" for c in cols))
    for b, l_ in zip(matrix(e.bn_keras), matrix(e.ln_keras)):
        out.append(f"{b:<{bw}}   |{l_[lw + 2:]}")
    ok = e.bn_diff < 1e-4 and e.ln_diff < 1e-4
    out += [
        "",
        f"Check with numpy, (x - mean) / sqrt(var + epsilon): max |Keras - numpy| = {e.bn_diff:.1e} (batch norm), "
        f"{e.ln_diff:.1e} (layer norm): {'match (within 1e-4)' if ok else 'MISMATCH (over 1e-4)'}",
        _after("batch norm", "column", cols, e.bn_std, e.bn_keras.std(axis=0), e.bn_eps, n),
        _after("layer norm", "row", rows, e.ln_std, e.ln_keras.std(axis=1), e.ln_eps, m),
        "At inference (training=False) batch norm uses its moving averages instead; layer norm computes the same either way.",
    ]
    return "\n".join(out) + "\n"
