"""normbench.core.metrics: the one table of metric facts that results, tables, stats and plots read."""

import math
import subprocess
import sys

import pytest

from normbench.core import metrics


def test_orders_that_outputs_depend_on():
    # --metric choices, the CSV/JSON statistic columns and compare's second block keep their
    # order (a new entry may join them; the ones committed outputs show keep their places)
    def kept(names, old):
        return tuple(n for n in names if n in old)

    old = (
        "test_accuracy", "test_loss", "test_accuracy_last", "test_accuracy_best", "test_loss_last", "test_loss_best",
        "best_val_accuracy", "last_val_accuracy", "final_train_loss", "mean_epoch_seconds", "ms_per_step",
        "wall_seconds")
    assert kept(metrics.RANKED, old) == old
    old = ("test_accuracy", "test_loss", "best_val_accuracy", "last_val_accuracy", "best_epoch",
           "final_train_loss", "mean_epoch_seconds", "ms_per_step", "wall_seconds")
    assert kept(metrics.STATS, old) == old
    old = ("test acc", "last val acc", "best val acc", "best ep", "final train loss", "s/epoch", "ms/step")
    assert kept([m.short for m in metrics.SHOWN], old) == old


def test_every_ranked_metric_has_a_direction_and_bounds():
    for name in metrics.RANKED:
        m = metrics.TABLE[name]
        assert isinstance(m.higher_is_better, bool), name
        assert m.bounds is not None and m.source == "summary", name
    assert metrics.bounds_of("val_accuracy") == (0.0, 1.0)
    assert metrics.bounds_of("val_loss") == (0.0, math.inf)
    assert metrics.bounds_of("no_such_figure") is None
    assert metrics.unit_of("test_accuracy") == (100.0, "pp")
    assert metrics.unit_of("mean_epoch_seconds") == (1.0, "s")
    assert metrics.unit_of("ms_per_step") == (1.0, "ms")
    assert metrics.unit_of("test_loss") == (1.0, "")
    for m in metrics.TABLE.values():  # a fallback is a summary figure of the same direction
        if m.fallback:
            assert metrics.TABLE[m.fallback].higher_is_better is m.higher_is_better


def test_readers_use_the_table():
    from normbench.analysis import results, stats

    assert results.METRICS == {n: metrics.TABLE[n].higher_is_better for n in metrics.RANKED}
    assert results.LAST_FALLBACK == {"test_accuracy_last": "test_accuracy", "test_loss_last": "test_loss"}
    assert stats.mean_ci.__defaults__[0] == metrics.LEVEL
    assert metrics.bounds_of("test_loss_best") == (0.0, math.inf)


def test_import_is_light():
    code = ("import sys, normbench.core.metrics; heavy = [m for m in ('numpy', 'pandas', 'tensorflow', 'keras') "
            "if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


# ----------------------------------------------------------------------------- computed from history.csv


def _rows(*epochs):
    """history.csv rows as runfolder.read_history gives them (strings; "" = no value)."""
    keys = ("epoch", "loss", "val_accuracy", "epoch_seconds", "grad_norm_mean", "grad_norm_max")
    return [{k: ("" if v is None else str(v)) for k, v in zip(keys, e)} for e in epochs]


def test_history_metrics_are_computed_from_the_rows():
    rows = _rows((1, 2.0, 0.50, 3.0, 1.0, 4.0), (2, 1.0, 0.80, 1.0, 3.0, 9.5),
                 (3, 0.5, 0.80, 2.0, None, None), (4, 0.25, 0.76, 2.0, 2.0, 5.0))
    got = metrics.from_history(rows)
    expected = {
        "best_val_accuracy": 0.80, "last_val_accuracy": 0.76,
        "best_epoch": 2,  # the earliest of the tied epochs
        "final_train_loss": 0.25, "mean_epoch_seconds": 2.0,
        "epochs_to_95": 2,  # 0.76 >= 0.95 * 0.80 too, but epoch 2 came first
        "mean_grad_norm": 2.0, "max_grad_norm": 9.5,  # over the epochs that measured them
    }
    assert {k: got[k] for k in expected} == expected  # another entry's figure is its own test's
    assert metrics.from_history([]) == dict.fromkeys(metrics.from_history(rows))
    nan = _rows((1, "nan", "", 1.0, None, None))
    assert metrics.from_history(nan)["final_train_loss"] is None and metrics.from_history(nan)["epochs_to_95"] is None


def test_every_summary_metric_is_a_summary_key_with_its_own_description():
    from normbench.store import runfolder

    for m in metrics.TABLE.values():
        if m.source == "summary":
            assert m.description, m.name
            assert runfolder.SUMMARY_KEYS[m.name] == m.description
    # a new summary metric (one entry in metrics.py) becomes a key, before finished_at
    keys = runfolder._with_new_metrics({"status": "s", "finished_at": "t"})
    assert list(keys)[0] == "status" and list(keys)[-1] == "finished_at"
    assert [k for k in keys if k in metrics.TABLE] == list(metrics.SUMMARY)


def test_a_run_from_before_a_history_metric_gets_it_from_its_history_csv(tmp_path):
    """An old run's summary.json lacks epochs_to_95 (and the grad norms): compare ranks by
    the value its history.csv gives, as training computes it, instead of leaving it out."""
    from conftest import cli, write_run
    from normbench.analysis.runs import load_runs

    for seed in (0, 1):
        write_run(tmp_path, seed=seed, norm="batch", extra={"epochs_to_95": None, "max_grad_norm": None})
        write_run(tmp_path, seed=seed, norm="layer", curve_shift=0.6, extra={"epochs_to_95": None})
    runs = [r for r in load_runs([tmp_path]) if r.completed]
    for r in runs:
        rows = runfolder_rows(r.path)
        assert "epochs_to_95" not in r.summary
        assert r.metric("epochs_to_95") == (metrics.TABLE["epochs_to_95"].compute(rows), False)
    assert {r.config["model.norm"]: r.metric("epochs_to_95")[0] for r in runs} == {"batch": 3.0, "layer": 1.0}
    r = cli("compare", tmp_path, "--metric", "epochs_to_95", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert "left out" not in r.output


def runfolder_rows(path):
    from normbench.store import runfolder

    return runfolder.read_history(path)


def test_a_shown_metric_of_a_run_from_before_it_is_read_from_its_history_csv(tmp_path):
    """compare's second block (metrics.SHOWN) shows a history metric that an old run's
    summary.json lacks from that run's history.csv, not n/a (found adding a shown metric)."""
    import json

    from conftest import cli, write_run

    for seed in (0, 1):
        write_run(tmp_path, seed=seed, norm="batch", extra={"final_train_loss": None})
    groups = json.loads(cli("compare", tmp_path, "--format", "json").stdout)["groups"]
    losses = [float(runfolder_rows(p.parent)[-1]["loss"]) for p in sorted(tmp_path.rglob("history.csv"))]
    assert groups[0]["final_train_loss_mean"] == pytest.approx(sum(losses) / 2)


def test_the_reports_run_table_shows_a_history_metric_of_an_old_run(tmp_path):
    """report's table of runs reads the ranked metric as compare does: from history.csv
    for a run whose summary.json predates it, not n/a."""
    from conftest import cli, write_run

    for seed in (0, 1):
        write_run(tmp_path / "r", seed=seed, norm="batch", extra={"epochs_to_95": None})
        write_run(tmp_path / "r", seed=seed, norm="layer", curve_shift=0.6, extra={"epochs_to_95": None})
    out = tmp_path / "p.html"
    r = cli("report", tmp_path / "r", "--metric", "epochs_to_95", "-o", out)
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    table = text[text.index('id="all-runs"'):]
    table = table[:table.index("</table>")]
    assert "n/a" not in table
