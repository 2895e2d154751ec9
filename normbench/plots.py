"""Plots of run folders (matplotlib, Agg, no pyplot; imported inside functions):

- `plot_curves()`  accuracy and loss per epoch, mean over seeds ± 1 sample std
- `plot_vs()`      a final metric against a config parameter, one line per norm
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from normbench import NormbenchError, runfolder
from normbench.results import (
    HISTORY_NEEDED, Run, _canon, _label, _not_grouped, _show, check_metric, compare, completed, varying_keys,
)


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

    done = completed(runs, "plot")
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

    done = completed(runs, "plot")
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
