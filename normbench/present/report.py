"""`normbench report`: one self-contained HTML page per study, verdict first.

- `build_report(paths, out)`  run folders -> one .html file -> ReportResult

The page is rendered from compare's own result: `results.compare` groups and ranks the
runs, `tables.format_json` turns the Comparison into its JSON object, and the page's
tables read that object (so a field compare adds, a flag or a bound, flows into the page
and into the JSON embedded at its end, `<script type="application/json" id="compare-json">`).
Sections, in order: the verdict (ranked table, verdict sentences, flags), the method
(what varied, what was held fixed, data, versions, host, the statistics, the primary
endpoint), the curves, a per-seed strip plot of the ranked metric, for a `normbench tune`
folder its tuning curves (plots.plot_vs: the selected point starred, the confirmation
runs beside it) and its budget, for several sections a cross-section summary, every run
with its status, the runs left out and why, and the commands that reproduce the study
(each run folder's command.txt, written by `sweep` and `tune`).

Self-contained: figures are inline SVG (matplotlib, text as text, no external font or
image), styles inline, no script that fetches anything; nothing in the page points
outside it (tests/test_report.py opens it in a browser that fails on any request).
The output is deterministic for the same run folders (SVG ids salted per figure, no
dates), so a committed report changes only when its runs do.

Jinja2 renders the template (normbench/present/templates/report.html.j2), autoescaped. Nothing
here imports TensorFlow, Keras or click.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from normbench.core.errors import ParamError, literal
from normbench.core.version import __version__
from normbench.core import metrics
from normbench.store import runfolder
from normbench.core.metrics import LEVEL_TEXT
from normbench.analysis.runs import ROLE_KEY, Run, load_runs, with_role

TEMPLATE = "report.html.j2"
_DECIMALS = re.compile(r"(\.\d\d)\d+")
# group fields of compare's JSON the verdict table shows in its own columns; any other
# field that is `true` (e.g. a "did not learn" flag) is shown as a flag beside the group
_KNOWN_FIELDS = {"section", "rank", "label", "n", "data", "data_fingerprint", "verdict", "seeds", "runs"}


@dataclass
class ReportResult:
    path: Path
    bytes: int
    sections: list[str]
    runs: int  # run folders read
    compared: int  # runs averaged in the comparison
    figures: int  # inline SVG figures
    tune: bool  # the folder is a normbench tune's (tuning curves shown)
    excluded: list = field(default_factory=list)


# ----------------------------------------------------------------------------- figures


def _svg(fig, salt: str) -> str:
    """A matplotlib figure as inline SVG text: no XML prolog, DOCTYPE or RDF metadata (the
    only URLs matplotlib writes), ids salted per figure so several figures share a page."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # path coordinates to 1/100 of a point (matplotlib writes 6 decimals): a third of the bytes, the same picture
    text = re.sub(r' d="([^"]*)"', lambda m: ' d="' + _DECIMALS.sub(r"\1", m.group(1)) + '"', text)
    # ids matplotlib does not salt (glyphs, markers are per-figure hashes; the style and
    # patch ids are not): prefix every id and its references with the salt
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{salt}-{m.group(1)}"', text)
    text = re.sub(r'(href|xlink:href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{salt}-{m.group(2)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{salt}-{m.group(1)})", text)
    return text


def _curves_figure(ranked, log_loss: bool = False):
    """2 x 2 panels for one section: validation accuracy and loss (top), train accuracy and
    loss (bottom); per group the mean over seeds (thick) with its 95 % band, and each seed
    as a thin line."""
    from matplotlib.ticker import MaxNLocator

    from normbench.present import plots

    fig = plots._figure(11, 7.5)
    axes = fig.subplots(2, 2, sharex=True)
    colors = plots._colors(len(ranked))
    for r, c in zip(ranked, colors):
        hists = [plots._history(run) for run in r.group.runs]
        for col, ax in (("val_accuracy", axes[0, 0]), ("val_loss", axes[0, 1]),
                        ("accuracy", axes[1, 0]), ("loss", axes[1, 1])):
            plots.draw_seeds_and_mean(ax, hists, col, c, "ci", label=f"{r.label or 'all runs'} (n={len(hists)})")
    titles = (("validation accuracy", "validation loss"), ("train accuracy", "train loss"))
    for i in range(2):
        for j in range(2):
            ax = axes[i, j]
            ax.set_title(titles[i][j])
            ax.grid(alpha=0.3)
            if j == 1 and log_loss:
                ax.set_yscale("log")
            if i == 1:
                ax.set_xlabel("epoch")
    axes[1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), fontsize=9,
               frameon=False)
    return fig


def _strip_figure(ranked, metric: str):
    """The ranked metric of every seed, one column per group in rank order, with the
    group's mean and its 95 % interval beside the points."""
    import numpy as np

    from normbench.present import plots

    fig = plots._figure(max(5.0, 1.4 * len(ranked) + 2.5), 4.2)
    ax = fig.subplots()
    colors = plots._colors(len(ranked))
    for i, (r, c) in enumerate(zip(ranked, colors)):
        vals = np.array(r.group.values, dtype=float)
        jitter = ((np.arange(len(vals)) * 0.618034) % 1 - 0.5) * 0.26  # spread, the same every time
        ax.plot(i - 0.08 + jitter, vals, "o", color=c, alpha=0.75, markersize=6,
                markeredgecolor="white", markeredgewidth=0.5)
        ci = r.ci
        if not math.isnan(ci.low):
            ax.errorbar([i + 0.25], [ci.mean], yerr=[[ci.mean - ci.low], [ci.high - ci.mean]], color=c,
                        marker="_", markersize=14, capsize=5, linewidth=2)
        else:
            ax.plot([i + 0.25], [ci.mean], "_", color=c, markersize=14)
    ax.set_xticks(range(len(ranked)), [f"{r.rank}. {r.label or 'all runs'}" for r in ranked], fontsize=9)
    ax.set_xlim(-0.6, len(ranked) - 0.4)
    better = "higher" if metrics.TABLE[metric].higher_is_better else "lower"
    ax.set_ylabel(f"{metric} ({better} is better)")
    ax.set_title(f"{metric} of each seed (dots); mean and {LEVEL_TEXT} interval (bar)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return fig


# ----------------------------------------------------------------------------- page data


def _rel(path) -> str:
    p = str(path)
    try:
        rel = os.path.relpath(p)
    except ValueError:
        return p
    return p if rel.startswith("../../") else rel


def _fmt(x, digits=4, sign="") -> str:
    from normbench.analysis.stats import fixed

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return fixed(x, digits, sign)


def _p(p) -> str:
    if p is None:
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _flags(g: dict) -> list[str]:
    """A group's flags: each field of compare's JSON that is `true` and not one the table
    shows itself ("did_not_learn" -> "did not learn"), and the items of a list field
    named *flags*."""
    out = [k.replace("_", " ") for k, v in g.items() if v is True and k not in _KNOWN_FIELDS]
    for k, v in g.items():
        if k.endswith("flags") and isinstance(v, list):
            out += [str(x) for x in v]
    return out


def _table_rows(data: dict, comp) -> dict[str, list[dict]]:
    """section -> the verdict table's rows, from compare's JSON groups."""
    m = data["metric"]
    out: dict[str, list[dict]] = {}
    for g, r in zip(data["groups"], comp.ranked):
        best = g["rank"] == 1
        diff = None if best else g.get(f"{m}_diff")
        row = {
            "rank": g["rank"], "label": g["label"] or "all runs", "n": g["n"],
            "seeds": ", ".join(str(s) for s in g.get("seeds") or []),
            "mean": f"{_fmt(g.get(f'{m}_mean'))} ± {_fmt(g.get(f'{m}_std'))}",
            "ci": f"[{_fmt(g.get(f'{m}_ci_low'))}, {_fmt(g.get(f'{m}_ci_high'))}]",
            "vs_best": "best" if best else (
                "n/a" if diff is None else
                f"{_fmt(diff, 4, '+')} [{_fmt(g.get(f'{m}_diff_low'), 4, '+')}, {_fmt(g.get(f'{m}_diff_high'), 4, '+')}]"),
            "g": "" if best else _fmt(g.get(f"{m}_hedges_g"), 2),
            "p_holm": "" if best else _p(g.get(f"{m}_p_holm")),
            "flags": _flags(g),
            "verdict": g.get("verdict"),
            "best": best,
        }
        out.setdefault(g["section"], []).append(row)
    return out


def _values(runs: list[Run], key: str) -> list:
    from normbench.analysis.results import canonical, value_order

    return sorted({canonical(r.config.get(key)): r.config.get(key) for r in runs}.values(), key=value_order)


def _method(runs: list[Run], comp, data: dict) -> dict:
    from normbench.analysis.results import not_grouped, short_fingerprint, show_value, varying_keys

    with_config = [r for r in runs if r.config]
    varying = [k for k in varying_keys(with_config) if k != ROLE_KEY]  # a tune's roles: the Tuning section's
    varied = [(k, ", ".join(show_value(v) for v in _values(with_config, k))) for k in varying]
    keys: dict[str, None] = {}
    for r in with_config:
        keys.update(dict.fromkeys(r.config))
    fixed = [(k, show_value(with_config[0].config.get(k))) for k in keys
             if k not in varying and not not_grouped(k) and k != ROLE_KEY]
    seeds = _values(with_config, "seed")
    summaries = [r.summary for r in runs if r.summary]

    def distinct(get):
        counts: dict[str, int] = {}
        for s in summaries:
            v = get(s)
            if v:
                counts[v] = counts.get(v, 0) + 1
        return sorted(counts.items(), key=lambda kv: -kv[1])

    def versions(s):
        v = s.get("versions")
        return ", ".join(f"{k} {x}" for k, x in v.items()) if isinstance(v, dict) else None

    def host(s):
        h = s.get("host")
        if not isinstance(h, dict):
            return None
        gpus = h.get("gpus") or []
        return (f"{h.get('cpu', '?')}, {h.get('cpu_count', '?')} cores, "
                f"{', '.join(map(str, gpus)) if gpus else 'no GPU'}; {h.get('platform', '?')}")

    def data_line(s):
        parts = [str(s.get("data_source") or "")]
        sizes = [f"{k[2:]} {s[k]:,}" for k in ("n_train", "n_val", "n_test") if isinstance(s.get(k), int)]
        return f"{parts[0]} ({', '.join(sizes)})" if sizes else parts[0] or None

    fps = distinct(lambda s: s.get("data_fingerprint"))
    primary = [(k, show_value(v)) for k, v in with_config[0].config.items()
               if ("primary" in k or "endpoint" in k) and v not in (None, "", [])] if with_config else []
    primary += [(k, show_value(v)) for k, v in data.items() if ("primary" in k or "endpoint" in k) and v]
    return {
        "varied": varied,
        "seeds": ", ".join(show_value(s) for s in seeds),
        "fixed": fixed,
        "data": distinct(data_line),
        "fingerprints": [(short_fingerprint(fp), fp, n) for fp, n in fps],
        "versions": distinct(versions),
        "hosts": distinct(host),
        "definitions": [(k, v) for k, v in data.items() if isinstance(v, str) and k != "metric"],
        "primary": primary,
        "metric": data["metric"],
        "higher": "higher" if data["higher_is_better"] else "lower",
    }


def _base(runs: list[Run]) -> str:
    """The folder every run is under (shown once above the runs table), or ''."""
    try:
        base = os.path.commonpath([str(r.path) for r in runs])
    except ValueError:
        return ""
    return "" if any(str(r.path) == base for r in runs) else base


def _run_rows(runs: list[Run], comp, metric: str, base: str) -> list[dict]:
    from normbench.analysis.results import show_value

    label = {id(run): r.label or "all runs" for r in comp.ranked for run in r.group.runs}
    rows = []
    for run in runs:
        v = run.metric(metric)[0] if run.summary else math.nan  # as compare ranks it (history fallback)
        epochs = run.config.get("train.epochs", run.summary.get("epochs"))
        rows.append({
            "path": os.path.relpath(run.path, base) if base else _rel(run.path), "status": run.status,
            "role": run.config.get(ROLE_KEY) or "",
            "group": label.get(id(run), ""), "seed": show_value(run.config.get("seed")),
            "value": _fmt(v), "epochs": f"{run.epochs_completed}/{show_value(epochs)}",
            "averaged": id(run) in label,
        })
    return rows


def _left_out(comp, metric: str, base: str) -> list[dict]:
    def rel(p):
        return os.path.relpath(p, base) if base else _rel(p)

    out = [{"path": rel(r.path), "status": r.status, "why": r.note or r.status} for r in comp.excluded]
    out += [{"path": rel(d.path), "status": d.status,
             "why": f"a repeat of seed {d.config.get('seed')}: the run that finished first is kept ({rel(k.path)})"}
            for d, k in comp.collapsed]
    out += [{"path": rel(r.path), "status": r.status, "why": f"no {metric} in its summary.json"} for r in comp.left_out]
    return out


def _commands(runs: list[Run], paths, out, metric, within, compared_role) -> dict:
    recorded: dict[str, int] = {}
    missing = 0
    for r in runs:
        cmd = runfolder.read_command(r.path)
        if cmd:
            recorded[cmd] = recorded.get(cmd, 0) + 1
        else:
            missing += 1
    opts = ([] if metric == "test_accuracy" else ["--metric", metric]) + [x for k in within for x in ("--within", k)]
    report = shlex.join(["normbench", "report", *map(_rel, paths), *opts, "-o", _rel(out)])
    compare = shlex.join(["normbench", "compare", *map(_rel, paths), *opts,
                          *(["--role", compared_role] if compared_role else [])])
    return {"recorded": sorted(recorded.items()), "missing": missing, "report": report, "compare": compare}


def _cross(comp, data: dict) -> dict | None:
    """Several sections: one row per group name, one column per section, each cell the
    mean [interval] and the rank there."""
    if len(comp.sections) < 2:
        return None
    m = data["metric"]
    cells: dict[str, dict[str, dict]] = {}
    for g, r in zip(data["groups"], comp.ranked):
        cells.setdefault(r.name, {})[g["section"]] = {
            "text": f"{_fmt(g.get(f'{m}_mean'))} [{_fmt(g.get(f'{m}_ci_low'))}, {_fmt(g.get(f'{m}_ci_high'))}]",
            "rank": g["rank"], "best": g["rank"] == 1}
    return {"sections": comp.sections, "rows": [(name, [row.get(s) for s in comp.sections]) for name, row in cells.items()]}


def _tune(runs: list[Run], salt: str, band: str = "std") -> dict | None:
    """A normbench tune's folder: its tuning curves (plots.plot_vs over the grid key, the
    selected point starred, its confirmation runs beside it), the budget each --per
    value got, and how the tune selected."""
    from normbench.present import plots
    from normbench.analysis.results import show_value

    tuning, confirmation, info = plots._tune_parts(runs)
    if info is None:
        return None
    per = info.get("per", "model.norm")
    figures = []
    for key in [k for k in info.get("grid", []) if k != "seed"]:
        if len({show_value(r.config.get(key)) for r in tuning if r.completed}) < 2:
            continue  # a tune still at its first grid value: no curve over the grid yet
        res = plots.plot_vs(runs, key, None, band=band)
        figures.append((key, _svg(res.figure, f"{salt}-{len(figures)}"), res.selected, res.confirmed))
    budget: dict[str, dict] = {}
    for r in tuning:
        b = budget.setdefault(show_value(r.config.get(per)), {"runs": 0, "epochs": 0, "points": set()})
        b["runs"] += 1
        b["epochs"] += int(r.epochs_completed or 0)
        b["points"].add(tuple(show_value(r.config.get(k)) for k in info.get("grid", []) if k != "seed"))
    conf: dict[str, int] = {}
    for r in confirmation:
        k = show_value(r.config.get(per))
        conf[k] = conf.get(k, 0) + 1
    lines = [f"{per}={k}: {b['runs']} tuning runs ({len(b['points'])} points × the tuning seeds), "
             f"{b['epochs']} epochs trained; {conf.get(k, 0)} confirmation runs on fresh seeds"
             for k, b in budget.items()]
    return {"per": per, "select": info.get("select"), "grid": [k for k in info.get("grid", []) if k != "seed"],
            "tune_seeds": ", ".join(map(str, info.get("tune_seeds") or [])), "figures": figures, "budget": lines,
            "band": plots.BANDS[band]}


# ----------------------------------------------------------------------------- the page


def build_report(paths, out, metric: str = "test_accuracy", within: tuple[str, ...] = (), title: str | None = None,
                 log_loss: bool = False) -> ReportResult:
    """Read the runs under `paths`, compare them (for a tune folder: its confirmation runs)
    and write one self-contained HTML page to `out`. NormbenchError for a bad output
    path (a ParamError), or when compare refuses the runs (no completed run, unknown metric)."""
    from normbench.analysis import results, tables

    out = Path(out).expanduser()
    if out.suffix.lower() not in (".html", ".htm"):
        raise ParamError("out", out, "a report is an HTML page; end the name in .html")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    runs = load_runs(paths)
    has_confirmation = any(r.config.get(ROLE_KEY) == "confirmation" for r in runs)
    compared_role = "confirmation" if has_confirmation else None
    compared = with_role(runs, compared_role)
    comp = results.compare(compared, metric, tuple(within))
    data = json.loads(tables.format_json(comp))
    rows = _table_rows(data, comp)
    salt = "nb" + re.sub(r"[^a-z0-9]", "", out.stem.lower())[:12]
    sections = []
    figures = 0
    for i, name in enumerate(comp.sections):
        ranked = [r for r in comp.ranked if r.section == name]
        curves = _svg(_curves_figure(ranked, log_loss), f"{salt}-c{i}")
        strip = _svg(_strip_figure(ranked, metric), f"{salt}-s{i}")
        figures += 2
        sections.append({
            "name": name, "rows": rows[name], "runs": sum(len(r.group.runs) for r in ranked),
            "verdicts": [r["verdict"] for r in rows[name] if r["verdict"]],
            "flags": any(r["flags"] for r in rows[name]),
            "curves": curves, "strip": strip,
        })
    tune = _tune(runs, f"{salt}-t")
    if tune:
        figures += len(tune["figures"])
    names = sorted({str(r.summary.get("name") or r.config.get("name") or "") for r in runs} - {""})
    base = _base(runs)
    env = _environment()
    page = env.get_template(TEMPLATE).render(
        title=title or f"normbench study: {', '.join(names) or ', '.join(map(str, paths))}",
        version=__version__, level=LEVEL_TEXT, metric=metric, data=data, sections=sections,
        higher="higher" if data["higher_is_better"] else "lower",
        notes=data.get("notes") or [], method=_method(runs, comp, data), tune=tune, cross=_cross(comp, data),
        runs=_run_rows(runs, comp, metric, base), base=_rel(base) if base else "", left_out=_left_out(comp, metric, base),
        commands=_commands(runs, paths, out, metric, within, compared_role), compared_role=compared_role,
        n_runs=len(runs), n_compared=len(comp.runs),
        compare_json=json.dumps(data, indent=1, allow_nan=False).replace("</", "<\\/"),
    )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        from normbench.core.atomic import write_atomic

        write_atomic(out, page)
    except OSError as e:
        raise ParamError("out", out, f"cannot write ({literal(e.strerror or e.__class__.__name__)}); choose a writable path") from None
    return ReportResult(out, len(page.encode("utf-8")), comp.sections, len(runs), len(comp.runs), figures,
                        tune is not None, comp.excluded)


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
