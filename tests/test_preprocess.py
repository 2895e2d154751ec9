"""data.preprocess: fitted on the rows Keras trains on only, exact on known arrays, the
tutorial's worked example, its fingerprint in summary.json, the cache and compare's groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import cli, error_line
from normbench.build import preprocess
from normbench.schema.config import from_dict
from normbench.build.data import load_data


def test_the_tutorials_worked_example():
    """The tutorial's column 2, 5, 7: mean 4.67, std 2.05 (population), z-scores -1.30, 0.16, 1.14."""
    x = np.array([[2.0], [5.0], [7.0]])
    f = preprocess.fit_transform("zscore", x, x, fit_rows=3)
    assert round(float(f.stats["mean"][0]), 2) == 4.67 and round(float(f.stats["std"][0]), 2) == 2.05
    assert [round(float(v), 2) for v in f.x_train[:, 0]] == [-1.30, 0.16, 1.14]


def test_minmax_and_zscore_are_exact_per_feature():
    x = np.array([[0.0, 10.0, 5.0], [2.0, 30.0, 5.0], [4.0, 20.0, 5.0], [100.0, -100.0, 7.0]])
    m = preprocess.fit_transform("minmax", x, x[:1], fit_rows=3)  # the 4th row is not fitted on
    np.testing.assert_array_equal(m.x_train[:3], np.array([[0, 0, 0], [0.5, 1, 0], [1, 0.5, 0]], dtype="float32"))
    np.testing.assert_array_equal(m.x_train[3], np.array([25, -5.5, 2], dtype="float32"))  # outside [0, 1]: not fitted
    z = preprocess.fit_transform("zscore", x, x[:1], fit_rows=3)
    s = np.sqrt(8 / 3)  # population std of 0, 2, 4
    np.testing.assert_allclose(z.x_train[:3, 0], [-2 / s, 0, 2 / s], rtol=1e-6)
    np.testing.assert_allclose(z.x_train[:3, 1], [-10 / np.sqrt(200 / 3), 10 / np.sqrt(200 / 3), 0], rtol=1e-6)
    np.testing.assert_array_equal(z.x_train[:3, 2], [0, 0, 0])  # a constant feature: 0, not a division by 0
    assert z.x_train.dtype == np.float32 and z.fingerprint != m.fingerprint


def test_images_are_scaled_per_channel():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 4, 4, 3)).astype("uint8")
    x[..., 2] //= 4  # one channel on another scale
    f = preprocess.fit_transform("zscore", x, x, fit_rows=10)
    assert f.stats["mean"].shape == (3,)
    np.testing.assert_allclose(f.x_train.reshape(-1, 3).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(f.x_train.reshape(-1, 3).std(axis=0), 1, rtol=1e-5)


def _shifted(path):
    """x_train's first 8 rows (what Keras trains on at validation_split 0.2) around 0, its
    last 2 (validation) around 1,000, x_test around -500: a preprocessing fitted on any
    row but the first 8 gives other numbers."""
    x_fit = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]] * 2)
    x_val = np.array([[1000.0, 5000.0], [1001.0, 5001.0]])
    x_test = np.array([[-500.0, 0.0], [3.0, 30.0], [7.0, 70.0]])
    np.savez(path, x_train=np.concatenate([x_fit, x_val]).astype("float32"), y_train=np.arange(10) % 2,
             x_test=x_test.astype("float32"), y_test=np.arange(3) % 2)
    return x_fit, x_val, x_test


@pytest.mark.parametrize("method", ["minmax", "zscore"])
def test_validation_and_test_rows_get_the_training_rows_statistics(tmp_path, method):
    x_fit, x_val, x_test = _shifted(tmp_path / "d.npz")
    cfg = from_dict({"name": "p", "data": {"name": "arrays", "path": str(tmp_path / "d.npz"), "preprocess": method},
                     "model": {"layers": [{"Dense": {"units": 2, "activation": "softmax"}}], "norm": "none"}})
    data = load_data(cfg.data, 0, cfg.train.validation_split)
    if method == "minmax":
        lo, hi = x_fit.min(axis=0), x_fit.max(axis=0)
        want = lambda x: (x - lo) / (hi - lo)  # noqa: E731
    else:
        mu, sd = x_fit.mean(axis=0), x_fit.std(axis=0)
        want = lambda x: (x - mu) / sd  # noqa: E731
    np.testing.assert_allclose(data.x_train[:8], want(x_fit), rtol=1e-6)
    np.testing.assert_allclose(data.x_train[8:], want(x_val), rtol=1e-6)  # validation: transformed, not fitted on
    np.testing.assert_allclose(data.x_test, want(x_test), rtol=1e-6)
    assert data.x_train[8:].min() > 100  # far outside the training rows' range: nothing of them was fitted
    raw = load_data(from_dict({**yaml.safe_load(yaml.safe_dump(cfg.to_dict())),
                               "data": {"name": "arrays", "path": str(tmp_path / "d.npz")}}).data)
    assert data.fingerprint == raw.fingerprint and raw.preprocess_fingerprint == ""  # the data before preprocessing
    assert data.preprocess_fingerprint.startswith("sha256:")
    # a cache hit (the preprocessed arrays, keyed by method and split) gives the same arrays and fingerprints
    again = load_data(cfg.data, 0, cfg.train.validation_split)
    np.testing.assert_array_equal(again.x_train, data.x_train)
    assert (again.fingerprint, again.preprocess_fingerprint) == (data.fingerprint, data.preprocess_fingerprint)
    other = load_data(cfg.data, 0, 0.5)  # another split fits other rows: other statistics
    assert other.preprocess_fingerprint != data.preprocess_fingerprint


def test_token_ids_are_refused_in_one_line(tmp_path):
    from conftest import write_config

    r = cli("validate", write_config(tmp_path / "c.yaml", data__preprocess="zscore"))
    assert error_line(r) == (f"Error: {tmp_path / 'c.yaml'}: data.preprocess: synthetic_imdb holds token ids, which "
                             "zscore would turn into numbers that are no ids; use none (scale inside the model instead)")
    r = cli("validate", write_config(tmp_path / "c.yaml", data__preprocess="no_such_method"))
    assert error_line(r) == (f"Error: {tmp_path / 'c.yaml'}: data.preprocess: unknown preprocessing 'no_such_method'; "
                             f"choose one of: {', '.join(preprocess.PREPROCESS)}")


def test_runs_record_the_fitted_statistics(tmp_path):
    out = tmp_path / "results"
    raw = {"name": "g", "data": {"name": "synthetic_salary", "subset": {"train": 200, "test": 50}, "preprocess": "zscore"},
           "model": {"arch": "mlp", "norm": "none", "params": {"hidden": [4]}},
           "train": {"epochs": 1, "batch_size": 50}, "output": {"dir": str(out)}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert cli("run", p, "--quiet").exit_code == 0
    (run_dir,) = (out / "g").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["preprocess_fingerprint"].startswith("sha256:") and summary["data_fingerprint"].startswith("sha256:")
    from normbench.analysis.runs import load_runs

    (run,) = load_runs([str(out)])
    assert run.fingerprint == f"{summary['data_fingerprint']}+{summary['preprocess_fingerprint'][7:23]}"


def test_compare_groups_runs_by_the_fitted_statistics(tmp_path):
    """One config, one data file, two sets of fitted statistics (the file's training rows
    changed between runs, say): two groups, never pooled."""
    from conftest import write_run
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs

    for seed in (0, 1):
        for pre in ("sha256:" + "a" * 64, "sha256:" + "b" * 64):
            write_run(tmp_path, seed=seed, run_id=f"r-{seed}-{pre[7]}", data="cifar10", extra={"preprocess_fingerprint": pre})
    comp = results.compare(load_runs([str(tmp_path)]))
    assert sorted(len(r.group.runs) for r in comp.ranked) == [2, 2]
    assert len({r.group.fingerprint for r in comp.ranked}) == 2 and comp.split_data
