"""normbench.core.metrics: the one table of metric facts that results, tables, stats and plots read."""

import math
import subprocess
import sys

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
