"""Compare tables as text: a Comparison (normbench.analysis.results.compare) -> table | markdown |
csv | json. FORMATS is the registry: name -> formatter; the CLI's --format choices come
from it, so a new format is one function and one entry here.

The human formats show, per section (model.arch on data.name): a block with the metric
(mean ± std, 95 % interval, difference from the section's best with its Welch interval,
Hedges' g, p and Holm p), a block with the other metrics (mean ± std), and one verdict
line per comparison of the section's family (compare --family), marked primary or
exploratory when the runs declare an analysis; then P(A better than B) across sections
when there are several. CSV and JSON carry the same numbers as columns.
"""

from __future__ import annotations

import json
import math
import re
import textwrap

from normbench.core.errors import ParamError
from normbench.core import metrics
from normbench.core.metrics import LEVEL
from normbench.analysis.stats import fixed
from normbench.analysis.results import FAMILIES, NOT_GROUPED, Comparison, distinct_runs, show_value


def _nan(x) -> bool:
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN, pandas NA
    except TypeError:
        return True


def _f(x, digits) -> str:
    return "n/a" if _nan(x) else fixed(x, digits)


def _pm(mean, std, digits=4) -> str:
    if _nan(mean):
        return "n/a"
    return f"{_f(mean, digits)} ± {_f(std, digits)}"


def _ci(low, high, digits=4, sign="") -> str:
    if _nan(low) or _nan(high):
        return "n/a"
    return f"[{fixed(low, digits, sign)}, {fixed(high, digits, sign)}]"


def _p(p) -> str:
    if _nan(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


_PCT = f"{LEVEL * 100:g}%"


def _short(metric: str) -> str:
    m = metrics.get(metric)
    return m.short if m else metric.replace("_", " ")


def _group_cols(comp: Comparison, sec) -> list[str]:
    """Group columns worth showing in one section: the norm, whatever varies inside the
    section, the data column when some config ran on different data, and the model_file /
    normbench column when some config ran with different model files / normbench versions."""
    keys = [c for c in comp.columns if c == "model.norm" or len(set(sec[c])) > 1]
    return keys + (["data"] if comp.split_data else []) + list(comp.splits) + (["learned"] if _flops(sec) else [])


def _flops(sec) -> bool:
    """Some group of the section did not learn (results.did_not_learn)."""
    return any(isinstance(v, str) for v in sec["did_not_learn"])


def _section_cells(comp: Comparison, sec) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    m = comp.metric
    cols = _group_cols(comp, sec)
    h1 = ["#", *cols, "n", _short(m), f"{_PCT} CI", f"vs best [{_PCT} CI]", "g", "p", "Holm p"]
    shown = [s for s in metrics.SHOWN if s.name != m]  # the second block: the other metrics
    h2 = ["#", *cols, *[s.short for s in shown]]
    r1, r2 = [], []
    for _, g in sec.iterrows():
        g = g.copy()
        g["learned"] = "no" if isinstance(g["did_not_learn"], str) else "yes"
        head = [str(g["rank"]), *[str(g[c]) for c in cols]]
        row = [*head, str(g["n"]), _pm(g[f"{m}_mean"], g[f"{m}_std"]), _ci(g[f"{m}_ci_low"], g[f"{m}_ci_high"])]
        if g["rank"] == 1:
            row += ["best" if g["learned"] == "yes" else "top (did not learn)", "-", "-", "-"]
        else:
            diff = g[f"{m}_diff"]
            d = "n/a" if _nan(diff) else f"{fixed(diff, 4, '+')} {_ci(g[f'{m}_diff_low'], g[f'{m}_diff_high'], sign='+')}"
            row += [d.replace(" n/a", ""), _f(g[f"{m}_hedges_g"], 2), _p(g[f"{m}_p_welch"]), _p(g[f"{m}_p_holm"])]
        r1.append(row)
        r2.append([*head, *[_pm(g[f"{s.name}_mean"], g[f"{s.name}_std"], s.digits) if s.spread
                            else _f(g[f"{s.name}_mean"], s.digits) for s in shown]])
    return h1, r1, h2, r2


def _sections(comp: Comparison):
    for name in comp.sections:
        yield name, comp.groups[comp.groups["section"] == name]


def _legend(comp: Comparison) -> list[str]:
    n_groups = len(comp.groups)
    better = "higher" if comp.higher_is_better else "lower"
    ns = len(comp.sections)
    return [
        f"{len(comp.runs)} completed run{'s' * (len(comp.runs) != 1)}{_distinct(comp)} in {n_groups} "
        f"group{'s' * (n_groups != 1)} "
        f"(runs grouped by config except {NOT_GROUPED}, and by data); n counts distinct seeds; "
        f"ranked by {comp.metric} ({better} is better) within {'each of ' if ns > 1 else ''}"
        f"{ns} section{'s' * (ns != 1)} (model.arch on data.name{''.join(', ' + k for k in comp.within)})",
        f"values: mean ± sample std (ddof=1); {_PCT} CI: t-interval of the mean{_bounds_text(comp)}; vs best: this "
        f"group minus the section's best, with Welch's {_PCT} interval{_bounds_text(comp, diff=True)}; g: Hedges' g; "
        f"p: Welch's t-test; Holm p: p adjusted over the section's family ({comp.family}: {FAMILIES[comp.family]}); "
        f"n/a with one seed",
        _margin_text(comp),
        _primary_text(comp),
    ]


def _distinct(comp: Comparison) -> str:
    """' (13 distinct: 7 are the same run in two groups)' when groups share runs (results.same_runs)."""
    if not comp.same:
        return ""
    verb = "is" if len(comp.same) == 1 else "are"
    return f" ({distinct_runs(comp)} distinct: {len(comp.same)} {verb} the same run in two groups)"


def _range(lo, hi) -> str:
    return f"[{lo:g}, {hi:g}]"


def _bounds_text(comp: Comparison, diff: bool = False) -> str:
    """How a bounded metric's intervals are kept in its range (stats.bounded)."""
    if comp.bounds is None:
        return ""
    lo, hi = comp.bounds
    if diff:
        return f", intersected with {_range(lo - hi, hi - lo)}"
    return f" on the logit scale of {_range(lo, hi)}, the range of {comp.metric} (delta method; inside the range)"


def _margin_text(comp: Comparison) -> str:
    if comp.margin is None:
        return ("verdicts: higher, lower or not resolved; without an equivalence margin (--margin) an interval "
                "that includes 0 is not resolved, which does not show that the groups are alike")
    scale, unit = metrics.unit_of(comp.metric)
    m = f"±{comp.margin * scale:g}{' ' + unit if unit else ''}"
    return (f"verdicts: higher, lower, equivalent within {m} or not resolved; equivalent: two one-sided tests "
            f"(TOST, Welch) at alpha {1 - LEVEL:g} each, Holm-adjusted over the family, i.e. the "
            f"{(1 - 2 * (1 - LEVEL)) * 100:g}% interval inside {m}")


def _declared_text(comp: Comparison) -> str:
    d = comp.declared
    parts = [f"{d['primary']}"]
    if "margin" in d:
        parts.append(f"margin {d['margin']:g}")
    parts.append(f"family {d.get('family', 'vs-best')}")
    return ", ".join(parts)


def _primary_text(comp: Comparison) -> str:
    if comp.primary is None:
        return ("no primary analysis declared (a study config's compare: block declares one): every verdict "
                "below is exploratory")
    if comp.primary:
        return f"primary analysis, as the study declares it ({_declared_text(comp)}): verdicts marked primary"
    return (f"the study declares its primary analysis as {_declared_text(comp)}; this one differs, so every "
            f"verdict below is exploratory")


def _section_head(comp: Comparison, name: str, sec) -> str:
    return f"{name}: {sec['n'].sum()} runs in {len(sec)} group{'s' * (len(sec) != 1)}"


def _verdicts(comp: Comparison, name: str) -> list[str]:
    """The section's verdicts, one per comparison of its family, each marked primary or
    exploratory when the runs declare a primary analysis."""
    return [f"{p.role}: {p.verdict}" if p.role else p.verdict for p in comp.pairs if p.section == name]


def _verdicts_head(comp: Comparison) -> str:
    return f"verdicts ({_PCT} intervals, {FAMILIES[comp.family]}):"


_ACROSS_HEAD = (f"across sections: P(A better than B) over the sections both ran in and their runs (ties count "
                f"one half; each section weighs the same), with a stratified bootstrap {_PCT} interval (runs "
                f"resampled within each section, 2000 replicates; Agarwal et al., NeurIPS 2021); an interval above "
                f"0.5 means A is more often better")


def _across_lines(comp: Comparison) -> list[str]:
    return [f"{a.a} better than {a.b}: P = {a.p:.2f} [{a.low:.2f}, {a.high:.2f}] ({a.sections} sections; "
            f"{a.runs_a} and {a.runs_b} runs)" for a in comp.across]


def _notes(comp: Comparison) -> list[str]:
    out = list(comp.notes)
    for dup, kept in comp.collapsed:
        out.append(f"collapsed: {dup.path} (seed {show_value(dup.config.get('seed'))} again; kept {kept.path})")
    for r in comp.left_out:
        out.append(f"left out: {r.path} (no {comp.metric})")
    return out


def _excluded_cells(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    # the keys that tell the groups apart (e.g. train.learning_rate in a learning-rate
    # sweep, where the diverged runs are the finding), then the seed
    keys = ["model.norm"] + [k for k in comp.varying if k != "model.norm"]
    headers = ["status", *keys, "seed", "epochs", "path", "note"]
    rows = []
    for r in comp.excluded:
        epochs = r.config.get("train.epochs", r.summary.get("epochs"))
        rows.append([r.status, *(show_value(r.config.get(k)) for k in keys), show_value(r.config.get("seed")),
                     f"{r.epochs_completed}/{show_value(epochs)}", str(r.path), r.note])
    return headers, rows


_NUMERIC = re.compile(r"[-+<]?[\d.]+( ± ([\d.]+|n/a))?|n/a|best|-|\[.*\]|[-+][\d.]+ \[.*\]")


def _text_table(headers, rows) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    left = [not rows or not _NUMERIC.fullmatch(rows[-1][i]) for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.ljust(w) if lj else c.rjust(w) for c, w, lj in zip(cells, widths, left)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _md_table(headers, rows) -> str:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in [headers, *rows]]
    out = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in esc[1:]])


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, width=118, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False)


def format_table(comp: Comparison) -> str:
    """aligned text for a terminal: per section the metric with intervals, the other
    metrics, a verdict per comparison; notes and runs that did not complete below"""
    parts = [_wrap(line, "") for line in _legend(comp)]
    for name, sec in _sections(comp):
        h1, r1, h2, r2 = _section_cells(comp, sec)
        parts += ["", f"== {_section_head(comp, name, sec)}", _text_table(h1, r1), "", _text_table(h2, r2)]
        verdicts = _verdicts(comp, name)
        if verdicts:
            parts += ["", _verdicts_head(comp), *(_wrap(v) for v in verdicts)]
    if comp.across:
        parts += ["", _wrap(_ACROSS_HEAD, ""), *(_wrap(v) for v in _across_lines(comp))]
    notes = _notes(comp)
    if notes:
        parts += ["", "notes:", *(_wrap(n) for n in notes)]
    xh, xrows = _excluded_cells(comp)
    if xrows:
        parts += ["", f"not averaged: {len(xrows)} run{'s' * (len(xrows) != 1)} that did not complete", _text_table(xh, xrows)]
    return "\n".join(parts) + "\n"


def format_markdown(comp: Comparison) -> str:
    """the same as Markdown: a heading, two tables and the verdicts per section"""
    parts = [*(f"_{line}_  " for line in _legend(comp))]
    for name, sec in _sections(comp):
        h1, r1, h2, r2 = _section_cells(comp, sec)
        parts += ["", f"### {_section_head(comp, name, sec)}", "", _md_table(h1, r1), "", _md_table(h2, r2)]
        verdicts = _verdicts(comp, name)
        if verdicts:
            parts += ["", f"{_verdicts_head(comp)}", "", *(f"- {v}" for v in verdicts)]
    if comp.across:
        rows = [[a.a, a.b, f"{a.p:.2f}", _ci(a.low, a.high, 2), str(a.sections), f"{a.runs_a} / {a.runs_b}"]
                for a in comp.across]
        parts += ["", f"_{_ACROSS_HEAD}_", "",
                  _md_table(["A", "B", "P(A better than B)", f"{_PCT} CI", "sections", "runs A / B"], rows)]
    notes = _notes(comp)
    if notes:
        parts += ["", "Notes:", "", *(f"- {n}" for n in notes)]
    xh, xrows = _excluded_cells(comp)
    if xrows:
        parts += ["", f"Not averaged ({len(xrows)} run{'s' * (len(xrows) != 1)} did not complete):", "", _md_table(xh, xrows)]
    return "\n".join(parts) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text) -> str:
    """Plain text as LaTeX: its special characters escaped, ± and the minus sign as math."""
    out = "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))
    out = re.sub(r"(?<![\w.])-(?=\d)", "$-$", out)  # a minus sign, not a hyphen
    return out.replace("±", r"$\pm$").replace("−", "$-$")


def format_latex(comp: Comparison) -> str:
    """LaTeX for a paper: per section a booktabs table of the metric (mean ± std, interval, vs best, g, Holm p) and its verdicts"""
    parts = [f"% normbench compare: {_tex(_legend(comp)[0])}", "% needs \\usepackage{booktabs}"]
    for name, sec in _sections(comp):
        h1, r1, _, _ = _section_cells(comp, sec)
        keep = [i for i, h in enumerate(h1) if h != "p"]  # Welch's p: the Holm-adjusted one is reported
        head, rows = [h1[i] for i in keep], [[r[i] for i in keep] for r in r1]
        cols = "".join("r" if _NUMERIC.fullmatch(rows[-1][i]) else "l" for i in range(len(head)))
        parts += ["", r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(_section_head(comp, name, sec))}: "
                  rf"{_tex(comp.metric)}, mean $\pm$ sample std over seeds, {_tex(_PCT)} intervals, each group against "
                  rf"the best (Welch; Holm-adjusted p; {_tex(FAMILIES[comp.family])}).}}",
                  rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(_tex(h) for h in head) + r" \\",
                  r"\midrule", *(" & ".join(_tex(c) for c in row) + r" \\" for row in rows), r"\bottomrule",
                  r"\end{tabular}", r"\end{table}"]
        verdicts = _verdicts(comp, name)
        if verdicts:
            parts += ["", r"\begin{itemize}", *(rf"\item {_tex(v)}" for v in verdicts), r"\end{itemize}"]
    return "\n".join(parts) + "\n"


def format_csv(comp: Comparison) -> str:
    """the groups only, one numeric column per statistic, the verdict last"""
    return comp.groups.drop(columns=["runs", "seeds", "name"]).to_csv(index=False, lineterminator="\n")


def format_json(comp: Comparison) -> str:
    """everything: groups, verdicts, notes, collapsed and excluded runs"""
    return json.dumps(_json(comp), indent=2, allow_nan=False) + "\n"


def format_comparison(comp: Comparison, fmt: str = "table") -> str:
    """The comparison as text in format `fmt` (a FORMATS name)."""
    if fmt not in FORMATS:
        raise ParamError("fmt", fmt, f"unknown format; choose one of: {', '.join(FORMATS)}")
    return FORMATS[fmt](comp)


def _clean(v):
    if isinstance(v, (list, tuple, dict, str, bool)):
        return v
    if _nan(v):
        return None
    if hasattr(v, "item"):  # numpy scalar
        return _clean(v.item())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _json(comp: Comparison) -> dict:
    m = comp.metric
    return {
        "metric": m,
        "higher_is_better": comp.higher_is_better,
        "level": LEVEL,
        "std": "sample std, ddof=1",
        "n": "distinct seeds in the group (repeated runs of a seed collapsed to the earliest finished)",
        "ci": f"{m}_ci_low/_ci_high: the interval of the mean (see interval)",
        "diff": f"{m}_diff: this group's mean minus its section's best, with Welch's interval (_diff_low/_diff_high)",
        "p": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False) against the section's best; "
             "_p_holm: Holm-adjusted over the section's comparisons",
        "paired": f"{m}_paired_*: mean per-seed difference (group minus best) when both ran the same seeds; "
                  "_paired_width_ratio < 1: pairing narrowed the interval",
        "seeds_needed": "seeds per group for a two-sided t-test (alpha 0.05) to detect the observed difference "
                        "with 80 % power",
        "grouped_by": f"config except {NOT_GROUPED}, and data fingerprint",
        "interval": (f"{m}_ci_*: t-interval of the mean on the logit scale of the metric's range "
                     f"{list(comp.bounds)} (delta method, normbench.analysis.stats.bounded_mean_ci); differences: Welch's "
                     f"interval intersected with {[comp.bounds[0] - comp.bounds[1], comp.bounds[1] - comp.bounds[0]]} "
                     "(normbench.analysis.stats.bounded)") if comp.bounds else f"{m}_ci_*: t-interval (the metric is unbounded)",
        "margin": comp.margin,
        "family": comp.family,
        "family_holds": FAMILIES[comp.family],
        "tost": (f"{m}_p_tost: two one-sided Welch tests of |difference| < margin, Holm-adjusted over the family; "
                 "call: higher / lower / equivalent / not resolved (this group against its section's best)"),
        "declared": comp.declared,
        "primary": comp.primary,
        "pairs": [
            {"section": p.section, "a": p.a.name, "b": p.b.name, "diff": _clean(p.diff.diff),
             "diff_low": _clean(p.diff.low), "diff_high": _clean(p.diff.high), "p_welch": _clean(p.diff.p),
             "p_holm": _clean(p.p_holm), "p_tost": _clean(p.p_tost), "call": p.call, "role": p.role,
             "verdict": p.verdict}
            for p in comp.pairs
        ],
        "across": [
            {"a": a.a, "b": a.b, "p_a_better": _clean(a.p), "low": _clean(a.low), "high": _clean(a.high),
             "sections": a.sections, "runs_a": a.runs_a, "runs_b": a.runs_b}
            for a in comp.across
        ],
        "across_method": _ACROSS_HEAD,
        "sections": comp.sections,
        "varying": comp.varying,
        "notes": comp.notes,
        "groups": [{k: _clean(v) for k, v in g.items() if k != "name"} for g in comp.groups.to_dict("records")],
        "collapsed": [
            {"path": str(dup.path), "seed": dup.config.get("seed"), "kept": str(kept.path)}
            for dup, kept in comp.collapsed
        ],
        "left_out": [str(r.path) for r in comp.left_out],
        "same_runs": [{"path": str(a.path), "same_as": str(b.path), "identity": a.identity} for a, b in comp.same],
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
    "latex": format_latex,
}
