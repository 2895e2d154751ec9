"""Compare tables as text: a Comparison (normbench.results.compare) -> table | markdown |
csv | json. FORMATS is the registry: name -> formatter; the CLI's --format choices come
from it, so a new format is one function and one entry here.
"""

from __future__ import annotations

import json
import math
import re

from normbench import NormbenchError
from normbench.results import NOT_GROUPED, Comparison, _show

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


def format_table(comp: Comparison) -> str:
    """aligned text for a terminal, the runs that did not complete listed below"""
    headers, rows = _cells(comp)
    xh, xrows = _excluded_cells(comp)
    parts = [*_legend(comp), "", _text_table(headers, rows)]
    if xrows:
        parts += ["", f"not averaged: {len(xrows)} run{'s' * (len(xrows) != 1)} that did not complete", _text_table(xh, xrows)]
    return "\n".join(parts) + "\n"


def format_markdown(comp: Comparison) -> str:
    """the table as Markdown, with the legend and the runs that did not complete"""
    headers, rows = _cells(comp)
    xh, xrows = _excluded_cells(comp)
    parts = [*(f"_{line}_  " for line in _legend(comp)), "", _md_table(headers, rows)]
    if xrows:
        parts += ["", f"Not averaged ({len(xrows)} run{'s' * (len(xrows) != 1)} did not complete):", "", _md_table(xh, xrows)]
    return "\n".join(parts) + "\n"


def format_csv(comp: Comparison) -> str:
    """the groups only, one numeric column per statistic"""
    return comp.groups.drop(columns="runs").to_csv(index=False, lineterminator="\n")


def format_json(comp: Comparison) -> str:
    """everything, the runs that did not complete included"""
    return json.dumps(_json(comp), indent=2, allow_nan=False) + "\n"


def format_comparison(comp: Comparison, fmt: str = "table") -> str:
    """The comparison as text in format `fmt` (a FORMATS name)."""
    if fmt not in FORMATS:
        raise NormbenchError(f"--format {fmt}: unknown format; choose one of: {', '.join(FORMATS)}")
    return FORMATS[fmt](comp)


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


# name -> formatter(Comparison) -> str; its docstring is the --format help
FORMATS = {
    "table": format_table,
    "csv": format_csv,
    "markdown": format_markdown,
    "json": format_json,
}
