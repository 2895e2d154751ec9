"""Library errors of analysis/ and present/ in the library's own words (issue 30): a
ParamError names the function's parameter (`metric`, `fmt`, `out`, `tracking_uri`); the
CLI renders it as the option typed (`--metric`, `--format`, `-o`, `--tracking-uri`).
The CLI's exact texts are asserted by the commands' own tests (test_compare_*.py,
test_plot.py, test_explain.py, test_report.py, test_bridges.py)."""

from __future__ import annotations

import sqlite3

import pytest

from normbench.cli import _flag
from normbench.core.errors import ParamError, literal


def _raised(fn, *args) -> ParamError:
    with pytest.raises(ParamError) as info:
        fn(*args)
    return info.value


def test_param_error_without_a_value_or_a_parameter():
    e = ParamError("matrix", [[1]], "expected {matrix} rows", shown=False)
    assert (str(e), e.render(_flag)) == ("matrix: expected matrix rows", "--matrix: expected --matrix rows")
    e = ParamError(None, "x", f"mlflow {literal('a{b}')}: check {{tracking_uri}}")
    assert (str(e), e.render(_flag)) == ("mlflow a{b}: check tracking_uri", "mlflow a{b}: check --tracking-uri")


def test_compare_s_checks_name_their_parameters():
    from normbench.analysis import results, runs, tables

    e = _raised(results.check_metric, "accuracy")
    assert str(e).startswith("metric accuracy: unknown metric; choose one of: test_accuracy, ")
    assert e.render(_flag) == "--" + str(e)
    e = _raised(tables.format_comparison, None, "xml")
    assert str(e) == "fmt xml: unknown format; choose one of: " + ", ".join(tables.FORMATS)
    assert e.render(_flag) == "--format xml: unknown format; choose one of: " + ", ".join(tables.FORMATS)
    e = _raised(runs.with_role, [], "bogus")
    assert str(e) == "role bogus: unknown role; choose one of: tuning, confirmation"
    assert _raised(runs.with_role, [], "tuning").render(_flag) == (
        "--role tuning: no tuning runs in these folders; these runs have no role (normbench tune records one)")
    e = _raised(results.check_within, [], ("seed",))
    assert str(e) == ("within seed: seed never separates groups (seeds, names and outputs are pooled; "
                      "model.arch and data.name already make sections); name a config key that varies")
    e = _raised(results.check_within, [], ("a{b}",))  # a key with braces is shown as typed
    assert e.render(_flag) == ("--within a{b}: no such config key in these runs; use a dotted config key such as "
                               "train.batch_size")
    assert str(_raised(results.check_margin, 0)) == (
        "margin 0: must be a positive number in the metric's units, e.g. 0.01 (1 pp of accuracy)")
    assert _raised(results.check_family, "pairs").render(_flag) == (
        "--family pairs: unknown family; choose one of: vs-best, all-pairs")


def test_explain_names_the_matrix_or_the_file_it_came_from(tmp_path):
    from normbench.analysis.explain import parse_matrix

    e = _raised(parse_matrix, "1,x")
    help_ = 'write numbers separated by "," and rows by ";", e.g. {} "1,2,3;4,5,6"'
    assert str(e) == "matrix: 'x' (row 1, column 2) is not a number; " + help_.format("matrix")
    assert e.render(_flag) == "--matrix: 'x' (row 1, column 2) is not a number; " + help_.format("--matrix")
    f = tmp_path / "m{1}.csv"
    f.write_text("1,2\n3\n")
    e = _raised(parse_matrix, str(f))
    assert str(e) == e.render(_flag) == (f"{f}: row 2 has 1 value but row 1 has 2; "
                                         "give every row the same number of columns")


def test_outputs_are_named_out(tmp_path):
    from normbench.present.report import build_report

    e = _raised(build_report, [tmp_path], tmp_path / "r.txt")
    assert str(e) == f"out {tmp_path / 'r.txt'}: a report is an HTML page; end the name in .html"
    assert e.render(_flag) == f"-o {tmp_path / 'r.txt'}: a report is an HTML page; end the name in .html"


def test_a_store_error_names_tracking_uri_when_it_was_given(tmp_path):
    from normbench.present.export import _check_sqlite

    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    uri = f"sqlite:///{db}"
    tail = (f"{db} is a SQLite database of another application (tables notes), not an MLflow store, and MLflow "
            "would create its own tables inside it; name another file, or pass {} to add them anyway")
    e = _raised(_check_sqlite, uri, db, True, False)
    assert str(e) == f"tracking_uri {uri}: " + tail.format("force")
    assert e.render(_flag) == f"--tracking-uri {uri}: " + tail.format("--force")
    e = _raised(_check_sqlite, uri, db, False, False)
    assert e.render(_flag) == f"the default store {uri}: " + tail.format("--force")
