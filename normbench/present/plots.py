"""Plots of run folders (matplotlib, Agg, no pyplot; imported inside functions):

- `plot_curves()`  accuracy and loss per epoch, mean over seeds with a band
- `plot_vs()`      a final metric against a config parameter, one line per norm, error bars

Both group runs as `compare` does (config, data fingerprint, one run per seed). The band
or error bar is BANDS[band]: "ci", the 95 % t-interval of the mean (normbench.analysis.stats.mean_ci),
or "std", ± 1 sample std (ddof=1). Bands are clipped to what the quantity can be:
accuracies to [0, 1], losses and times to >= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from normbench.core.errors import ParamError, literal
from normbench.core import metrics
from normbench.store import runfolder
from normbench.core.metrics import LEVEL, LEVEL_TEXT
from normbench.analysis.runs import HISTORY_NEEDED, ROLE_KEY, Run, completed
from normbench.analysis.results import (
    canonical, label_of, not_grouped, show_value, check_metric, compare, short_fingerprint, SPLITS,
    split_shown, value_order, varying_keys,
)

# --band name -> what the band or error bar shows (legend text)
BANDS = {
    "ci": f"{LEVEL_TEXT} t-interval of the mean",
    "std": "± 1 sample std",
}


def check_band(band: str) -> None:
    if band not in BANDS:
        raise ParamError("band", band, f"unknown band; choose one of: {', '.join(BANDS)}")


def _band(values, band: str, clip=None):
    """(mean, low, high, n) of one set of values (NaN dropped); low/high NaN when there is
    no spread to show (n < 2). clip: (lowest, highest) the band is clipped to, e.g. (0, 1)
    for accuracies (a t-interval of three seeds can pass 1)."""
    from normbench.analysis import stats

    ci = stats.mean_ci(values, LEVEL)
    if band == "ci":
        low, high = ci.low, ci.high
    else:
        low, high = ci.mean - ci.sd, ci.mean + ci.sd
    if clip and not math.isnan(low):
        low, high = max(clip[0], low), min(clip[1], high)
    return ci.mean, low, high, ci.n


@dataclass
class PlotResult:
    path: Path
    lines: int  # groups (curves) or lines (--vs)
    runs: int  # completed runs plotted
    excluded: list[Run]
    log_x: bool = False  # --vs: the x axis is log-scaled
    collapsed: list = None  # (repeat of a seed, run kept), as Comparison.collapsed
    single: int = 0  # --vs: points with n = 1 (hollow, no error bar)
    diverged: int = 0  # --vs: diverged runs, drawn in a lower panel as a share of seeds
    selected: int = 0  # --vs of a tune: selected points marked on the tuning curves
    confirmed: int = 0  # --vs of a tune: confirmation points drawn beside them
    figure: object = None  # the matplotlib Figure saved to path: what was drawn, for tests to read


def _history(run: Run) -> list[tuple]:
    """The run's history.csv rows, HISTORY_NEEDED's columns as floats."""
    return runfolder.history_rows(run.path, HISTORY_NEEDED)


def _per_epoch(rows: list[tuple]) -> dict[float, list[tuple]]:
    """History rows by epoch, each epoch's rows in their order (as pandas' groupby("epoch")
    keeps them; rows without an epoch are dropped, as it drops NaN keys)."""
    out: dict[float, list[tuple]] = {}
    for row in rows:
        if not math.isnan(row[0]):
            out.setdefault(row[0], []).append(row)
    return out


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
        raise ParamError("out", out, f"cannot tell the image format from {literal('.' + ext) if ext else 'no extension'}; "
                                     "end the name in .png, .pdf or .svg")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    except OSError as e:
        raise ParamError("out", out, f"cannot write ({literal(e.strerror or e.__class__.__name__)}); choose a writable path") from None
    return out


def _colors(n):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def draw_seeds_and_mean(ax, histories: list[list[tuple]], col: str, color, band: str = "ci", label=None,
                        style: str = "-", alpha: float = 0.18, seeds: bool = True) -> None:
    """One group's history column on `ax`: each seed as a thin line (so 3 seeds read as 3
    runs, not as a band), the mean over seeds (thick, markers) and its band (BANDS[band],
    clipped to the column's bounds). `histories`: each run's _history rows."""
    import numpy as np

    i = HISTORY_NEEDED.index(col)
    if seeds and len(histories) > 1:
        for rows in histories:
            pts = sorted((row[0], row[i]) for row in rows if not math.isnan(row[0]))
            if pts:
                ax.plot(*zip(*pts), style, color=color, linewidth=0.7, alpha=0.45)
    per_epoch = _per_epoch([row for rows in histories for row in rows])
    ep = np.array(sorted(per_epoch))
    if not len(ep):
        return
    m, lo, hi, _ = np.array([_band([row[i] for row in per_epoch[e]], band, metrics.bounds_of(col)) for e in ep]).T
    ax.plot(ep, m, style, color=color, marker="o", markersize=3.5, linewidth=2.0, label=label)
    if len(histories) > 1:
        ax.fill_between(ep, lo, hi, color=color, alpha=alpha, linewidth=0)


def plot_curves(runs: list[Run], out, title: str | None = None, band: str = "ci", log_loss: bool = False,
                seeds: bool = True) -> PlotResult:
    """Accuracy and loss per epoch, one colour per group: train dashed, validation solid,
    mean over the group's runs with a shaded band (BANDS[band]; accuracy clipped to [0, 1]),
    and each seed's validation curve as a thin line (`seeds`). `log_loss`: the loss panel
    on a log scale (losses that fall by orders of magnitude, or one group far above)."""
    check_band(band)
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    completed(runs, "plot")  # "no completed runs to plot", before compare says "to compare"
    comp = compare(runs, "test_accuracy")
    by_path = {str(r.path): r for r in comp.runs}
    # legend in config order (norm=batch, layer, ...; batch sizes numerically), not by rank
    order = sorted(comp.groups.index, key=lambda i: [value_order(by_path[comp.groups.loc[i, "runs"][0]].config.get(k))
                                                     for k in comp.varying])
    comp.groups = comp.groups.loc[order].reset_index(drop=True)
    fig = _figure(13, 5)
    ax_acc, ax_loss = fig.subplots(1, 2)
    colors = _colors(len(comp.groups))
    handles = []
    for ax in (ax_acc, ax_loss):
        # no autoscaling while curves are added: matplotlib rescales the view over every curve so
        # far as each band is added (quadratic in the groups); the limits are computed once, at draw
        ax.set_autoscale_on(False)
    for gi, g in comp.groups.iterrows():
        hists = [_history(by_path[p]) for p in g["runs"]]
        c = colors[gi]
        for col, ax, style, alpha in (("accuracy", ax_acc, "--", 0.08), ("val_accuracy", ax_acc, "-", 0.18),
                                      ("loss", ax_loss, "--", 0.08), ("val_loss", ax_loss, "-", 0.18)):
            # thin per-seed lines for validation only: train's would double the lines
            draw_seeds_and_mean(ax, hists, col, c, band, style=style, alpha=alpha, seeds=seeds and col.startswith("val_"))
        handles.append(Line2D([], [], color=c, linewidth=2.5, label=f"{g['label'] or 'all runs'} (n={g['n']})"))
    for ax in (ax_acc, ax_loss):
        ax.autoscale(enable=True)
    if log_loss:
        ax_loss.set_yscale("log")
    handles += [
        *([Line2D([], [], color="0.3", linewidth=0.7, alpha=0.6, label="thin: each seed (validation)")]
          if seeds and len(comp.runs) > len(comp.groups) else []),
        Line2D([], [], color="0.3", linestyle="-", label="validation"),
        Line2D([], [], color="0.3", linestyle="--", label="train"),
        Patch(color="0.3", alpha=0.2, label=f"band: {BANDS[band]}"),
    ]
    for ax, name in ((ax_acc, "accuracy"), (ax_loss, "loss")):
        ax.set_title(name.capitalize())
        ax.set_xlabel("epoch")
        ax.set_ylabel(name + (" (log scale)" if log_loss and name == "loss" else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)
    fig.suptitle(title or f"Training curves: mean over seeds, band = {BANDS[band]} "
                          f"({len(comp.runs)} runs, {len(comp.groups)} groups)",
                 x=0.02, ha="left")  # left: a wide legend on the right must not run into it
    return PlotResult(_save(fig, out), len(comp.groups), len(comp.runs), comp.excluded, collapsed=comp.collapsed,
                      figure=fig)


def _param_keys(runs: list[Run]) -> list[str]:
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(r.config))
    return list(keys)


def _tune_parts(runs: list[Run]):
    """Runs of a `normbench tune` (role.json): (tuning runs, completed confirmation runs,
    the role info of a tuning run); (runs, [], None) when there is no tuning run."""
    tuning = [r for r in runs if r.config.get(ROLE_KEY) == "tuning"]
    if not tuning:
        return runs, [], None
    info = next((i for i in (runfolder.read_role(r.path) for r in tuning) if i), None)
    confirmation = [r for r in runs if r.config.get(ROLE_KEY) == "confirmation" and r.completed]
    return tuning, confirmation, info


def _selected_points(tuning: list[Run], info: dict, confirmation: list[Run] = ()) -> list[tuple[Run, dict]]:
    """normbench.orchestrate.tune.select over these tuning runs, as the tune chose: (a run of each
    chosen cell, its point); on a tie, the tied point with confirmation runs."""
    from normbench.orchestrate import tune

    per, grid_keys = info.get("per", "model.norm"), [k for k in info.get("grid", []) if k != "seed"]
    if not grid_keys or info.get("select") not in tune.VALIDATION_METRICS:
        return []

    def values(key):
        return sorted({canonical(r.config.get(key)): r.config.get(key) for r in tuning}.values(), key=value_order)

    spec = tune.TuneSpec(None, per, values(per), {k: values(k) for k in grid_keys},
                         info.get("tune_seeds") or sorted({r.config.get("seed") for r in tuning}), [], info["select"])
    sel = tune.select([tune.Record(r.path, r.config, tune.view_of(r.summary)) for r in tuning], spec)

    def at(rs, per_value, point):
        return [r for r in rs if canonical(r.config.get(per)) == canonical(per_value)
                and all(canonical(r.config.get(k)) == canonical(v) for k, v in point.items())]

    out = []
    for ch in sel.choices:
        if ch.cell is None:
            continue
        # of tied points, the one the tune chose is the one its confirmation runs ran at (the
        # grid order that broke the tie is the command line's, which the folders do not keep)
        cell = next((c for c in [ch.cell, *ch.ties] if at(confirmation, ch.per, c.point)), ch.cell)
        run = next(iter(at(tuning, ch.per, cell.point)), None)
        if run is not None:
            out.append((run, cell.point))
    return out


def plot_vs(runs: list[Run], param: str, out, metric: str | None = None, band: str = "ci") -> PlotResult:
    """A final metric against a config parameter: one line per norm (and per other varying
    config key), the mean over seeds with error bars (BANDS[band]); points with n = 1 are
    hollow, without a bar. Log x for batch sizes or a numeric range spanning >= 8x. A key
    with one value in all runs is an error (nothing to plot against). When runs diverged
    (loss NaN/inf), a lower panel shows each point's share of diverged seeds: diverged /
    (diverged + completed), so a learning rate where a norm breaks is seen, not dropped.
    Runs of a `normbench tune`: the lines are the tuning curves (the tuning runs only;
    metric default: the tune's --select), each norm's selected point is starred, and its
    confirmation runs (fresh seeds) are a diamond with its own error bar beside it.

    The steps: check the key (_check_vs_param), lay out the points and lines (_vs_layout),
    draw the lines (_draw_vs_lines), mark the tune's choice (_mark_selected), then the axes
    and the legend (_label_vs_axes, _vs_legend)."""
    tuning, confirmation, info = _tune_parts(runs)
    if info is not None:
        runs = tuning
    metric = metric or (info or {}).get("select") or "test_accuracy"
    higher = check_metric(metric)
    check_band(band)
    _check_vs_param(completed(runs, "plot"), param)
    comp = compare(runs, metric)  # the groups compare uses: one run per seed, data never mixed
    vs = _vs_layout(runs, comp, param, metric, band)
    fig = _figure(8, 6.5 if vs.diverged else 5)
    if vs.diverged:  # a second panel: how many seeds of each point diverged (NaN/inf loss)
        ax, dax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax, dax = fig.subplots(), None
    vs.colors = _colors(len(vs.lines))
    single = _draw_vs_lines(ax, dax, vs)
    marked = confirmed = 0
    if info is not None and param in info.get("grid", []):
        marked, confirmed = _mark_selected(ax, vs, _selected_points(tuning, info, confirmation), confirmation)
    _label_vs_axes(ax, dax, vs, higher, f"{len(comp.runs)} {'tuning runs' if info is not None else 'runs'}")
    _vs_legend(ax, vs, single, marked, confirmed, info)
    return PlotResult(_save(fig, out) if out is not None else None, len(vs.lines), len(comp.runs), comp.excluded,
                      vs.log, comp.collapsed, single,
                      sum(len(d) for _, d in vs.diverged.values()), marked, confirmed, figure=fig)


def _check_vs_param(done: list[Run], param: str) -> None:
    """`param` must be a config key of these runs that varies and that compare groups on."""
    vary = varying_keys(done)
    if not any(param in r.config for r in done):
        keys = vary or [k for k in _param_keys(done) if not not_grouped(k)]
        raise ParamError("param", param, f"no such config key in these runs; use a dotted key such as: "
                                         f"{literal(', '.join(keys))}")
    if not_grouped(param):
        what = ("the replicate key: runs that differ only in seed are one group, and their spread is the error bar"
                if param == "seed" else "not what was trained (compare pools runs over it)")
        others = f"plot against a key that varies: {', '.join(vary)}" if vary else "no config key varies between these runs"
        raise ParamError("param", param, f"{literal(param)} is {what}; {literal(others)}")
    if param not in vary:
        others = f"pick one that varies: {', '.join(vary)}" if vary else "no config key varies between these runs"
        same = show_value(done[0].config.get(param))
        raise ParamError("param", param, f"every run has {literal(param)}={literal(same)}, so there is nothing to "
                                         f"plot against; {literal(others)}")


@dataclass
class _Vs:
    """What a --vs plot draws, shared by plot_vs's steps: one row per run compare kept
    (`df`: line, x position, y), the diverged seeds, the lines and the x axis."""
    param: str
    metric: str
    band: str
    comp: object  # the Comparison the points come from
    keys: list  # the config keys that tell lines apart: model.norm, then the other varying ones
    df: object = None  # pandas DataFrame: line, x (a position), y
    diverged: dict = field(default_factory=dict)  # (line, canonical x) -> (x value, {diverged seeds})
    lines: list = field(default_factory=list)  # every line, sorted; `plotted`: those with a completed run
    plotted: set = field(default_factory=set)
    order: list = field(default_factory=list)  # the x values in axis order
    pos: dict = field(default_factory=dict)  # canonical x -> position on the axis
    numeric: bool = False
    log: bool = False
    colors: list = field(default_factory=list)  # one per line

    def line_of(self, r, fp: str | None = None) -> str:
        """A run's line: its keys' values (and data, splits when compare split them); `fp`: its
        data's short fingerprint, the run's own when None."""
        fp = short_fingerprint(r.fingerprint) if fp is None else fp
        return (label_of(r, self.keys) + (f", data={fp}" if self.comp.split_data else "")
                + "".join(f", {SPLITS[col][0]}={split_shown(col, r)}" for col in self.comp.splits))

    @property
    def span(self) -> float:
        return (max(self.pos.values()) - min(self.pos.values())) or 1.0

    def dodged(self, xv, i):
        """x positions of line i shifted sideways, so error bars do not hide each other."""
        shift = (i - (len(self.lines) - 1) / 2) * 0.025
        return xv * (2 ** shift if self.log else 1) + (0 if self.log else shift * (self.span if self.numeric else 4))


def _vs_layout(runs: list[Run], comp, param: str, metric: str, band: str) -> _Vs:
    """The points of a --vs plot (compare's runs), its diverged seeds, lines and x axis:
    numbers on a numeric (log for batch sizes or a range >= 8x) axis, anything else as
    categories in the order show_value sorts them."""
    import pandas as pd

    keys = ["model.norm"] + [k for k in varying_keys(comp.runs) if k not in ("model.norm", param)]
    vs = _Vs(param, metric, band, comp, keys)
    # from the groups themselves: the frame's cell for a run without a fingerprint is NaN
    data_of = {str(r.path): short_fingerprint(k.group.fingerprint) for k in comp.ranked for r in k.group.runs}
    rows = [{"line": vs.line_of(r, data_of[str(r.path)]), "x": r.config.get(param), "y": r.metric(metric)[0]}
            for r in comp.runs]
    vs.diverged = _diverged_seeds(runs, param, vs.line_of)
    xs = {canonical(row["x"]): row["x"] for row in rows}
    xs.update({k[1]: v for k, (v, _) in vs.diverged.items()})
    vs.numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs.values())
    if vs.numeric:
        vs.order = sorted(xs.values())
        vs.pos = {canonical(v): float(v) for v in vs.order}
        vs.log = vs.order[0] > 0 and (param.endswith("batch_size") or vs.order[-1] / vs.order[0] >= 8)
    else:
        vs.order = sorted(xs.values(), key=show_value)
        vs.pos = {canonical(v): float(i) for i, v in enumerate(vs.order)}
    vs.df = pd.DataFrame([{"line": r["line"], "x": vs.pos[canonical(r["x"])], "y": r["y"]} for r in rows])
    vs.plotted = set(vs.df["line"])  # lines with a completed run; a line whose runs all diverged has none
    vs.lines = sorted(vs.plotted | {k[0] for k in vs.diverged})
    return vs


def _draw_vs_lines(ax, dax, vs: _Vs) -> int:
    """Each line's means and error bars (hollow points where n = 1) and, on the lower panel
    `dax`, its share of diverged seeds; returns the number of points with n = 1."""
    import numpy as np

    clip = metrics.bounds_of(vs.metric)
    single = 0
    for i, name in enumerate(vs.lines):
        color = vs.colors[i]
        if dax is not None:
            _diverged_panel(dax, name, color, lambda xv, i=i: vs.dodged(xv, i), vs.pos, vs.df, vs.diverged)
        if name not in vs.plotted:
            continue  # every run of this line diverged: only the lower panel shows it
        pts = vs.df[vs.df.line == name].groupby("x")["y"]
        xv = np.array(sorted(pts.groups))
        m, lo, hi, n = np.array([_band(pts.get_group(x), vs.band, clip) for x in xv]).T
        x = vs.dodged(xv, i)
        ns = sorted({int(k) for k in n})
        n_text = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
        has_bar = ~np.isnan(lo)
        yerr = np.vstack([np.where(has_bar, m - lo, 0), np.where(has_bar, hi - m, 0)])
        ax.errorbar(x, m, yerr=yerr, color=color, marker="none", capsize=4, linewidth=1.8,
                    label=f"{name} ({n_text} per point)")
        ax.plot(x[has_bar], m[has_bar], "o", color=color, markersize=5)
        one = n == 1
        single += int(one.sum())
        ax.plot(x[one], m[one], "o", markerfacecolor="white", markeredgecolor=color, markersize=7, markeredgewidth=1.8)
    return single


def _mark_selected(ax, vs: _Vs, selected, confirmation: list[Run]) -> tuple[int, int]:
    """A tune's selected point of each line starred, and its confirmation runs (fresh
    seeds) as a diamond with its own error bar beside it: (stars, diamonds) drawn."""
    import numpy as np

    marked = confirmed = 0
    for run, point in selected:
        name, xk = vs.line_of(run), canonical(point[vs.param])
        if name not in vs.plotted or xk not in vs.pos:
            continue
        i, xp = vs.lines.index(name), vs.pos[xk]
        ys = vs.df[(vs.df.line == name) & (vs.df.x == xp)]["y"]
        ax.plot(vs.dodged(np.array([xp]), i), [ys.mean()], "*", color=vs.colors[i], markersize=17,
                markeredgecolor="black", markeredgewidth=0.8, zorder=5)
        marked += 1
        vals = [r.metric(vs.metric)[0] for r in confirmation
                if vs.line_of(r) == name and canonical(r.config.get(vs.param)) == xk]
        if vals:
            m, lo, hi, n = _band(vals, vs.band, metrics.bounds_of(vs.metric))
            xc = vs.dodged(np.array([xp]), i) * (2 ** 0.06 if vs.log else 1) + (0 if vs.log else 0.015 * vs.span)
            err = [[m - lo], [hi - m]] if not math.isnan(lo) else None
            ax.errorbar(xc, [m], yerr=err, color=vs.colors[i], marker="D", markersize=7, capsize=4,
                        markeredgecolor="black", linewidth=1.2, zorder=5)
            confirmed += 1
    return marked, confirmed


def _label_vs_axes(ax, dax, vs: _Vs, higher: bool, counted: str) -> None:
    """Ticks at the x values (a log scale of base 2 for powers of two), labels, the title."""
    from matplotlib.ticker import NullLocator

    ticks = [vs.pos[canonical(v)] for v in vs.order]
    bottom = dax if dax is not None else ax
    if vs.log:
        powers_of_two = all(float(v).is_integer() and int(v) & (int(v) - 1) == 0 for v in vs.order)
        ax.set_xscale("log", base=2 if powers_of_two else 10)
    bottom.set_xticks(ticks, [show_value(v) for v in vs.order])
    for a in (ax, dax):
        if a is not None:
            a.xaxis.set_minor_locator(NullLocator())
    bottom.set_xlabel(vs.param + (" (log scale)" if vs.log else ""))
    if dax is not None:
        dax.set_ylabel("diverged\n(share of seeds)")
        dax.set_ylim(-0.05, 1.05)
        dax.grid(alpha=0.3)
    ax.set_ylabel(f"{vs.metric} ({'higher' if higher else 'lower'} is better)")
    ax.set_title(f"{vs.metric} vs {vs.param}\nmean over seeds, error bars: {BANDS[vs.band]} ({counted})")
    ax.grid(alpha=0.3)


def _vs_legend(ax, vs: _Vs, single: int, marked: int, confirmed: int, info: dict | None) -> None:
    """The lines' legend, plus an entry for each kind of mark the plot holds."""
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    for i, name in enumerate(vs.lines):
        if name not in vs.plotted:
            handles.append(Line2D([], [], color=vs.colors[i], marker="s", label=f"{name} (every run diverged)"))
    if single:
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="0.3",
                              markersize=7, label="hollow: n = 1, no interval"))
    if marked:
        handles.append(Line2D([], [], linestyle="none", marker="*", color="0.5", markeredgecolor="black", markersize=13,
                              label=f"selected: best mean {info['select']} on the tuning seeds"))
    if confirmed:
        handles.append(Line2D([], [], linestyle="none", marker="D", color="0.5", markeredgecolor="black", markersize=7,
                              label="confirmation runs at the selected point (fresh seeds)"))
    ax.legend(handles=handles, fontsize=9, loc="best")


def _diverged_seeds(runs: list[Run], param: str, line_of) -> dict:
    """(line, canonical x) -> (x value, {diverged seeds}) for runs whose loss became NaN/inf."""
    out: dict = {}
    for r in runs:
        if r.status == "diverged" and param in r.config:
            x = r.config[param]
            out.setdefault((line_of(r), canonical(x)), (x, set()))[1].add(canonical(r.config.get("seed")))
    return out


def _diverged_panel(dax, name, color, dodged, pos, df, diverged) -> None:
    """One line's share of diverged seeds per x: diverged / (diverged + completed seeds);
    `dodged` shifts the x positions as the upper panel does."""
    import numpy as np

    done = df[df.line == name].groupby("x").size().to_dict()
    xs, share = [], []
    for key, xp in sorted(pos.items(), key=lambda kv: kv[1]):
        d = len(diverged.get((name, key), (None, ()))[1])
        total = d + done.get(xp, 0)
        if total:
            xs.append(xp)
            share.append(d / total)
    if xs:
        dax.plot(dodged(np.array(xs)), share, "s-", color=color, markersize=5, linewidth=1.2)
