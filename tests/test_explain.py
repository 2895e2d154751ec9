"""normbench explain: the tutorial's worked example, from the real Keras layers."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from normbench import NormbenchError
from normbench.cli import main
from normbench.explain import TUTORIAL_MATRIX, explain, parse_matrix


def cli(*args):
    return CliRunner().invoke(main, list(args))


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
    assert "epsilon = 0.001" in out and "BatchNormalization()(x, training=True)" in out and "LayerNormalization()(x)" in out
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


def test_help():
    r = cli("explain", "--help")
    assert r.exit_code == 0 and "--matrix" in r.output
