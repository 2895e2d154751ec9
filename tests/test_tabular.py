"""Tabular data (scikit-learn's bundled tables, the synthetic salary table, arrays of
feature vectors), the built-in MLP, and the measures history.csv and summary.json gain."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from conftest import cli, error_line
from normbench.schema.config import from_dict
from normbench.build.data import SALARY_COLUMNS, load_data


def _data(name, **extra):
    return from_dict({"name": "t", "data": {"name": name, **extra}, "model": {"arch": "mlp", "norm": "none"}}).data


@pytest.mark.parametrize("name, features, classes, train, test", [
    ("breast_cancer", 30, 2, 456, 113),
    ("wine", 13, 3, 142, 36),
])
def test_scikit_learns_tables_load_offline_with_their_shapes(name, features, classes, train, test, monkeypatch):
    import socket

    def no_network(*a, **k):
        raise AssertionError("tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    d = load_data(_data(name))
    assert d.x_train.shape == (train, features) and d.x_test.shape == (test, features)
    assert d.num_classes == classes and set(np.unique(d.y_train)) == set(range(classes))
    assert d.source == f"sklearn.datasets.load_{name}" and d.x_train.dtype == np.float32
    assert not set(map(bytes, d.x_train)) & set(map(bytes, d.x_test))  # held-out rows, not copies
    if name == "breast_cancer":  # the scales: ~0.001 to ~4,000
        assert 0 < d.x_train[d.x_train > 0].min() < 0.002 and 3000 < d.x_train.max() < 5000


def test_the_synthetic_salary_table_has_the_stated_ranges():
    d = load_data(_data("synthetic_salary", subset={"train": 2000, "test": 200}), seed=3)
    assert d.x_train.shape == (2000, len(SALARY_COLUMNS)) and d.num_classes == 2
    for j, (column, low, high) in enumerate(SALARY_COLUMNS):
        assert low <= d.x_train[:, j].min() and d.x_train[:, j].max() <= high, column
    assert 0.3 < d.y_train.mean() < 0.7  # both classes well represented
    again = load_data(_data("synthetic_salary", subset={"train": 2000, "test": 200}), seed=3)
    np.testing.assert_array_equal(again.x_train, d.x_train)


def test_a_missing_scikit_learn_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    from normbench.core import checks

    monkeypatch.setattr(checks, "installed", lambda module: module != "sklearn")
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"name": "t", "data": {"name": "wine"}, "model": {"arch": "mlp", "norm": "none"}}))
    r = cli("validate", p)
    assert error_line(r) == (f"Error: {p}: data.name: wine needs scikit-learn, which is not installed; install it with "
                             "`pip install 'normbench[tabular]'`")


def _run(tmp_path, data, model=None, **train):
    raw = {"name": "tab", "data": data, "model": model or {"arch": "mlp", "norm": "none"},
           "train": {"epochs": 8, "batch_size": 32, **train}, "output": {"dir": str(tmp_path / "results")}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    r = cli("run", p, "--quiet")
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "results" / "tab").iterdir()
    return json.loads((run_dir / "summary.json").read_text()), list(csv.DictReader(open(run_dir / "history.csv")))


def test_the_mlp_learns_the_salary_rule_and_records_the_measures(tmp_path):
    summary, rows = _run(tmp_path, {"name": "synthetic_salary", "subset": {"train": 800, "test": 400}, "preprocess": "zscore"},
                         {"arch": "mlp", "norm": "batch", "params": {"hidden": [16]}}, learning_rate=0.01)
    assert summary["test_accuracy"] > 0.8  # chance is ~0.5: the rule is learnt
    # measures: a gradient norm per epoch (mean <= max), epochs to 95 % of the best validation accuracy
    assert len(rows) == 8 and all(0 < float(r["grad_norm_mean"]) <= float(r["grad_norm_max"]) for r in rows)
    assert all(r["nonfinite_steps"] == "0" for r in rows) and summary["nonfinite_steps"] == 0
    assert summary["max_grad_norm"] == max(float(r["grad_norm_max"]) for r in rows)
    best = max(float(r["val_accuracy"]) for r in rows)
    first = min(int(r["epoch"]) for r in rows if float(r["val_accuracy"]) >= 0.95 * best)
    assert summary["epochs_to_95"] == first


def test_arrays_of_feature_vectors_train_the_mlp_with_preprocessing(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)) * [1, 1000, 0.01, 50]
    y = (x[:, 0] + x[:, 1] / 1000 > 0).astype("int64")
    np.savez(tmp_path / "t.npz", x_train=x[:240].astype("float32"), y_train=y[:240], x_test=x[240:].astype("float32"),
             y_test=y[240:])
    summary, _ = _run(tmp_path, {"name": "arrays", "path": str(tmp_path / "t.npz"), "preprocess": "minmax"},
                      learning_rate=0.01, epochs=10)
    assert summary["preprocess_fingerprint"].startswith("sha256:") and summary["test_accuracy"] > 0.8


def test_the_mlp_refuses_examples_that_are_not_feature_vectors(tmp_path):
    np.savez(tmp_path / "i.npz", x_train=np.zeros((10, 4, 4, 3), "float32"), y_train=np.arange(10) % 2,
             x_test=np.zeros((4, 4, 4, 3), "float32"), y_test=np.arange(4) % 2)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"name": "t", "data": {"name": "arrays", "path": str(tmp_path / "i.npz")},
                                 "model": {"arch": "mlp", "norm": "none"}}))
    assert error_line(cli("validate", p)) == ("Error: model mlp: the data's examples have shape [4, 4, 3]; the MLP takes "
                                              "feature vectors (N, features): flatten them, or use another model")


def test_mlp_params_are_checked(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"name": "t", "data": {"name": "wine"},
                                 "model": {"arch": "mlp", "norm": "none", "params": {"hidden": [8, 0]}}}))
    assert error_line(cli("validate", p)) == (f"Error: {p}: model.params.hidden: expected a list of positive layer sizes, "
                                              "e.g. [64, 32], got [8, 0]")
    p.write_text(yaml.safe_dump({"name": "t", "data": {"name": "synthetic_imdb"}, "model": {"arch": "mlp", "norm": "none"}}))
    assert "model mlp needs tabular data, 'synthetic_imdb' is sequence data" in error_line(cli("validate", p))


def test_inline_layer_lists_get_compact_labels():
    from normbench.analysis.results import show_value

    layers = [{"Dense": {"units": 64, "activation": "relu"}}, {"norm": "vector"}, {"Dense": {"units": 2}}]
    shown = show_value(layers)
    assert shown.startswith("#") and len(shown) == 9 and shown == show_value(json.loads(json.dumps(layers)))
    assert shown != show_value(layers[:2]) and show_value([8, 16]) == "[8, 16]"  # short lists stay as they are


def test_non_finite_steps_are_counted(tmp_path):
    """Features near float32's limit overflow a linear layer's logits: the loss turns
    non-finite, the steps are counted, and the run stops as diverged."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(100, 3)) * 1e37).astype("float32")
    np.savez(tmp_path / "big.npz", x_train=x[:80], y_train=np.arange(80) % 2, x_test=x[80:], y_test=np.arange(20) % 2)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"name": "d", "data": {"name": "arrays", "path": str(tmp_path / "big.npz")},
                                 "model": {"layers": [{"norm": "vector"}, {"Dense": {"units": 2}}], "norm": "none"},
                                 "train": {"epochs": 2, "batch_size": 16, "optimizer": "sgd", "learning_rate": 1.0},
                                 "output": {"dir": str(tmp_path / "results")}}))
    r = cli("run", p, "--quiet")
    assert r.exit_code == 2, r.output
    (run_dir,) = (tmp_path / "results" / "d").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert summary["status"] == "diverged" and summary["nonfinite_steps"] == int(rows[-1]["nonfinite_steps"]) >= 1


def test_a_data_folder_setting_does_not_touch_the_bundled_tables(tmp_path):
    """$NORMBENCH_DATA_DIR (results/run_study.sh sets it) names a folder of local copies;
    the bundled tables are read from scikit-learn whatever it says."""
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"name": "t", "data": {"name": "wine"}, "model": {"arch": "mlp", "norm": "none"},
                                 "output": {"dir": str(tmp_path / "r")}}))
    r = cli("validate", p, "--no-model", env={"NORMBENCH_DATA_DIR": str(tmp_path)})
    assert r.exit_code == 0, r.output
    assert "wine: scikit-learn's bundled copy (no download)" in r.output


def test_compare_labels_inline_layer_lists_by_a_short_hash(tmp_path):
    """Two inline model.layers configs: compare's labels and verdicts name each by '#' and
    8 hex digits, not by its 100-character list."""
    from conftest import write_run
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs
    from normbench.analysis.results import show_value

    lists = [[{"Dense": {"units": u, "activation": "relu"}}, {"norm": "vector"}, {"Dense": {"units": 10, "activation": "softmax"}}]
             for u in (64, 128)]
    for i, layers in enumerate(lists):
        for seed in (0, 1):
            d = write_run(tmp_path, seed=seed, test_accuracy=0.5 + 0.1 * i + 0.01 * seed, run_id=f"l{i}-{seed}", name="own")
            raw = yaml.safe_load((d / "config.yaml").read_text())
            raw["model"] = {"layers": layers, "norm": "batch"}
            (d / "config.yaml").write_text(yaml.safe_dump(raw))
            (d / "config.json").unlink(missing_ok=True)
    comp = results.compare(load_runs([str(tmp_path)]))
    labels = sorted(r.label for r in comp.ranked)
    assert labels == sorted(f"layers={show_value(layers)}" for layers in lists)
    assert all(len(label) < 20 for label in labels)
    verdicts = [r.verdict for r in comp.ranked if r.verdict]
    assert verdicts and all(show_value(lists[0]) in v and "Dense" not in v for v in verdicts)
