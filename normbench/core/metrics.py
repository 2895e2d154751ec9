"""The metric table: every fact about a figure normbench reads back, in one place.

One `Metric` per quantity, in `TABLE` (name -> Metric). `results` (ranking, per-group
statistics, the fallback of old runs), `tables` (the headers and digits of compare's
second block), `stats` (the unit a difference is shown in) and `plots` (the range a band
is clipped to) all read it, and `runfolder.SUMMARY_KEYS` takes a summary metric's
`description` from it. A figure computed from history.csv's rows (`compute`: a pure
function of the rows) is written by training and, for old runs whose summary.json lacks
it, computed from their history.csv when compare ranks by it: such a metric is one entry
here. A figure from elsewhere (peak memory, say) is one entry here plus the code that
writes it.

The order of `TABLE` is the order of compare's --metric choices and of the per-group
statistic columns in its CSV and JSON; `shown` orders compare's second block.

`LEVEL` is the confidence level of every interval normbench reports.

Nothing here imports TensorFlow, Keras, pandas or NumPy.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable

LEVEL = 0.95  # confidence level of every interval (compare, plot bands, seeds-until, stats defaults)
LEVEL_TEXT = f"{LEVEL * 100:g} %"  # LEVEL as help texts and messages write it: "95 %"

ACCURACY = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)


@dataclass(frozen=True)
class Metric:
    name: str  # summary.json key (source "summary") or history.csv column (source "history")
    higher_is_better: bool | None = None  # None: neither (best_epoch)
    ranked: bool = False  # a compare --metric choice (needs higher_is_better)
    stat: bool = False  # its mean and sample std are a column of every comparison
    source: str = "summary"  # "summary": a summary.json number; "history": a history.csv column
    scale: float = 1.0  # differences are shown times this (accuracies: 100)
    unit: str = ""  # ... in this unit (accuracies: "pp", percentage points)
    bounds: tuple[float, float] | None = None  # the range it cannot leave (plot bands are clipped to it)
    header: str | None = None  # its column header in compare's tables
    shown: int | None = None  # place in compare's block of other metrics (ascending); None: not there
    spread: bool = True  # that block shows mean ± std (True) or the mean alone (False)
    digits: int = 4  # decimals in that block
    fallback: str | None = None  # runs from before it was recorded use this key instead (see Run.metric)
    description: str = ""  # what it holds (docs/runfolder.md's summary.json table, through runfolder.SUMMARY_KEYS)
    # how it is computed from history.csv's rows (dicts of strings, one per epoch, in epoch
    # order: runfolder.read_history): training writes it, and runs whose summary.json lacks
    # it get it from their history.csv (Run.metric); None = not from history (test figures, times)
    compute: Callable[[list], float | int | None] | None = None

    @property
    def short(self) -> str:
        """Its name in table headers: `header`, else the name with spaces."""
        return self.header or self.name.replace("_", " ")


# ----------------------------------------------------------------------------- from history.csv rows


def _finite(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _numbers(rows: list, column: str) -> list[float]:
    return [float(r[column]) for r in rows if r.get(column) not in (None, "")]


def _best(rows: list) -> tuple:
    """(highest val_accuracy, its epoch: the earliest on ties), or (None, None)."""
    val = [(float(r["val_accuracy"]), int(r["epoch"])) for r in rows if r.get("val_accuracy") not in (None, "")]
    return max(val, key=lambda v: (v[0], -v[1])) if val else (None, None)


def _last(column: str) -> Callable:
    def last(rows: list):
        value = rows[-1].get(column) if rows else None
        return _finite(value) if value else None

    return last


def _mean_epoch_seconds(rows: list):
    return round(statistics.mean(float(r["epoch_seconds"]) for r in rows), 3) if rows else None


def _epochs_to_95(rows: list):
    best = _best(rows)[0]
    reached = [int(r["epoch"]) for r in rows if r.get("val_accuracy") not in (None, "")
               and best is not None and float(r["val_accuracy"]) >= 0.95 * best]
    return min(reached) if reached else None


def _mean_grad_norm(rows: list):
    means = _numbers(rows, "grad_norm_mean")
    return _finite(statistics.mean(means)) if means else None


def _max_grad_norm(rows: list):
    tops = _numbers(rows, "grad_norm_max")
    return _finite(max(tops)) if tops else None


# ----------------------------------------------------------------------------- the table


def _accuracy(name, **kw) -> Metric:
    return Metric(name, True, scale=100.0, unit="pp", bounds=ACCURACY, **kw)


def _loss(name, **kw) -> Metric:
    return Metric(name, False, bounds=NON_NEGATIVE, **kw)


def _time(name, unit, **kw) -> Metric:
    return Metric(name, False, unit=unit, bounds=NON_NEGATIVE, **kw)


_ENTRIES = (
    _accuracy("test_accuracy", ranked=True, stat=True, header="test acc", shown=1,
              description="test accuracy of the weights train.eval picks"),
    _loss("test_loss", ranked=True, stat=True, description="test loss of the weights train.eval picks"),
    # runs from before summary.json recorded the *_last figures: their headline figure is the
    # last epoch's when their `eval` is absent (older than train.eval) or "last", and only then
    _accuracy("test_accuracy_last", ranked=True, fallback="test_accuracy",
              description="test accuracy of the last epoch's weights"),
    _accuracy("test_accuracy_best", ranked=True, description="test accuracy of the best validation epoch's weights"),
    _loss("test_loss_last", ranked=True, fallback="test_loss", description="test loss of the last epoch's weights"),
    _loss("test_loss_best", ranked=True, description="test loss of the best validation epoch's weights"),
    _accuracy("best_val_accuracy", ranked=True, stat=True, header="best val acc", shown=3,
              description="highest val_accuracy in history.csv", compute=lambda rows: _finite(_best(rows)[0])),
    _accuracy("last_val_accuracy", ranked=True, stat=True, header="last val acc", shown=2,
              description="val_accuracy of the last epoch", compute=_last("val_accuracy")),
    Metric("best_epoch", stat=True, bounds=NON_NEGATIVE, header="best ep", shown=4, spread=False, digits=1,
           description="its epoch (the earliest on ties)", compute=lambda rows: _best(rows)[1]),
    _loss("final_train_loss", ranked=True, stat=True, header="final train loss", shown=5,
          description="loss of the last epoch", compute=_last("loss")),
    _time("mean_epoch_seconds", "s", ranked=True, stat=True, header="s/epoch", shown=6, spread=False, digits=2,
          description="mean epoch time (validation included)", compute=_mean_epoch_seconds),
    _time("ms_per_step", "ms", ranked=True, stat=True, header="ms/step", shown=7, spread=False, digits=1,
          description="median over epochs after the first of the epoch's training time (validation excluded), "
                      "divided by steps per epoch; the first epoch a process trains includes tracing and compiling "
                      "and is never timed, so a 1-epoch run such as --smoke, or a resume that trains one epoch, "
                      "reports null, shown as n/a ms/step"),
    _time("wall_seconds", "s", ranked=True, stat=True, description="wall time of the whole run in this process"),
    # speed of convergence and stability (the tutorial's claims about input scaling)
    Metric("epochs_to_95", False, ranked=True, unit="epochs", bounds=NON_NEGATIVE,
           description="the first epoch whose val_accuracy reached 95 % of the run's best_val_accuracy (speed of "
                       "convergence); null without validation accuracy", compute=_epochs_to_95),
    Metric("mean_grad_norm", False, ranked=True, bounds=NON_NEGATIVE,
           description="mean over the run's epochs of history.csv's grad_norm_mean; null when not measured (jax)",
           compute=_mean_grad_norm),
    Metric("max_grad_norm", False, ranked=True, bounds=NON_NEGATIVE,
           description="the largest grad_norm_max of the run", compute=_max_grad_norm),
    # history.csv columns (plot curves)
    _accuracy("accuracy", source="history"),
    _accuracy("val_accuracy", source="history"),
    _loss("loss", source="history"),
    _loss("val_loss", source="history"),
    Metric("grad_norm_mean", False, source="history", bounds=NON_NEGATIVE),
    Metric("grad_norm_max", False, source="history", bounds=NON_NEGATIVE),
)

TABLE: dict[str, Metric] = {m.name: m for m in _ENTRIES}

RANKED = tuple(m.name for m in _ENTRIES if m.ranked)  # compare --metric choices
STATS = tuple(m.name for m in _ENTRIES if m.stat)  # per-group statistics (mean and sample std of each)
SUMMARY = tuple(m.name for m in _ENTRIES if m.source == "summary")  # numbers read from summary.json
SHOWN = tuple(sorted((m for m in _ENTRIES if m.shown is not None), key=lambda m: m.shown))  # compare's second block


def from_history(rows: list) -> dict:
    """Every summary metric computed from history.csv's rows (`compute`), by name, in table
    order: what training writes into summary.json, and what an old run lacks."""
    return {m.name: m.compute(rows) for m in _ENTRIES if m.compute is not None}


def get(name: str) -> Metric | None:
    """The metric called `name`; None for a name the table does not know."""
    return TABLE.get(name)


def unit_of(name: str) -> tuple[float, str]:
    """(scale, unit) a metric's differences are shown in: accuracies in percentage points
    (x 100, "pp"), times in s or ms, anything else (losses, unknown names) in its own units."""
    m = TABLE.get(name)
    return (m.scale, m.unit) if m else (1.0, "")


def bounds_of(name: str) -> tuple[float, float] | None:
    """The range a quantity cannot leave (accuracies [0, 1], losses and times [0, inf));
    None when the table does not know it."""
    m = TABLE.get(name)
    return m.bounds if m else None


def interval_bounds(name: str) -> tuple[float, float] | None:
    """The range compare keeps a metric's intervals inside (stats.bounded_mean_ci for a
    group's mean, stats.bounded for a difference), or None for a t interval as it is: a
    metric bounded on both sides (`bounds` with two finite ends: the accuracies, [0, 1]).
    Losses and times, bounded below only, keep their t intervals; an unknown name too."""
    b = bounds_of(name)
    return b if b is not None and all(math.isfinite(x) for x in b) else None


# the families one Holm adjustment can cover (results.FAMILIES says each in words): each group
# against the section's best, or every pair; a study config's compare.family names one
FAMILIES = ("vs-best", "all-pairs")
