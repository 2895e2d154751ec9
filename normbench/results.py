"""Read run folders back and compare groups of runs.

- `load_runs(paths)`      run folders (or folders searched recursively) -> [Run]
- `completed(runs, what)` the completed runs, or one error line when there are none
- `compare(runs, metric)` groups of runs that differ only in seed -> Comparison

Text tables of a Comparison are in `normbench.tables`, plots in `normbench.plots`,
`normbench explain` in `normbench.explain`.

Runs are grouped by their whole resolved config except `seed`, `name`, `output.*` and
`sweep.*` (the sweep recipe, not what was trained). Only runs whose summary.json says
"completed" are averaged; every other run is listed apart with its status and folder:
its summary.json status, "unfinished" (history.csv but no summary.json: running or
killed) or "not started" (config.yaml only: a queued sweep member).
Std is always the sample std (ddof=1).

pandas and scipy are imported inside functions, so importing this module (and
`normbench --help`) stays cheap. Nothing here imports TensorFlow, Keras or click.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from normbench import NormbenchError, runfolder
from normbench.config import flatten

# ranking metrics: name -> higher is better
METRICS = {
    "test_accuracy": True,
    "test_loss": False,
    "best_val_accuracy": True,
    "last_val_accuracy": True,
    "final_train_loss": False,
    "mean_epoch_seconds": False,
    "ms_per_step": False,
    "wall_seconds": False,
}
# per-group statistics (mean and sample std of each)
STATS = (
    "test_accuracy", "test_loss", "best_val_accuracy", "last_val_accuracy", "best_epoch",
    "final_train_loss", "mean_epoch_seconds", "ms_per_step", "wall_seconds",
)
HISTORY_NEEDED = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
ALWAYS_SHOWN = ("model.arch", "model.norm")  # group columns shown even when all groups share them
NOT_GROUPED = "seed, name, output.*, sweep.*"


def _not_grouped(key: str) -> bool:
    return key in ("seed", "name") or key.split(".")[0] in ("output", "sweep")


# ----------------------------------------------------------------------------- runs


@dataclass
class Run:
    path: Path
    status: str  # summary.json status, or "unfinished" when there is no summary.json
    config: dict  # the resolved config, flattened to dotted keys
    summary: dict = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def value(self, key: str) -> float:
        """A summary number as float; NaN when absent or null."""
        return _number(self.summary.get(key), key, self.path / runfolder.SUMMARY)

    @property
    def epochs_completed(self):
        if "epochs_completed" in self.summary:
            return self.summary["epochs_completed"]
        return runfolder.count_epochs(self.path)  # no summary.json: the rows in history.csv

    @property
    def note(self) -> str:
        if self.status == "not started":
            log = " (see log.txt)" if (self.path / runfolder.LOG).exists() else ""
            return f"config.yaml only: queued, or failed before training{log}"
        if not self.summary:
            return "no summary.json: still running, or killed (resume it with normbench run --resume)"
        if self.status == "interrupted":
            return "resume it with normbench run --resume"
        if self.status == "diverged":
            return "loss became NaN/inf"
        return str(self.summary.get("error") or "")


def _number(v, key, where) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise NormbenchError(f"{where}: {key} is {v!r}, not a number; the file is corrupt, rerun the run or delete its folder")
    return float(v)


def load_run(run_dir: str | Path) -> Run:
    """One run folder -> Run. Corrupt files raise NormbenchError naming the file."""
    import yaml

    d = Path(run_dir)
    cp = d / runfolder.CONFIG
    summary = runfolder.read_summary(d) or {}
    if not cp.exists():
        raise NormbenchError(f"{d}: run folder without config.yaml; restore config.yaml or delete the folder")
    try:
        raw = yaml.safe_load(cp.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise NormbenchError(f"{cp}: corrupt config.yaml ({e.__class__.__name__}); rerun that run or delete its folder") from None
    if not isinstance(raw, dict):
        raise NormbenchError(f"{cp}: corrupt config.yaml (not a mapping); rerun that run or delete its folder")
    try:  # fill in keys added to the config after this run was made (their defaults)
        from normbench.config import from_dict

        raw = from_dict(raw, str(cp)).to_dict()
    except NormbenchError:
        pass  # a config this version no longer accepts: compare it as written
    status = summary.get("status") or ("unfinished" if runfolder.has_history(d) else "not started")
    run = Run(d, status, flatten(raw), summary)
    for key in STATS:  # fail here, on the file, rather than later in the statistics
        run.value(key)
    return run


def find_run_dirs(path: str | Path) -> list[Path]:
    """Run folders at or below `path` (a run folder, a folder of runs, or a file in a run folder)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise NormbenchError(f"{path}: no such file or folder; pass a run folder or a folder that holds runs (e.g. results/)")
    if p.is_file():
        if p.name in (runfolder.SUMMARY, runfolder.CONFIG, runfolder.HISTORY, runfolder.LOG):
            return [p.parent]
        raise NormbenchError(f"{path}: is a file, not a run folder; pass a run folder or a folder that holds runs (e.g. results/)")
    found = []
    for root, dirs, files in os.walk(p):
        dirs.sort()
        if runfolder.is_run_dir(files):
            found.append(Path(root))
            dirs[:] = []  # nothing below a run folder is another run (backup/ is not)
    if not found:
        raise NormbenchError(f"{path}: no runs found (no summary.json in it or below it); pass the output.dir of normbench run, e.g. results/")
    return found


def load_runs(paths) -> list[Run]:
    """Every run under the given paths, each folder once, in path order."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise NormbenchError("no paths given; pass run folders or a folder that holds runs (e.g. results/)")
    seen, runs = set(), []
    for path in paths:
        for d in find_run_dirs(path):
            key = d.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(load_run(d))
    return runs


# ----------------------------------------------------------------------------- grouping


def _canon(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _show(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, "g") if v.is_integer() else repr(v)  # 64.0 -> 64, 0.001 -> 0.001
    return str(v)


def _group_key(run: Run) -> tuple:
    return tuple(sorted((k, _canon(v)) for k, v in run.config.items() if not _not_grouped(k)))


def varying_keys(runs: list[Run]) -> list[str]:
    """Grouped config keys whose value is not the same in all runs (config-file order)."""
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(k for k in r.config if not _not_grouped(k)))
    return [k for k in keys if len({_canon(r.config[k]) if k in r.config else "<missing>" for r in runs}) > 1]


def _short_names(keys: list[str]) -> dict[str, str]:
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _label(run: Run, keys: list[str]) -> str:
    short = _short_names(keys)
    return ", ".join(f"{short[k]}={_show(run.config.get(k))}" for k in keys)


def check_metric(metric: str) -> bool:
    """Validate a ranking metric; returns whether higher is better."""
    if metric not in METRICS:
        raise NormbenchError(f"--metric {metric}: unknown metric; choose one of: {', '.join(METRICS)}")
    return METRICS[metric]


@dataclass
class Comparison:
    metric: str
    higher_is_better: bool
    columns: list[str]  # group columns shown (model.arch, model.norm + the varying ones)
    varying: list[str]  # config keys that differ between groups
    groups: object  # pandas DataFrame, one row per group, best first
    runs: list[Run]  # completed runs that were averaged
    excluded: list[Run]  # every other run


def compare(runs: list[Run], metric: str = "test_accuracy") -> Comparison:
    """Group completed runs by config (minus seed/name/output/sweep) and rank the groups.
    NormbenchError when no run completed."""
    higher = check_metric(metric)
    import numpy as np
    import pandas as pd

    done = completed(runs, "compare")
    excluded = [r for r in runs if not r.completed]
    varying = varying_keys(done)
    columns = [k for k in ALWAYS_SHOWN if any(k in r.config for r in done) and k not in varying] + varying
    label_keys = varying or [k for k in ("model.norm",) if any(k in r.config for r in done)]
    gids: dict[tuple, int] = {}
    rows = []
    for r in done:
        gid = gids.setdefault(_group_key(r), len(gids))
        row = {"group": gid, "label": _label(r, label_keys), "path": str(r.path), "seed": r.config.get("seed")}
        row.update({k: _show(r.config.get(k)) for k in columns})
        row.update({s: r.value(s) for s in STATS})
        rows.append(row)
    per_run = pd.DataFrame(rows, columns=["group", "label", "path", "seed", *columns, *STATS])
    out_cols = ["rank", *columns, "label", "n", *[f"{s}_{a}" for s in STATS for a in ("mean", "std")],
                f"{metric}_diff_vs_best", f"{metric}_p_welch"]
    by = per_run.groupby("group", sort=False)
    stats = by[list(STATS)].agg(["mean", "std"])  # pandas std: sample std, ddof=1
    stats.columns = [f"{s}_{a}" for s, a in stats.columns]
    first = by[["label", *columns]].first()
    table = first.join(by.size().rename("n")).join(stats)
    table["runs"] = by["path"].agg(list)
    key = table[f"{metric}_mean"] * (-1 if higher else 1)
    table = table.assign(_key=key.fillna(np.inf)).sort_values(["_key", "label"], kind="stable").drop(columns="_key")

    values = {g: per_run.loc[per_run.group == g, metric].dropna().to_numpy() for g in table.index}
    best = table.index[0]
    table[f"{metric}_diff_vs_best"] = table[f"{metric}_mean"] - table.loc[best, f"{metric}_mean"]
    table[f"{metric}_p_welch"] = [_welch(values[g], values[best]) if g != best else np.nan for g in table.index]
    table.insert(0, "rank", range(1, len(table) + 1))
    table = table.reset_index(drop=True)[[*out_cols, "runs"]]
    return Comparison(metric, higher, columns, varying, table, done, excluded)


def _welch(a, b) -> float:
    """Welch's t-test p-value (unequal variances); NaN when either side has < 2 runs."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero variance on both sides -> NaN, shown as n/a
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def completed(runs: list[Run], what: str) -> list[Run]:
    """The completed runs; NormbenchError counting the others by status when there are none."""
    done = [r for r in runs if r.completed]
    if not done:
        counts = {}
        for r in runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        states = f" ({', '.join(f'{n} {s}' for s, n in counts.items())})" if counts else ""
        raise NormbenchError(f"no completed runs to {what}{states}; finish them with normbench run --resume RUN_DIR, or pass other folders")
    return done
