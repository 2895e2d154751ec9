"""compare's errors, each one line: unknown metrics and keys, missing or empty paths,
corrupt run folders (listed apart, the rest compared), nothing completed; the library
raises NormbenchError."""

from __future__ import annotations

import io
import json
import statistics

import pytest

from conftest import ACC2, cli, error_line, write_run
from normbench import NormbenchError


# ----------------------------------------------------------------------------- errors


def test_compare_unknown_metric(two_groups):
    r = cli("compare", two_groups, "--metric", "accuracyy")
    error_line(r, "--metric accuracyy: unknown metric; choose one of: test_accuracy, test_loss")


def test_a_metric_no_run_has_is_one_line(tmp_path):
    write_run(tmp_path, seed=0, extra={"test_accuracy_best": None})
    error_line(cli("compare", tmp_path, "--metric", "test_accuracy_best"),
                       "--metric test_accuracy_best: no completed run has a value for it")


def test_compare_missing_path(tmp_path):
    error_line(cli("compare", tmp_path / "nope"), str(tmp_path / "nope"), "no such file or folder")


def test_compare_path_without_runs(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    error_line(cli("compare", tmp_path / "empty"), "no runs found", "output.dir")
    f = tmp_path / "notes.txt"
    f.write_text("x")
    error_line(cli("compare", f), "is a file, not a run folder")


@pytest.mark.parametrize("file, text, reason", [
    ("summary.json", '{"status": "completed", "test_acc', "corrupt summary.json (Unterminated string"),
    ("summary.json", '{"status": "completed", "test_accuracy": "high"}', "test_accuracy is 'high', not a number"),
    ("summary.json", "[]", 'corrupt summary.json (no "status" field)'),
    ("config.yaml", "model: [unclosed", "corrupt config.yaml"),
    ("config.yaml", None, "run folder without config.yaml"),
])
def test_compare_lists_a_corrupt_run_apart(two_groups, file, text, reason):
    """One unreadable run folder is listed apart (status corrupt, the reason); the others
    are compared as if it were not there."""
    import pandas as pd

    d = sorted(p.parent for p in two_groups.rglob("summary.json"))[0]  # exp_batch, seed 1
    if text is None:
        (d / file).unlink()
    else:
        (d / file).write_text(text)
    r = cli("compare", two_groups)
    assert r.exit_code == 0, r.output
    line = next(l for l in r.stdout.splitlines() if l.startswith("corrupt"))
    assert str(d) in line and reason in line, line
    assert "not averaged: 1 run" in r.stdout
    df = pd.read_csv(io.StringIO(cli("compare", two_groups, "--format", "csv").stdout)).set_index("model.norm")
    assert df.loc["batch", "n"] == 2 and df.loc["batch", "test_accuracy_mean"] == pytest.approx(statistics.mean(ACC2["batch"][1:]))
    js = json.loads(cli("compare", two_groups, "--format", "json").stdout)
    assert [(x["status"], x["path"]) for x in js["excluded"]] == [("corrupt", str(d))] and reason in js["excluded"][0]["note"]
    r = cli("compare", two_groups, "--format", "csv")
    assert f"note: not averaged: corrupt run {d}" in r.stderr and reason in r.stderr


def test_compare_only_corrupt_runs(tmp_path):
    d = write_run(tmp_path, seed=1)
    (d / "summary.json").write_text("{")
    error_line(cli("compare", tmp_path), "no completed runs to compare (1 corrupt)")


def test_compare_no_completed_runs(tmp_path):
    write_run(tmp_path, seed=1, status="diverged")
    r = cli("compare", tmp_path)
    error_line(r, "no completed runs to compare (1 diverged)", "normbench run --resume")


def test_within_errors_are_one_line(tmp_path):
    root = tmp_path / "r"
    for norm in ("batch", "layer"):
        write_run(root, seed=0, norm=norm)
    error_line(cli("compare", root, "--within", "train.batchsize"),
                       "--within train.batchsize: no such config key in these runs; keys that vary here: model.norm")
    error_line(cli("compare", root, "--within", "seed"), "--within seed: seed never separates groups")


def test_library_errors_are_normbench_errors(tmp_path):
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs

    with pytest.raises(NormbenchError, match="no such file"):
        load_runs([tmp_path / "missing"])
    with pytest.raises(NormbenchError, match="unknown metric"):
        results.compare([], "nope")
    with pytest.raises(NormbenchError, match="no completed runs to compare"):
        results.compare([])
