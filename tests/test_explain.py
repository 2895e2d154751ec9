"""normbench explain: the tutorial's worked example, from the real Keras layers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import cli
from normbench import NormbenchError
from normbench.analysis.explain import TUTORIAL_MATRIX, explain, parse_matrix


@pytest.fixture(scope="module")
def tutorial_output():
    r = cli("explain")
    assert r.exit_code == 0, r.output
    return r.stdout


def test_tutorial_numbers(tutorial_output):
    out = tutorial_output
    # first column (2, 5, 7): mean 4.67, population std 2.05, batch-normalized -1.30, 0.16, 1.14
    assert "mean = (2.00 + 5.00 + 7.00) / 3 = 4.67, std = 2.05" in out
    assert "sample 1: (2.00 - 4.67) / sqrt(2.05^2 + 0.001) = -1.30" in out
    assert "sample 2: (5.00 - 4.67) / sqrt(2.05^2 + 0.001) = 0.16" in out
    assert "sample 3: (7.00 - 4.67) / sqrt(2.05^2 + 0.001) = 1.14" in out
    assert re.search(r"column mean\s+4\.67\s", out) and re.search(r"column std\s+2\.05\s", out)
    assert "epsilon = 0.001" in out and "BatchNormalization(dtype='float64')(x, training=True)" in out
    assert "LayerNormalization(dtype='float64')(x)" in out
    assert "After batch norm: every column has mean 0 and std ~1." in out
    assert "After layer norm: every row has mean 0 and std ~1." in out
    assert "the other columns are illustrative" in out
    assert "match (within 1e-4)" in out


def test_side_by_side_columns(tutorial_output):
    lines = tutorial_output.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("  batch norm (per column"))
    bn, ln = [], []
    for line in lines[i + 2:i + 5]:
        left, right = line.split("|")
        bn.append([float(v) for v in left.split()[2:]])
        ln.append([float(v) for v in right.split()])
    assert [row[0] for row in bn] == [-1.30, 0.16, 1.14]
    assert ln[0] == [-1.41, -0.71, 0.00, 0.71, 1.41]  # row 1 = 2, 4, 6, 8, 10: mean 6, std 2.83


def test_keras_matches_formula():
    e = explain()
    x = np.array(TUTORIAL_MATRIX, dtype=float)
    assert e.bn_eps == e.ln_eps == 1e-3
    bn = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    ln = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(e.bn_keras, bn, atol=1e-5)
    np.testing.assert_allclose(e.ln_keras, ln, atol=1e-5)
    np.testing.assert_allclose(e.bn_keras.mean(0), 0, atol=1e-5)  # columns centred by BN
    np.testing.assert_allclose(e.ln_keras.mean(1), 0, atol=1e-5)  # rows centred by LN
    assert e.bn_diff < 1e-5 and e.ln_diff < 1e-5


def test_user_matrix():
    r = cli("explain", "--matrix", "1,2,3;4,5,9")
    assert r.exit_code == 0, r.output
    assert "on a 2 x 3 matrix" in r.stdout and "illustrative" not in r.stdout
    # column f1 = (1, 4): mean 2.5, std 1.5 -> -1.00, 1.00
    assert "mean = (1.00 + 4.00) / 2 = 2.50, std = 1.50" in r.stdout
    assert "= -1.00" in r.stdout


def test_parse_matrix_forms(tmp_path):
    assert parse_matrix("1,2;3,4") == [[1, 2], [3, 4]]
    assert parse_matrix("1, 2\n3 4\n") == [[1, 2], [3, 4]]
    f = tmp_path / "m.csv"
    f.write_text("1,2,3\n4,5,6\n")
    assert parse_matrix(str(f)) == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1,2;3,x", "'x' (row 2, column 2) is not a number"),
        ("1,2;3", "row 2 has 1 value but row 1 has 2"),
        (" ; ", "no numbers"),
        ("1,nan", "not a finite number"),
        (";".join(["1"] * 13), "too big to print"),
    ],
)
def test_bad_matrix(text, fragment):
    r = cli("explain", "--matrix", text)
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert r.output.count("\n") == 1 and r.output.startswith("Error: --matrix: ")
    assert fragment in r.output
    with pytest.raises(NormbenchError):
        parse_matrix(text)


def test_one_row_is_not_claimed_to_have_unit_variance():
    """Batch norm of a single sample: each column's mean is the value itself, variance 0,
    so every output is 0; the text must say so, not promise std ~1."""
    r = cli("explain", "--matrix", "1,2,3")
    assert r.exit_code == 0, r.output
    assert "every column has mean 0 and std ~1" not in r.stdout
    assert "After batch norm: every output is 0, not unit variance. With one sample (one row)" in r.stdout
    assert "After layer norm: every row has mean 0 and std ~1." in r.stdout  # three features: fine
    np.testing.assert_array_equal(explain([[1, 2, 3]]).bn_keras, 0)
    r = cli("explain", "--matrix", "1;2;3")  # one feature: layer norm gives zeros
    assert "After layer norm: every output is 0, not unit variance. With one feature (one column)" in r.stdout


def test_constant_and_tiny_columns_are_described_as_they_come_out():
    r = cli("explain", "--matrix", "1,5;1,7;1,9")
    assert ("After batch norm: column f1 is constant (std 0), so its outputs are 0 (std 0, not 1); "
            "every other column has mean 0 and std ~1.") in r.stdout
    r = cli("explain", "--matrix", "0.001,5;0.003,7")
    assert "column f1 has std 0.001, small next to sqrt(epsilon) = 0.032, so its output std is only 0.03" in r.stdout


def test_large_values_are_computed_in_float64():
    """In float32 the variance of 1e30-sized values overflows and Keras returns zeros."""
    x = [[1e30, 2e30, 3e30], [4e30, 5e30, 9e30]]
    e = explain(x)
    xa = np.array(x)
    np.testing.assert_allclose(e.bn_keras, (xa - xa.mean(0)) / np.sqrt(xa.var(0) + 1e-3), rtol=1e-9)
    np.testing.assert_allclose(e.ln_keras, (xa - xa.mean(1, keepdims=True)) / np.sqrt(xa.var(1, keepdims=True) + 1e-3),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e.bn_keras[:, 0], [-1, 1], rtol=1e-9)
    r = cli("explain", "--matrix", "1e30,2e30,3e30;4e30,5e30,9e30")
    assert r.exit_code == 0 and "match (within 1e-4)" in r.stdout and "1e+30" in r.stdout


def test_values_whose_squares_overflow_float64_are_refused():
    r = cli("explain", "--matrix", "1,2;3,1e200")
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert r.output.startswith("Error: --matrix: '1e200' (row 2, column 2) is too large: its square overflows float64")


def test_help():
    r = cli("explain", "--help")
    assert r.exit_code == 0 and "--matrix" in r.output
