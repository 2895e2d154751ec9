"""Read run folders back: compare groups of runs, plot their curves, explain the norms.

- `load_runs(paths)`      run folders (or folders searched recursively) -> [Run]
- `compare(runs, metric)` groups of runs that differ only in seed -> Comparison
- `format_comparison()`   table | csv | markdown | json text
- `plot_curves()`         accuracy and loss per epoch, mean over seeds ± 1 sample std
- `plot_vs()`             a final metric against a config parameter, one line per norm
- `explain()`             batch vs layer normalization on a small matrix, real Keras layers

Runs are grouped by their whole resolved config except `seed`, `name`, `output.*` and
`sweep.*` (the sweep recipe, not what was trained). Only runs whose summary.json says
"completed" are averaged; every other run is listed apart with its status and folder:
its summary.json status, "unfinished" (history.csv but no summary.json: running or
killed) or "not started" (config.yaml only: a queued sweep member).
Std is always the sample std (ddof=1).

pandas, scipy, matplotlib and Keras are imported inside functions, so importing this
module (and `normbench --help`) stays cheap. Nothing here imports click.
"""

from __future__ import annotations

import json
import math
import os
import re
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
FORMATS = ("table", "csv", "markdown", "json")
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
    """Group completed runs by config (minus seed/name/output/sweep) and rank the groups."""
    higher = check_metric(metric)
    import numpy as np
    import pandas as pd

    done = [r for r in runs if r.completed]
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
    if per_run.empty:
        return Comparison(metric, higher, columns, varying, pd.DataFrame(columns=out_cols), done, excluded)

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


# ----------------------------------------------------------------------------- formatting


def _f(x, digits) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pm(mean, std, digits=4) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "n/a"
    return f"{_f(mean, digits)} ± {_f(std, digits)}"


def _p(p) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


# (header, summary key, how to show it) for the human-readable formats
_SHOWN = [
    ("test acc", "test_accuracy", "pm"),
    ("last val acc", "last_val_accuracy", "pm"),
    ("best val acc", "best_val_accuracy", "pm"),
    ("best ep", "best_epoch", 1),
    ("final train loss", "final_train_loss", "pm"),
    ("s/epoch", "mean_epoch_seconds", 2),
    ("ms/step", "ms_per_step", 1),
]


def _cells(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    shown = list(_SHOWN)
    if comp.metric not in {k for _, k, _ in shown}:
        shown.insert(0, (comp.metric.replace("_", " "), comp.metric, "pm"))
    headers = ["#", *comp.columns, "n", *[h for h, _, _ in shown], f"{comp.metric} vs best", "p (Welch)"]
    rows = []
    for i, g in comp.groups.iterrows():
        cells = [str(g["rank"]), *[g[c] for c in comp.columns], str(g["n"])]
        for _, k, how in shown:
            cells.append(_pm(g[f"{k}_mean"], g[f"{k}_std"]) if how == "pm" else _f(g[f"{k}_mean"], how))
        if i == 0:
            cells += ["best", "-"]
        else:
            diff = g[f"{comp.metric}_diff_vs_best"]
            cells += ["n/a" if math.isnan(diff) else f"{diff:+.4f}", _p(g[f"{comp.metric}_p_welch"])]
        rows.append(cells)
    return headers, rows


def _legend(comp: Comparison) -> list[str]:
    n_groups = len(comp.groups)
    better = "higher" if comp.higher_is_better else "lower"
    return [
        f"{len(comp.runs)} completed run{'s' * (len(comp.runs) != 1)} in {n_groups} group{'s' * (n_groups != 1)} "
        f"(runs grouped by config except {NOT_GROUPED}); ranked by {comp.metric} ({better} is better)",
        f"values: mean ± sample std (ddof=1) over a group's runs, n/a with one run; "
        f"p: Welch's t-test of {comp.metric} against rank 1, n/a when either group has one run",
    ]


def _excluded_cells(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    headers = ["status", "model.norm", "seed", "epochs", "path", "note"]
    rows = []
    for r in comp.excluded:
        epochs = r.config.get("train.epochs", r.summary.get("epochs"))
        rows.append([r.status, _show(r.config.get("model.norm")), _show(r.config.get("seed")),
                     f"{r.epochs_completed}/{_show(epochs)}", str(r.path), r.note])
    return headers, rows


def _text_table(headers, rows) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    left = [not rows or not re.fullmatch(r"[-+<]?[\d.]+( ± ([\d.]+|n/a))?|n/a|best|-", rows[0][i]) for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.ljust(w) if lj else c.rjust(w) for c, w, lj in zip(cells, widths, left)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _md_table(headers, rows) -> str:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in [headers, *rows]]
    out = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in esc[1:]])


def format_comparison(comp: Comparison, fmt: str = "table") -> str:
    """The comparison as text: table (terminal), markdown, csv (groups only), json (all)."""
    if fmt not in FORMATS:
        raise NormbenchError(f"--format {fmt}: unknown format; choose one of: {', '.join(FORMATS)}")
    if fmt == "csv":
        return comp.groups.drop(columns="runs").to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        return json.dumps(_json(comp), indent=2, allow_nan=False) + "\n"
    headers, rows = _cells(comp)
    xh, xrows = _excluded_cells(comp)
    if fmt == "markdown":
        parts = [*(f"_{line}_  " for line in _legend(comp)), "", _md_table(headers, rows)]
        if xrows:
            parts += ["", f"Not averaged ({len(xrows)} run{'s' * (len(xrows) != 1)} did not complete):", "", _md_table(xh, xrows)]
        return "\n".join(parts) + "\n"
    parts = [*_legend(comp), "", _text_table(headers, rows)] if rows else ["no completed runs"]
    if xrows:
        parts += ["", f"not averaged: {len(xrows)} run{'s' * (len(xrows) != 1)} that did not complete", _text_table(xh, xrows)]
    return "\n".join(parts) + "\n"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # numpy scalar
        return _clean(v.item())
    return v


def _json(comp: Comparison) -> dict:
    return {
        "metric": comp.metric,
        "higher_is_better": comp.higher_is_better,
        "std": "sample std, ddof=1",
        "p": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False) against rank 1",
        "grouped_by": f"config except {NOT_GROUPED}",
        "varying": comp.varying,
        "groups": [{k: _clean(v) for k, v in g.items()} for g in comp.groups.to_dict("records")],
        "excluded": [
            {"status": r.status, "path": str(r.path), "model.norm": r.config.get("model.norm"), "seed": r.config.get("seed"),
             "epochs_completed": r.epochs_completed, "note": r.note}
            for r in comp.excluded
        ],
    }


# ----------------------------------------------------------------------------- plots


@dataclass
class PlotResult:
    path: Path
    lines: int  # groups (curves) or lines (--vs)
    runs: int  # completed runs plotted
    excluded: list[Run]
    log_x: bool = False  # --vs: the x axis is log-scaled


def _history(run: Run):
    return runfolder.history_frame(run.path, HISTORY_NEEDED)


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # Agg, without pyplot: no global state, no display needed
    return fig


def _save(fig, out) -> Path:
    out = Path(out).expanduser()
    kinds = fig.canvas.get_supported_filetypes()
    ext = out.suffix.lower().lstrip(".")
    if ext not in kinds:
        raise NormbenchError(f"-o {out}: cannot tell the image format from {'.' + ext if ext else 'no extension'}; end the name in .png, .pdf or .svg")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    except OSError as e:
        raise NormbenchError(f"-o {out}: cannot write ({e.strerror or e.__class__.__name__}); choose a writable path") from None
    return out


def _completed(runs: list[Run], what: str) -> list[Run]:
    done = [r for r in runs if r.completed]
    if not done:
        counts = {}
        for r in runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        states = ", ".join(f"{n} {s}" for s, n in counts.items())
        raise NormbenchError(f"no completed runs to {what} ({states}); finish them with normbench run --resume RUN_DIR, or pass other folders")
    return done


def _sort_key(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, _show(v))


def _colors(n):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_curves(runs: list[Run], out, title: str | None = None) -> PlotResult:
    """Accuracy and loss per epoch, one colour per group: train dashed, validation solid,
    mean over the group's runs with a shaded ± 1 sample std band."""
    import pandas as pd
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    done = _completed(runs, "plot")
    comp = compare(done, "test_accuracy")
    by_path = {str(r.path): r for r in done}
    # legend in config order (norm=batch, layer, ...; batch sizes numerically), not by rank
    order = sorted(comp.groups.index, key=lambda i: [_sort_key(by_path[comp.groups.loc[i, "runs"][0]].config.get(k))
                                                     for k in comp.varying])
    comp.groups = comp.groups.loc[order].reset_index(drop=True)
    fig = _figure(13, 5)
    ax_acc, ax_loss = fig.subplots(1, 2)
    colors = _colors(len(comp.groups))
    handles = []
    for gi, g in comp.groups.iterrows():
        hist = pd.concat([_history(by_path[p]) for p in g["runs"]], ignore_index=True)
        stats = hist.groupby("epoch").agg(["mean", "std"])
        ep = stats.index.to_numpy()
        c = colors[gi]
        for col, ax, style, alpha in (("accuracy", ax_acc, "--", 0.08), ("val_accuracy", ax_acc, "-", 0.18),
                                      ("loss", ax_loss, "--", 0.08), ("val_loss", ax_loss, "-", 0.18)):
            m, s = stats[(col, "mean")].to_numpy(), stats[(col, "std")].to_numpy()
            ax.plot(ep, m, style, color=c, marker="o", markersize=3.5, linewidth=1.8)
            if len(g["runs"]) > 1:
                ax.fill_between(ep, m - s, m + s, color=c, alpha=alpha, linewidth=0)
        handles.append(Line2D([], [], color=c, linewidth=2.5, label=f"{g['label'] or 'all runs'} (n={g['n']})"))
    handles += [
        Line2D([], [], color="0.3", linestyle="-", label="validation"),
        Line2D([], [], color="0.3", linestyle="--", label="train"),
        Patch(color="0.3", alpha=0.2, label="± 1 sample std"),
    ]
    for ax, name in ((ax_acc, "accuracy"), (ax_loss, "loss")):
        ax.set_title(name.capitalize())
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)
    fig.suptitle(title or f"Training curves: mean over seeds, band = ± 1 sample std ({len(done)} runs, {len(comp.groups)} groups)",
                 x=0.02, ha="left")  # left: a wide legend on the right must not run into it
    return PlotResult(_save(fig, out), len(comp.groups), len(done), [r for r in runs if not r.completed])


def _param_keys(runs: list[Run]) -> list[str]:
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(r.config))
    return list(keys)


def plot_vs(runs: list[Run], param: str, out, metric: str = "test_accuracy") -> PlotResult:
    """A final metric against a config parameter: one line per norm (and per other varying
    config key), mean ± 1 sample std error bars over seeds; log x for batch sizes or a
    numeric range spanning >= 8x."""
    higher = check_metric(metric)
    import numpy as np
    import pandas as pd
    from matplotlib.ticker import NullLocator

    done = _completed(runs, "plot")
    if not any(param in r.config for r in done):
        vary = varying_keys(done) or [k for k in _param_keys(done) if not _not_grouped(k)]
        raise NormbenchError(f"--vs {param}: no such config key in these runs; use a dotted key such as: {', '.join(vary)}")
    line_keys = ["model.norm"] + [k for k in varying_keys(done) if k not in ("model.norm", param)]
    rows = [{"line": _label(r, line_keys), "x": r.config.get(param), "y": r.value(metric)} for r in done]
    xs = {_canon(row["x"]): row["x"] for row in rows}
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs.values())
    if numeric:
        order = sorted(xs.values())
        pos = {_canon(v): float(v) for v in order}
        log = order[0] > 0 and (param.endswith("batch_size") or order[-1] / order[0] >= 8)
    else:
        order = sorted(xs.values(), key=_show)
        pos = {_canon(v): float(i) for i, v in enumerate(order)}
        log = False
    df = pd.DataFrame([{"line": r["line"], "x": pos[_canon(r["x"])], "y": r["y"]} for r in rows])
    if not np.isfinite(df["y"]).any():
        raise NormbenchError(f"--metric {metric}: no completed run has a value for it; pick another metric")
    lines = sorted(df["line"].unique())
    fig = _figure(8, 5)
    ax = fig.subplots()
    colors = _colors(len(lines))
    span = (max(pos.values()) - min(pos.values())) or 1.0
    for i, name in enumerate(lines):
        st = df[df.line == name].groupby("x")["y"].agg(["mean", "std", "count"]).sort_index()
        shift = (i - (len(lines) - 1) / 2) * 0.025  # dodge, so error bars do not hide each other
        x = st.index.to_numpy() * (2 ** shift if log else 1) + (0 if log else shift * (span if numeric else 4))
        ns = sorted(set(st["count"]))
        n_text = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
        ax.errorbar(x, st["mean"], yerr=st["std"].fillna(0).to_numpy(), color=colors[i], marker="o", markersize=5,
                    capsize=4, linewidth=1.8, label=f"{name} ({n_text} per point)")
    ticks = [pos[_canon(v)] for v in order]
    if log:
        ax.set_xscale("log", base=2 if all(float(v).is_integer() and int(v) & (int(v) - 1) == 0 for v in order) else 10)
    ax.set_xticks(ticks, [_show(v) for v in order])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(param + (" (log scale)" if log else ""))
    ax.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
    ax.set_title(f"{metric} vs {param}\nmean ± 1 sample std over seeds ({len(done)} completed runs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    return PlotResult(_save(fig, out), len(lines), len(done), [r for r in runs if not r.completed], log)


# ----------------------------------------------------------------------------- explain

# The tutorial's worked example is the first column (2, 5, 7); the other columns are illustrative.
TUTORIAL_MATRIX = [[2, 4, 6, 8, 10], [5, 3, 1, 9, 7], [7, 8, 2, 4, 6]]
MAX_ROWS, MAX_COLS = 12, 8
_MATRIX_HELP = 'write numbers separated by "," and rows by ";", e.g. --matrix "1,2,3;4,5,6"'


def parse_matrix(text: str) -> list[list[float]]:
    """'1,2,3;4,5,6' (or CSV lines, or a CSV file's path) -> rows of floats."""
    src = "--matrix"
    if "\n" not in text and ";" not in text and os.path.isfile(text):
        src = text
        try:
            text = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise NormbenchError(f"{src}: cannot read ({e.__class__.__name__}); pass readable CSV text") from None
    rows = []
    for i, line in enumerate((r for r in re.split(r"[;\n]", text) if r.strip()), 1):
        row = []
        for j, cell in enumerate((c for c in re.split(r"[,\s]+", line.strip()) if c), 1):
            try:
                v = float(cell)
            except ValueError:
                raise NormbenchError(f"{src}: {cell!r} (row {i}, column {j}) is not a number; {_MATRIX_HELP}") from None
            if not math.isfinite(v):
                raise NormbenchError(f"{src}: {cell!r} (row {i}, column {j}) is not a finite number; {_MATRIX_HELP}")
            row.append(v)
        rows.append(row)
    if not rows:
        raise NormbenchError(f"{src}: no numbers; {_MATRIX_HELP}")
    for i, row in enumerate(rows[1:], 2):
        if len(row) != len(rows[0]):
            raise NormbenchError(
                f"{src}: row {i} has {len(row)} value{'s' * (len(row) != 1)} but row 1 has {len(rows[0])}; "
                "give every row the same number of columns"
            )
    if len(rows) > MAX_ROWS or len(rows[0]) > MAX_COLS:
        raise NormbenchError(f"{src}: {len(rows)} x {len(rows[0])} is too big to print; use at most {MAX_ROWS} rows x {MAX_COLS} columns")
    return rows


@dataclass
class Explanation:
    x: object  # (rows, cols) float64
    tutorial: bool
    bn_eps: float
    ln_eps: float
    bn_mean: object  # per column
    bn_std: object  # per column, population std (ddof=0)
    bn_keras: object  # BatchNormalization()(x, training=True)
    bn_numpy: object
    ln_mean: object  # per row
    ln_std: object
    ln_keras: object  # LayerNormalization()(x)
    ln_numpy: object

    @property
    def bn_diff(self) -> float:
        return float(abs(self.bn_keras - self.bn_numpy).max())

    @property
    def ln_diff(self) -> float:
        return float(abs(self.ln_keras - self.ln_numpy).max())


def explain(matrix=None) -> Explanation:
    """Batch and layer normalization of a small matrix (rows = samples, columns =
    features), from the real Keras layers, checked against (x - mean) / sqrt(var + eps)."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    x = np.asarray(TUTORIAL_MATRIX if matrix is None else matrix, dtype="float64")
    if x.ndim != 2 or x.size == 0:
        raise NormbenchError(f"--matrix: expected a 2-D matrix of numbers; {_MATRIX_HELP}")
    bn = keras.layers.BatchNormalization()  # axis=-1: one mean/var per column, over the rows
    ln = keras.layers.LayerNormalization()  # axis=-1: one mean/var per row, over the columns
    x32 = x.astype("float32")
    bn_keras = keras.ops.convert_to_numpy(bn(x32, training=True)).astype("float64")
    ln_keras = keras.ops.convert_to_numpy(ln(x32)).astype("float64")
    bn_mean, bn_var = x.mean(axis=0), x.var(axis=0)
    ln_mean, ln_var = x.mean(axis=1), x.var(axis=1)
    return Explanation(
        x=x, tutorial=matrix is None, bn_eps=float(bn.epsilon), ln_eps=float(ln.epsilon),
        bn_mean=bn_mean, bn_std=np.sqrt(bn_var), bn_keras=bn_keras,
        bn_numpy=(x - bn_mean) / np.sqrt(bn_var + bn.epsilon),
        ln_mean=ln_mean, ln_std=np.sqrt(ln_var), ln_keras=ln_keras,
        ln_numpy=(x - ln_mean[:, None]) / np.sqrt(ln_var[:, None] + ln.epsilon),
    )


def _d2(v) -> str:
    v = float(v)
    return f"{0.0 if round(v, 2) == 0 else v:.2f}"


def format_explanation(e: Explanation) -> str:
    n, m = e.x.shape
    cols = [f"f{j + 1}" for j in range(m)]
    rows = [f"sample {i + 1}" for i in range(n)]
    w = max(7, *(len(_d2(v)) + 2 for v in e.x.ravel()))
    lw = max(len(r) for r in rows + ["column mean"]) + 1

    def line(name, values, width=w):
        return f"  {name:<{lw}}" + "".join(f"{s:>{width}}" for s in values)

    def matrix(a):
        return [line(rows[i], [_d2(v) for v in a[i]]) for i in range(n)]

    c0, bm, bs = e.x[:, 0], _d2(e.bn_mean[0]), _d2(e.bn_std[0])
    out = [f"Batch normalization vs layer normalization on a {n} x {m} matrix x: rows are samples (a batch), columns are features."]
    if e.tutorial:
        out.append("The tutorial's worked example is the first column, f1 = (2, 5, 7); the other columns are illustrative.")
    out += [
        "",
        "x, with the statistics each layer uses (std = population std, ddof=0, as both layers use):",
        line("", cols) + "   |" + f"{'row mean':>10}{'row std':>9}",
        *[r + "   |" + f"{_d2(e.ln_mean[i]):>10}{_d2(e.ln_std[i]):>9}" for i, r in enumerate(matrix(e.x))],
        line("column mean", [_d2(v) for v in e.bn_mean]),
        line("column std", [_d2(v) for v in e.bn_std]),
        "",
        f"Batch normalization  keras.layers.BatchNormalization()(x, training=True), epsilon = {e.bn_eps:g}:",
        "  each feature (column) across the samples in the batch: uses the column mean and std.",
        f"Layer normalization  keras.layers.LayerNormalization()(x), epsilon = {e.ln_eps:g}:",
        "  each sample (row) across its features: uses the row mean and std.",
        "Both compute (x - mean) / sqrt(std^2 + epsilon), then scale by gamma = 1 and shift by beta = 0 (their initial values).",
        "",
        f"Worked example, batch norm of column f1: mean = ({' + '.join(_d2(v) for v in c0)}) / {n} = {bm}, std = {bs}",
        *[f"  {rows[i]}: ({_d2(v)} - {bm}) / sqrt({bs}^2 + {e.bn_eps:g}) = {_d2(e.bn_keras[i, 0])}" for i, v in enumerate(c0)],
        f"Worked example, layer norm of sample 1: mean = {_d2(e.ln_mean[0])}, std = {_d2(e.ln_std[0])}",
        "  " + "  ".join(f"f{j + 1}: {_d2(e.ln_keras[0, j])}" for j in range(m)),
        "",
        "Side by side, the outputs of the Keras layers:",
    ]
    title = "  batch norm (per column, across rows)"
    bw = max(len(line("", cols)), len(title))
    out.append(f"{title:<{bw}}   |  layer norm (per row, across columns)")
    out.append(f"{line('', cols):<{bw}}   |" + "".join(f"{c:>{w}}" for c in cols))
    for b, l_ in zip(matrix(e.bn_keras), matrix(e.ln_keras)):
        out.append(f"{b:<{bw}}   |{l_[lw + 2:]}")
    ok = e.bn_diff < 1e-4 and e.ln_diff < 1e-4
    out += [
        "",
        f"Check with numpy, (x - mean) / sqrt(var + epsilon): max |Keras - numpy| = {e.bn_diff:.1e} (batch norm), "
        f"{e.ln_diff:.1e} (layer norm): {'match (within 1e-4)' if ok else 'MISMATCH (over 1e-4)'}",
        "After batch norm every column has mean 0 and std ~1; after layer norm every row does.",
        "At inference (training=False) batch norm uses its moving averages instead; layer norm computes the same either way.",
    ]
    return "\n".join(out) + "\n"
