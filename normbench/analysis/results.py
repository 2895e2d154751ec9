"""Group runs and rank the groups.

- `compare(runs, metric)` groups of runs that differ only in seed -> Comparison

Reading run folders (`Run`, `load_runs`, `load_run`, `find_run_dirs`, `with_role`,
`completed`) is `normbench.analysis.runs`'; import them from there. Text tables of
a Comparison are in `normbench.analysis.tables`, plots in `normbench.present.plots`, `normbench explain`
in `normbench.analysis.explain`; every statistic comes from `normbench.analysis.stats`, every fact about a
metric (direction, unit, bounds) from `normbench.core.metrics`.

Grouping. Runs are grouped by their whole resolved config except `seed`, `name`,
`output.*` and `sweep.*` (the sweep recipe, not what was trained), and by the data they
trained on (summary.json's `data_fingerprint`): runs whose fingerprints differ never
share a group (except on synthetic data sets, generated from each run's seed, whose
fingerprint differs per seed by design). Runs from before fingerprints were recorded join the group of their
config when that group's fingerprinted runs all share one fingerprint (a note says so);
otherwise they form a group of their own (data "unknown"). A group's n counts distinct
seeds: repeated completed runs of one seed (same config, same data) are collapsed to
the earliest finished, and the others are listed in `Comparison.collapsed`.

Ranking. Groups are ranked within sections, one per (model.arch, data.name): groups of
different models or data sets are never compared. In each section the best group (by the
metric's mean) is compared with every other group: Welch's difference and interval,
Hedges' g, Welch's p, Holm's adjustment over the section's comparisons, the paired-by-seed
difference when both groups ran the same seeds, the seeds per group a difference this size
would need, and a verdict in words.

Only runs whose summary.json says "completed" are averaged; every other run (its status,
or "corrupt", "unreadable", "unfinished", "not started": see normbench.analysis.runs) is listed
apart with its status and folder. Std is always the sample std (ddof=1).

pandas and scipy are imported inside functions, so importing this module (and
`normbench --help`) stays cheap. Nothing here imports TensorFlow, Keras or click.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field

from normbench.core.errors import NormbenchError, ParamError, literal
from normbench.core import metrics
from normbench.core.metrics import LEVEL, STATS  # the level of every interval; per-group statistics
from normbench.analysis.runs import Run, completed

# ranking metrics: name -> higher is better (the facts about each are in normbench.core.metrics)
METRICS = {name: metrics.TABLE[name].higher_is_better for name in metrics.RANKED}
# Runs from before summary.json recorded the *_last figures: their headline figure is the
# last epoch's when their `eval` is absent (older than train.eval) or "last", and only then.
LAST_FALLBACK = {m.name: m.fallback for m in metrics.TABLE.values() if m.fallback}
EVAL_KEY = "train.eval"  # which weights test_* reports; test_*_last/_best are the same whatever it says
ALWAYS_SHOWN = ("model.arch", "model.norm")  # group columns shown even when all groups share them
SECTION_KEYS = ("model.arch", "data.name")  # groups are ranked only against groups of the same section
NOT_GROUPED = "seed, name, output.*, sweep.*, compare.*"
# compare --family: which comparisons one Holm adjustment covers (name -> what it holds)
FAMILIES = {  # stats.FAMILIES, in words
    "vs-best": "each group against its section's best",
    "all-pairs": "every pair of groups in the section",
}
DEFAULT_FAMILY = "vs-best"


def not_grouped(key: str) -> bool:
    """Config keys compare pools over (seed, name, output.*, sweep.*, compare.*), never groups on."""
    return key in ("seed", "name") or key.split(".")[0] in ("output", "sweep", "compare")


# ----------------------------------------------------------------------------- grouping


def canonical(v) -> str:
    """A value as a hashable, comparable key (JSON text; 1 and 1.0 and True stay apart)."""
    if v is None or isinstance(v, (str, int, float)):
        return _canon_scalar(v)
    return json.dumps(v, sort_keys=True, default=str)


@functools.lru_cache(maxsize=65536, typed=True)  # typed: 1, 1.0 and True are three keys
def _canon_scalar(v) -> str:
    return json.dumps(v, default=str)


def show_value(v) -> str:
    """A config value as tables, labels and sections show it: null, true, 64 (not 64.0), 0.001."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, "g") if v.is_integer() else repr(v)  # 64.0 -> 64, 0.001 -> 0.001
    if isinstance(v, (list, dict)) and len(text := canonical(v)) > COMPACT:  # an inline model.layers list, say
        import hashlib

        return "#" + hashlib.sha256(text.encode()).hexdigest()[:8]  # stable: the same list, the same label
    return str(v)


COMPACT = 40  # a list or mapping value longer than this (as JSON) is shown as '#' and a short hash of it


# Facts of summary.json that tell apart runs of one config, so they never share a group:
# a user's model file can change under one config (its sha256), and normbench's own code
# can change what a config trains (0.2.0's fused batch norm; versions.normbench). Column
# name -> (label word, the run's raw value or None, how the column shows it). A column is
# shown only where some config ran with two values of it (Comparison.splits).
def _normbench_version(run: Run) -> str | None:
    return (run.summary.get("versions") or {}).get("normbench")


SPLITS = {
    "model_file": ("model", lambda run: run.summary.get("model_sha256"), lambda v: short_model(v)),
    "normbench": ("normbench", _normbench_version, lambda v: v or "?"),
}


def split_shown(col: str, run: Run) -> str:
    """A run's value of a SPLITS column as tables, labels and plot lines show it."""
    _, get, show = SPLITS[col]
    return show(get(run))


def _group_key(run: Run) -> tuple:
    facts = tuple((f"<{col}>", canonical(v)) for col, (_, get, _) in SPLITS.items() if (v := get(run)))
    config = run.config
    return tuple((k, canonical(config[k])) for k in _grouped_sorted(tuple(config))) + facts


@functools.lru_cache(maxsize=256)
def _grouped_sorted(keys: tuple) -> tuple:
    """The grouped ones of these config keys, sorted (runs of a sweep share one key order:
    sorted once, not once per run)."""
    return tuple(sorted(k for k in keys if not not_grouped(k)))


def varying_keys(runs: list[Run]) -> list[str]:
    """Grouped config keys whose value is not the same in all runs (config-file order)."""
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(k for k in r.config if not not_grouped(k)))
    return [k for k in keys if len({canonical(r.config[k]) if k in r.config else "<missing>" for r in runs}) > 1]


def _varying_between(groups: list[Group]) -> list[str]:
    """varying_keys of the groups' runs, from each group's first run: the runs of a group
    share every grouped key and its value (_group_key), so the others add no key and no
    value (1,000 groups, not 10,000 runs)."""
    return varying_keys([g.first for g in groups])


def short_names(keys: list[str]) -> dict[str, str]:
    """key -> its last part ('model.norm' -> 'norm'), the whole key where last parts clash."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def label_of(run: Run, keys: list[str]) -> str:
    """A run's group label from `keys`: 'norm=batch, batch_size=64'."""
    short = short_names(keys)
    return ", ".join(f"{short[k]}={show_value(run.config.get(k))}" for k in keys)


def check_metric(metric: str) -> bool:
    """Validate a ranking metric; returns whether higher is better."""
    if metric not in METRICS:
        raise ParamError("metric", metric, f"unknown metric; choose one of: {', '.join(METRICS)}")
    return METRICS[metric]


def short_fingerprint(fp: str | None) -> str:
    """'sha256:0123abcd...' -> '0123abcd'; None -> 'unknown'."""
    if not fp:
        return "unknown"
    return fp.split(":", 1)[-1][:8]


def section_of(run: Run, within: tuple[str, ...] = ()) -> str:
    """The section a run is ranked in: '<model.arch> on <data.name>', then ', key=value'
    for each `within` key (compare --within: e.g. one section per learning rate)."""
    arch, data = (show_value(run.config.get(k)) for k in SECTION_KEYS)
    if run.config.get("model.arch") is None:  # a user's model: the file it came from
        layers = run.config.get("model.layers")
        arch = show_value(run.config.get("model.from") or (layers if isinstance(layers, str) else "model.layers"))
    return f"{arch} on {data}" + "".join(f", {k}={show_value(run.config.get(k))}" for k in within)


def value_order(v) -> tuple:
    """Sort key for config values: numbers in numeric order (2, 4, ..., 64, not 16, 2, ...),
    then everything else by its shown text."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, show_value(v))


def _section_order(run: Run, within: tuple[str, ...]) -> tuple:
    """Sections in numeric order of their `within` values."""
    return (tuple(show_value(run.config.get(k)) for k in SECTION_KEYS), tuple(value_order(run.config.get(k)) for k in within))


def check_within(runs: list[Run], within: tuple[str, ...]) -> None:
    """`within` keys must be config keys of these runs, and not ones compare never groups on."""
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(r.config))
    for k in within:
        if not_grouped(k) or k in SECTION_KEYS:
            raise ParamError("within", k, f"{literal(k)} never separates groups (seeds, names and outputs are pooled; "
                                          f"{' and '.join(SECTION_KEYS)} already make sections); name a config key that varies")
        if k not in keys:
            vary = varying_keys([r for r in runs if r.completed])
            hint = f"keys that vary here: {literal(', '.join(vary))}" if vary else "use a dotted config key such as train.batch_size"
            raise ParamError("within", k, f"no such config key in these runs; {hint}")


@dataclass
class Group:
    """Completed runs that differ only in seed, one run per seed, on one data set."""

    runs: list[Run]  # one per seed, in path order
    values: list[float]  # the metric of each run, in the same order
    fingerprint: str | None  # their data fingerprint; None: from before fingerprints, or data generated per seed
    split: bool = False  # its config ran on several data sets: the group is named by its data

    @property
    def first(self) -> Run:
        return self.runs[0]

    def shown(self, col: str) -> str:
        """The group's value of a SPLITS column as tables show it (its runs share it)."""
        return split_shown(col, self.first)

    @property
    def by_seed(self) -> dict:
        """seed -> the metric of that seed's run (for the paired difference)."""
        return {r.config.get("seed"): v for r, v in zip(self.runs, self.values)}


@dataclass
class Ranked:
    """A group's place in its section and, below the best, its comparison with the best:
    each difference is computed once, as this group minus the best."""

    group: Group
    section: str
    label: str  # e.g. 'norm=batch' (plot legends, the table's label column)
    name: str  # e.g. 'batch' (verdicts)
    rank: int = 0  # 1 = the section's best
    diff: object = None  # stats.Diff: this group minus the best (Welch); None for the best
    paired: object = None  # stats.PairedDiff by seed, or None (the best, or no shared seeds)
    p_holm: float = math.nan  # Welch's p (paired, where groups share runs) Holm-adjusted over the section
    verdict: str | None = None  # the comparison in words (stats.verdict); None for the best
    ci: object = None  # stats.Interval: the group's mean and its interval (bounded for a bounded metric)
    p_tost: float = math.nan  # with a margin: TOST p against the best, Holm-adjusted over the family
    call: str | None = None  # stats.CALLS: this group against the best (higher / lower / equivalent / not resolved)
    did_not_learn: str | None = None  # why the group did not learn (did_not_learn()); None: it learned
    # [(this group's run, the best's run)] with one identity (normbench.store.identity): the same
    # run in two folders. Then the comparison is paired over the shared seeds (`paired`).
    same: list = field(default_factory=list)


@dataclass
class Pair:
    """One comparison of the section's family: a minus b (a ranked above b)."""

    section: str
    a: Ranked
    b: Ranked
    diff: object  # stats.Diff of a - b (bounded for a bounded metric)
    paired: object  # stats.PairedDiff or None
    p_holm: float  # Welch's p Holm-adjusted over the section's family
    p_tost: float  # TOST p Holm-adjusted over the family (NaN without a margin)
    call: str  # stats.CALLS
    verdict: str
    role: str | None = None  # "primary", "exploratory", or None (no analysis declared)
    same: list = field(default_factory=list)  # [(run of a, run of b)] of one identity: paired over shared seeds


@dataclass
class Across:
    """P(A better than B) over the sections both ran in (stats.improvement_interval)."""

    a: str
    b: str
    p: float
    low: float
    high: float
    sections: int  # tasks with runs of both
    runs_a: int
    runs_b: int


@dataclass
class Comparison:
    metric: str
    higher_is_better: bool
    columns: list[str]  # group columns shown (model.arch, model.norm + the varying ones)
    varying: list[str]  # config keys that differ between groups
    groups: object  # pandas DataFrame, one row per group, by section then rank (best first)
    runs: list[Run]  # completed runs that were averaged (one per seed and group)
    excluded: list[Run]  # runs that did not complete (or cannot be read)
    collapsed: list[tuple[Run, Run]] = field(default_factory=list)  # (repeat of a seed, the run kept)
    left_out: list[Run] = field(default_factory=list)  # completed, but no value for the metric
    notes: list[str] = field(default_factory=list)  # what the reader must know about the grouping
    sections: list[str] = field(default_factory=list)  # section names, in the table's order
    split_data: bool = False  # some config ran on different data: groups show a data column
    within: tuple = ()  # compare --within: config keys that split sections further
    ranked: list[Ranked] = field(default_factory=list)  # the groups as dataclasses, in the table's row order
    splits: tuple = ()  # SPLITS columns some config ran with two values of: groups show those columns
    same: list = field(default_factory=list)  # [(run, run)] of one identity in two groups: each one run, not two
    margin: float | None = None  # equivalence margin in the metric's units (compare --margin / compare.margin)
    family: str = DEFAULT_FAMILY  # FAMILIES: the comparisons one Holm adjustment covers
    pairs: list = field(default_factory=list)  # Pair: every comparison of every section's family, in order
    declared: dict = field(default_factory=dict)  # the runs' compare.* block (primary, margin, family); {} if none
    primary: bool | None = None  # True: this is the declared primary analysis; False: exploratory; None: none declared
    across: list = field(default_factory=list)  # Across: P(A better than B) over sections, when there are several
    bounds: tuple | None = None  # the metric's range (metrics.bounds_of); its intervals are intersected with it


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def compare(runs: list[Run], metric: str = "test_accuracy", within: tuple[str, ...] = (),
            margin: float | None = None, family: str | None = None, study: dict | None = None) -> Comparison:
    """Group completed runs by config (minus seed/name/output/sweep/compare) and data
    fingerprint, one run per seed, and rank the groups within each (model.arch, data.name)
    section with intervals, effect sizes and a verdict per comparison of the section's
    family (FAMILIES: each group against the best, or every pair), Holm-adjusted over it.
    `within`: config keys that split sections further (one section per learning rate,
    say), so each value's norms are ranked against each other only.
    `margin` (the metric's units): each verdict also tests equivalence within ±margin
    (stats.tost_p). `margin` and `family` default to the runs' declared analysis
    (their config's compare: block, declared(); or `study`, the block of a study config,
    for runs made before they carried one), else no margin and vs-best.
    Groups that did not learn (did_not_learn) are ranked after those that did, never best.
    With several sections, `across` holds P(A better than B) for each pair of group
    names found in at least two sections.
    NormbenchError when no run completed, or none has a value for the metric.
    The steps: group (measured, group_runs, collapse_seeds), settle the analysis
    (_analysis), rank each section (_rank_sections), note what the reader must know."""
    higher = check_metric(metric)
    if margin is not None:
        check_margin(margin)
    if family is not None:
        check_family(family)
    within = tuple(dict.fromkeys(within))
    check_within(runs, within)
    notes: list[str] = []
    use, left_out, value = measured(runs, metric, notes)
    groups, collapsed = collapse_seeds(group_runs(use, notes), value, notes)
    kept_runs = [r for g in groups for r in g.runs]
    declared_block = declared(kept_runs, notes) if study is None else {k: v for k, v in study.items() if v is not None}
    margin, family, primary = _analysis(declared_block, metric, margin, family)
    varying = _varying_between(groups)
    columns = [k for k in ALWAYS_SHOWN if any(k in r.config for r in kept_runs) and k not in varying] + varying
    label_keys = varying or [k for k in ("model.norm",) if any(k in r.config for r in kept_runs)]
    splits = _splits(groups, notes)
    ranked, pairs = _rank_sections(groups, within, metric, higher, label_keys, splits, margin, family, notes)
    role = None if primary is None else ("primary" if primary else "exploratory")
    for pair in pairs:
        pair.role = role
    for r in ranked:
        if r.did_not_learn:
            notes.append(f"did not learn: {r.section}, {r.label}: {r.did_not_learn}; ranked after the groups that "
                         f"learned, never best, and its verdicts are marked")
    frame = _frame(ranked, metric, columns, any(g.split for g in groups), splits)
    same = _same_across(groups)
    if same:
        notes.append(_same_note(same))
    section_names = list(dict.fromkeys(r.section for r in ranked))
    comp = Comparison(metric, higher, columns, varying, frame,
                      kept_runs, [r for r in runs if not r.completed], collapsed, left_out, notes,
                      section_names, any(g.split for g in groups), within, ranked, splits)
    comp.margin, comp.family, comp.pairs = margin, family, pairs
    comp.declared, comp.primary, comp.bounds = declared_block, primary, metrics.interval_bounds(metric)
    comp.across = across_sections(ranked, higher) if len(section_names) > 1 else []
    comp.same = same
    return comp


def _analysis(declared_block: dict, metric: str, margin: float | None,
              family: str | None) -> tuple[float | None, str, bool | None]:
    """(margin, family, primary) of this comparison: the arguments, else the declared
    analysis (its margin only for its primary metric), else no margin and vs-best; primary
    is whether this is the declared primary analysis (None when none is declared)."""
    primary_metric = declared_block.get("primary")
    if margin is None and primary_metric in (None, metric):
        margin = declared_block.get("margin")
    family = family or declared_block.get("family") or DEFAULT_FAMILY
    primary = None
    if primary_metric is not None:
        primary = (primary_metric == metric and margin == declared_block.get("margin")
                   and family == (declared_block.get("family") or DEFAULT_FAMILY))
    return margin, family, primary


def _rank_sections(groups: list[Group], within: tuple[str, ...], metric: str, higher: bool, label_keys: list[str],
                   splits: tuple, margin: float | None, family: str, notes: list[str]) -> tuple[list, list]:
    """rank_section over every section: (ranked groups, pairs), section after section; a
    section whose groups ran on different data of the same settings gets a note."""
    ranked, pairs = [], []
    for name, gs in sections(groups, within).items():
        notes += _data_notes(name, gs)
        rs, ps = rank_section(name, gs, metric, higher, label_keys, splits, margin=margin, family=family)
        ranked += rs
        pairs += ps
    return ranked, pairs


def _same_note(same: list) -> str:
    return (f"{_plural(len(same), 'run')} found in two groups as the same run (one identity: the same config "
            f"but for name, output, sweep, role and data.path, the same seed, data, normbench version and "
            f"backend): each is one observation, so comparisons between groups that share runs are paired "
            f"over their shared seeds (their Holm p is the paired test's); Welch's columns of those rows "
            f"count the shared runs twice")


def check_margin(margin) -> float:
    """An equivalence margin: a positive finite number in the metric's units."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not (margin > 0 and math.isfinite(margin)):
        raise ParamError("margin", margin, "must be a positive number in the metric's units, e.g. 0.01 (1 pp of accuracy)")
    return float(margin)


def check_family(family) -> str:
    if family not in FAMILIES:
        raise ParamError("family", family, f"unknown family; choose one of: {', '.join(FAMILIES)}")
    return family


DECLARED_KEYS = ("primary", "margin", "family")  # a study config's compare: block (config.CompareConfig)


def declared(runs: list[Run], notes: list[str]) -> dict:
    """The analysis the runs' study declared: their config's compare.primary, .margin and
    .family (config.CompareConfig), when every run that declares one declares the same;
    {} when none does, or when they disagree (a note says so)."""
    blocks = {json.dumps({k: r.config.get(f"compare.{k}") for k in DECLARED_KEYS}, sort_keys=True)
              for r in runs if r.config.get("compare.primary") is not None}
    if not blocks:
        return {}
    if len(blocks) > 1:
        notes.append(f"the runs declare {len(blocks)} different primary analyses (compare: blocks of their "
                     f"configs); none is used, and no verdict is marked primary")
        return {}
    return {k: v for k, v in json.loads(blocks.pop()).items() if v is not None}


def study_block(study: str) -> dict:
    """The compare: block of the study config file `study`, as declared() gives it (compare --study)."""
    from normbench.schema.config import from_dict, read_yaml

    block = from_dict(read_yaml(study), str(study)).compare
    if block is None:
        raise ParamError("study", study, "no compare: block; declare the primary analysis there "
                                         "(compare: {{primary: test_accuracy, margin: 0.01, family: vs-best}}, docs/compare.md)")
    return dataclasses.asdict(block)


# ----------------------------------------------------------------------------- did not learn

LEARN_METRIC = "test_accuracy"  # the accuracy compared with chance, whatever compare ranks by


def chance_of(run: Run) -> tuple[float | None, str]:
    """(chance accuracy, where it came from): summary.json's chance_accuracy (the test
    set's majority-class rate, recorded by train), else 1/classes for runs that predate it
    (data.classes, or the data set's number of classes: exact for balanced test sets
    such as IMDB's and CIFAR-10's); (None, why) when neither is known."""
    v = run.summary.get("chance_accuracy")
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v), "the test set's majority-class rate"
    k = run.config.get("data.classes")
    if not k:
        from normbench.build.data import DATASETS

        spec = DATASETS.get(str(run.config.get("data.name")))
        k = spec.num_classes if spec else None
    if k:
        return 1.0 / k, f"1/{k} classes: the run predates chance_accuracy"
    return None, "unknown"


def first_train_loss(run: Run) -> float:
    """The first epoch's train loss: summary.json's first_train_loss, else history.csv's
    first row (runs that predate the key); NaN when neither has it."""
    v = run.summary.get("first_train_loss")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    import csv

    from normbench.store import runfolder

    try:  # the header and the first row only: compare reads this for every run that predates the key
        with open(run.path / runfolder.HISTORY, newline="", encoding="utf-8") as f:
            row = next(csv.DictReader(f), None)
        return float(row["loss"]) if row and row.get("loss") not in (None, "") else math.nan
    except (OSError, ValueError, KeyError, TypeError):
        return math.nan


def did_not_learn(group: Group) -> str | None:
    """Why a group did not learn, or None when it did. It did not learn when
    - its mean test accuracy is not above chance (chance_of) by more than two binomial
      standard errors of one run's accuracy, 2 sqrt(c (1 - c) / n_test) (a model that
      predicts one class scores at most the majority rate; the band is test-set noise), or
    - its mean final train loss is not below its mean first-epoch train loss."""
    reasons = []
    accs = [v for v in (r.value(LEARN_METRIC) for r in group.runs) if not math.isnan(v)]
    chance, how = chance_of(group.first)
    if accs and chance is not None:
        mean = sum(accs) / len(accs)
        n_test = group.first.summary.get("n_test")
        tol = 2 * math.sqrt(chance * (1 - chance) / n_test) if isinstance(n_test, int) and n_test > 0 else 0.0
        if mean - chance <= tol + 1e-12:  # 1e-12: three runs at 0.1 average to 0.10000000000000002
            band = f" + {tol:.4f} (two binomial standard errors)" if tol else ""
            reasons.append(f"{LEARN_METRIC} {mean:.4f} is not above chance {chance:.4f}{band} ({how})")
    firsts = [v for v in map(first_train_loss, group.runs) if math.isfinite(v)]
    finals = [v for v in (r.value("final_train_loss") for r in group.runs) if math.isfinite(v)]
    if firsts and finals:
        first, final = sum(firsts) / len(firsts), sum(finals) / len(finals)
        if final >= first:
            reasons.append(f"its final train loss {final:.4g} has not fallen from the first epoch's {first:.4g}")
    return "; ".join(reasons) or None


# ----------------------------------------------------------------------------- across sections


def across_sections(ranked: list[Ranked], higher: bool) -> list[Across]:
    """P(A better than B) (stats.improvement_interval) for each pair of group names that
    share at least two sections, over those sections (the tasks) and their runs; each pair
    oriented so that P >= 0.5 (A the one more often better), in the order the names first
    appear. For a metric where lower is better, better means lower."""
    from normbench.analysis import stats as st

    by_section: dict[str, dict[str, list[float]]] = {}
    for r in ranked:
        vals = [v if higher else -v for v in r.group.values]
        by_section.setdefault(r.section, {}).setdefault(r.name, vals)
    names = list(dict.fromkeys(r.name for r in ranked))
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            tasks = [sec for sec in by_section.values() if a in sec and b in sec]
            if len(tasks) < 2:
                continue
            xs, ys = [t[a] for t in tasks], [t[b] for t in tasks]
            p, low, high = st.improvement_interval(xs, ys, LEVEL)
            if p < 0.5:
                a2, b2, xs, ys = b, a, ys, xs
                p, low, high = st.improvement_interval(xs, ys, LEVEL)
            else:
                a2, b2 = a, b
            out.append(Across(a2, b2, p, low, high, len(tasks), sum(map(len, xs)), sum(map(len, ys))))
    return out


def _same_across(groups: list[Group]) -> list[tuple[Run, Run]]:
    """[(run, run of an earlier group)] of one identity in two groups (a run in three
    groups gives two pairs): the runs compare counts once (`distinct_runs`)."""
    first: dict[str, Run] = {}
    out = []
    for g in groups:
        for r in g.runs:
            if r.identity in first:
                out.append((r, first[r.identity]))
            elif r.identity:
                first[r.identity] = r
    return out


def distinct_runs(comp: Comparison) -> int:
    """The comparison's runs, each run found in several groups counted once."""
    return len(comp.runs) - len(comp.same)


_SPLIT_NOTES = {
    "model_file": "ran with different model files (summary.json's model_sha256 differs): each file is a group of its own",
    "normbench": ("ran under different normbench versions (summary.json's versions.normbench differs; a version "
                  "can change what a config trains): each version is a group of its own"),
}


def _splits(groups: list[Group], notes: list[str]) -> tuple[str, ...]:
    """The SPLITS columns some config (with its data) has two values of: those groups
    would otherwise carry the same label. A note per column says so."""
    out = []
    keys = [_group_key(g.first) for g in groups]  # once per group, not once per column
    for col in SPLITS:
        values: dict[tuple, set] = {}
        for g, group_key in zip(groups, keys):
            key = tuple(kv for kv in group_key if kv[0] != f"<{col}>") + (g.fingerprint,)
            values.setdefault(key, set()).add(g.shown(col))
        split = sum(len(v) > 1 for v in values.values())
        if split:
            notes.append(f"{_plural(split, 'config')} {_SPLIT_NOTES[col]} (column {col})")
            out.append(col)
    return tuple(out)


def short_model(sha: str | None) -> str:
    """A group's model file as the model_file column shows it: its sha256's first 8 hex digits."""
    return short_fingerprint(sha) if sha else "built-in"


def measured(runs: list[Run], metric: str, notes: list[str]) -> tuple[list[Run], list[Run], dict]:
    """(completed runs with a value for the metric, completed runs without one, id(run) ->
    (value, from the fallback key)); notes say who was left out or fell back."""
    done = completed(runs, "compare")
    if metric.endswith(("_last", "_best")):
        # test_*_last / test_*_best do not depend on train.eval (which only picks what
        # test_* reports): runs that differ in it alone are one group for these metrics
        done = [dataclasses.replace(r, config={k: v for k, v in r.config.items() if k != EVAL_KEY}) for r in done]
    value = {id(r): r.metric(metric) for r in done}
    left_out = [r for r in done if math.isnan(value[id(r)][0])]
    use = [r for r in done if not math.isnan(value[id(r)][0])]
    if not use:
        raise ParamError("metric", metric, "no completed run has a value for it (runs from before it was recorded "
                                           "lack it); pick another metric, e.g. test_accuracy")
    if left_out:
        why = " (they predate it: summary.json did not record it yet)" if metric.endswith(("_best", "_last")) else ""
        notes.append(f"{_plural(len(left_out), 'completed run')} without a {metric} value left out of this comparison{why}")
    fell_back = sum(value[id(r)][1] for r in use)
    if fell_back:
        notes.append(f"{_plural(fell_back, 'run')} predate {metric}: their {LAST_FALLBACK[metric]} is used "
                     f"(they evaluated the last epoch's weights)")
    return use, left_out, value


def group_runs(runs: list[Run], notes: list[str]) -> list[tuple[list[Run], str | None, bool]]:
    """Runs grouped by config, then by data fingerprint: [(runs, fingerprint, config split
    by data)]. Runs from before fingerprints join their config's group when its
    fingerprinted runs share one fingerprint, else they form a group of their own."""
    by_config: dict[tuple, list[Run]] = {}
    for r in runs:
        by_config.setdefault(_group_key(r), []).append(r)
    out: list[tuple[list[Run], str | None, bool]] = []
    predate = unknown_apart = split_configs = 0
    for rs in by_config.values():
        if rs[0].data_from_seed:  # one config, one data name: all synthetic or none
            out.append((rs, None, False))
            continue
        fps = sorted({r.fingerprint for r in rs if r.fingerprint})
        bare = [r for r in rs if not r.fingerprint]
        if len(fps) <= 1:
            out.append((rs, fps[0] if fps else None, False))
            predate += len(bare)
        else:
            split_configs += 1
            out += [([r for r in rs if r.fingerprint == fp], fp, True) for fp in fps]
            if bare:
                out.append((bare, None, True))
                unknown_apart += len(bare)
    if predate:
        notes.append(f"{_plural(predate, 'run')} predate data fingerprints; grouped by config alone")
    if split_configs:
        notes.append(f"{_plural(split_configs, 'config')} ran on different data (data fingerprints differ): "
                     f"each data set is a group of its own (column data)")
    if unknown_apart:
        notes.append(f"{_plural(unknown_apart, 'run')} predate data fingerprints and share a config that ran on "
                     f"several data sets: they form their own group (data unknown)")
    return out


def collapse_seeds(raw: list[tuple[list[Run], str | None, bool]], value: dict,
                   notes: list[str]) -> tuple[list[Group], list[tuple[Run, Run]]]:
    """One run per seed in each group, the earliest finished: (groups, [(repeat, run kept)])."""
    groups, collapsed = [], []
    for rs, fp, split in raw:
        by_seed: dict[str, list[Run]] = {}
        for r in sorted(rs, key=lambda r: (r.finished_time, str(r.path))):
            by_seed.setdefault(canonical(r.config.get("seed")), []).append(r)
        collapsed += [(dup, kept[0]) for kept in by_seed.values() for dup in kept[1:]]
        kept = sorted((k[0] for k in by_seed.values()), key=lambda r: str(r.path))
        groups.append(Group(kept, [value[id(r)][0] for r in kept], fp, split))
    if collapsed:
        notes.append(f"{_plural(len(collapsed), 'repeated run')} of a seed collapsed (same config, data and seed as "
                     f"a run that finished earlier, which is kept): n counts distinct seeds")
    return groups, collapsed


def sections(groups: list[Group], within: tuple[str, ...] = ()) -> dict[str, list[Group]]:
    """section name (section_of) -> its groups, sections in order (numeric in `within`)."""
    out: dict[str, list[Group]] = {}
    order: dict[str, tuple] = {}
    for g in groups:
        name = section_of(g.first, within)
        out.setdefault(name, []).append(g)
        order[name] = _section_order(g.first, within)
    return {name: out[name] for name in sorted(out, key=order.get)}


def _data_notes(section: str, groups: list[Group]) -> list[str]:
    data_note: dict[str, set] = {}
    for g in groups:
        data_note.setdefault(canonical({k: v for k, v in g.first.config.items() if k.startswith("data.")}),
                             set()).add(g.fingerprint)
    if any(len({fp for fp in fps if fp}) > 1 for fps in data_note.values()):
        return [f"{section}: groups with the same data settings ran on different data (fingerprints differ); "
                f"their differences mix the data with the config"]
    return []


def rank_section(section: str, groups: list[Group], metric: str, higher: bool, label_keys: list[str],
                 splits: tuple = (), *, margin: float | None = None,
                 family: str = DEFAULT_FAMILY) -> tuple[list[Ranked], list[Pair]]:
    """One section's groups, best first (by the metric's mean; groups that did not learn
    after those that did), and the section's family of comparisons (FAMILIES): Welch and
    paired differences, Holm's p over the family, TOST with a margin, a verdict each.
    Each group below the best carries its comparison with the best (the table's row).
    The steps: name the groups (_named), order them (_order), test the family (_family),
    and put each comparison in words (_pair)."""
    from normbench.analysis import stats as st

    check_family(family)
    dbounds = st.diff_bounds(metrics.interval_bounds(metric))
    ranked = _order(_named(section, groups, label_keys, splits), metric, higher)
    best, others = ranked[0], ranked[1:]
    for r in others:
        r.diff = st.bounded(st.welch_diff(r.group.values, best.group.values, LEVEL), dbounds)
    for r, paired in zip(others, st.paired_diffs([(r.group.by_seed, best.group.by_seed) for r in others], LEVEL)):
        r.paired = st.bounded(paired, dbounds)
    members, tests, paireds, sames = _family(ranked, family, margin, dbounds)
    several = len(members) > 1
    pairs = []
    for (a, b), t, pr, same in zip(members, tests, paireds, sames):
        pair = _pair(section, a, b, t, pr, same, metric, higher, margin, several)
        pairs.append(pair)
        if a is best:
            b.p_holm, b.p_tost, b.verdict, b.same = pair.p_holm, pair.p_tost, pair.verdict, same
            b.paired = pr.swapped() if (same and pr is not None) else b.paired
            b.call = {"higher": "lower", "lower": "higher"}.get(pair.call, pair.call)
    return ranked, pairs


def _named(section: str, groups: list[Group], label_keys: list[str], splits: tuple) -> list[Ranked]:
    """The section's groups as Ranked, each with its label (tables, legends) and name
    (verdicts): the keys that vary, then its data and split columns where compare split them."""
    name_keys = _varying_between(groups) or label_keys
    out = []
    for g in groups:
        r = Ranked(g, section, label_of(g.first, label_keys), _name(g.first, name_keys))
        if g.split:
            r.label += f", data={short_fingerprint(g.fingerprint)}"
            r.name += f" (data {short_fingerprint(g.fingerprint)})"
        for col in splits:
            word = SPLITS[col][0]
            r.label += f", {word}={g.shown(col)}"
            r.name += f" ({word} {g.shown(col)})"
        r.did_not_learn = did_not_learn(g)
        out.append(r)
    return out


def _order(ranked: list[Ranked], metric: str, higher: bool) -> list[Ranked]:
    """Each group's mean and interval, best first (groups that did not learn last), ranked."""
    from normbench.analysis import stats as st

    bounds = metrics.interval_bounds(metric)
    for r in ranked:
        r.ci = st.bounded_mean_ci(r.group.values, bounds, LEVEL)
    ranked = sorted(ranked, key=lambda r: (r.did_not_learn is not None,
                                           math.inf if math.isnan(r.ci.mean) else r.ci.mean * (-1 if higher else 1),
                                           r.label))
    for rank, r in enumerate(ranked, 1):
        r.rank = rank
    return ranked


def _family(ranked: list[Ranked], family: str, margin: float | None, dbounds):
    """The section's family of comparisons: (members [(a, b)], their tests (Holm over the
    family), paired differences, shared runs [(run, run)] of each pair). A pair with the
    best reuses the row's paired difference; pairs that share runs are paired over them."""
    from normbench.analysis import stats as st

    best = ranked[0]
    tests = st.family_tests([r.group.values for r in ranked], family, margin, LEVEL)
    members = [(ranked[t.i], ranked[t.j]) for t in tests]
    to_pair = [None if a is best else (a.group.by_seed, b.group.by_seed) for a, b in members]
    paired_rest = iter(st.paired_diffs([x for x in to_pair if x is not None], LEVEL))
    paireds = [(b.paired and b.paired.swapped()) if x is None else st.bounded(next(paired_rest), dbounds)
               for (a, b), x in zip(members, to_pair)]
    sames = [same_runs(a.group, b.group) for a, b in members]
    if any(sames):  # the same run in both groups: one observation, so those pairs are paired over the shared seeds
        paireds = [_shared_paired(a, b, dbounds) if same else pr for (a, b), pr, same in zip(members, paireds, sames)]
        tests = _with_shared(tests, paireds, sames, margin)
    return members, tests, paireds, sames


def _pair(section: str, a: Ranked, b: Ranked, t, pr, same: list, metric: str, higher: bool,
          margin: float | None, several: bool) -> Pair:
    """One comparison of the family (a family test `t`, its paired difference `pr`) in words:
    stats.verdict, or the shared-run verdict; Holm's p only when the family has several."""
    from normbench.analysis import stats as st

    d = st.bounded(t.diff, st.diff_bounds(metrics.interval_bounds(metric)))
    ph, pt, call = t.p_holm, t.p_tost, t.call
    scale, unit = metrics.unit_of(metric)
    if same:
        text = _same_run_verdict(a.name, b.name, same, min(d.n_a, d.n_b), pr, higher, scale, unit,
                                 ph if several else None)
    else:
        text = st.verdict(a.name, b.name, d, pr, metric=metric, scale=scale, unit=unit,
                          p_adjusted=ph if several else None, margin=margin,
                          p_tost=(pt if several else None) if margin is not None else None)
        if call in ("higher", "lower") and not higher:
            text += f" Lower is better for {metric}, so {a.name if call == 'lower' else b.name} is better."
    flops = [x.name for x in (a, b) if x.did_not_learn]
    if flops:
        text = f"[did not learn: {', '.join(flops)}] " + text
    return Pair(section, a, b, d, pr, ph, pt, call, text, same=same)


def _shared_paired(a: Ranked, b: Ranked, dbounds):
    """a minus b paired over the seeds both groups ran (they share runs: one observation each)."""
    from normbench.analysis import stats as st

    shared = set(a.group.by_seed) & set(b.group.by_seed)
    return st.bounded(st.paired_diff({k: v for k, v in a.group.by_seed.items() if k in shared},
                                     {k: v for k, v in b.group.by_seed.items() if k in shared}, LEVEL), dbounds)


def _shared_p(pr) -> float:
    """The p a shared-run comparison brings into Holm's family: the paired test's over the
    shared seeds (1 when they gave the same values: nothing to tell apart; NaN when fewer
    than 2 seeds are shared)."""
    if pr is None or pr.n < 2:
        return math.nan
    return 1.0 if math.isnan(pr.p) else pr.p


def _with_shared(tests, paireds, sames, margin):
    """The family's tests with Holm redone where pairs share runs: their p is the paired
    test's (Welch's would count each shared run twice); their call is the paired interval's
    (higher / lower when it excludes 0 and the Holm p is below alpha; no equivalence test:
    TOST here is Welch's, so with shared runs it is not claimed)."""
    from normbench.analysis import stats as st

    ps = [_shared_p(pr) if same else t.diff.p for t, pr, same in zip(tests, paireds, sames)]
    holm = st.holm(ps)
    out = []
    for t, pr, same, ph in zip(tests, paireds, sames, holm):
        if same:
            ok = pr is not None and pr.n >= 2 and pr.resolved and not math.isnan(ph) and ph < 1 - LEVEL
            c = ("higher" if pr.diff > 0 else "lower") if ok else "not resolved"
            out.append(dataclasses.replace(t, p_holm=ph, p_tost=math.nan, call=c))
        else:
            c = st.call(t.diff, ph, t.p_tost if margin is not None else None)
            out.append(dataclasses.replace(t, p_holm=ph, call=c))
    return out


def same_runs(a: Group, b: Group) -> list[tuple[Run, Run]]:
    """[(run of a, run of b)] with one identity (normbench.store.identity): the same training
    found in two folders, e.g. a tune's confirmation run that a fixed-rate study already
    made. Such runs are one observation: a comparison of a and b must pair them."""
    in_b = {r.identity: r for r in b.runs if r.identity}
    return [(r, in_b[r.identity]) for r in a.runs if r.identity in in_b]


def _results(run: Run) -> tuple:
    """What a run's training gave: its result figures as summary.json holds them."""
    return tuple(run.summary.get(k) for k in ("test_accuracy", "test_loss", "best_val_accuracy", "final_train_loss"))


def _same_run_verdict(a: str, b: str, same: list, n: int, pr, higher: bool, scale: float, unit: str, p_holm) -> str:
    """The verdict of two groups that share runs: "k of n runs are the same run", then the
    paired difference over the shared seeds (`pr`: a minus b) and whether it is resolved.
    Welch's unpaired interval would count each shared run twice, as two independent draws."""
    from normbench.analysis import stats as st

    k = len(same)
    differ = sum(_results(x) != _results(y) for x, y in same)
    u = f" {unit}" if unit else ""
    head = (f"{a} vs {b}: {k} of {n} runs are the same run (one identity in both groups: the same training "
            f"in two folders, one observation, not two)")
    if differ:
        head += f"; {differ} of them gave different results (the same inputs, other numbers: not bit-reproducible)"
    if pr is None or pr.n < 2 or math.isnan(pr.low):
        shared = 0 if pr is None else pr.n
        return head + (f"; {shared} shared seed{'s' * (shared != 1)}: too few to pair, and the unpaired test would "
                       f"count the same runs twice: not resolved.")
    dec = max(1 if unit == "pp" else 3, st._decimals(pr.half_width * scale, 1 if unit == "pp" else 0, 1))

    def num(x):
        return st.fixed(x * scale, dec, "+")

    p = pr.p if p_holm is None or math.isnan(p_holm) else p_holm
    label = "p" if p_holm is None or math.isnan(p_holm) else "Holm p"
    line = (f"{head}; paired over the {pr.n} shared seeds: {num(pr.diff)}{u} [{num(pr.low)}, {num(pr.high)}], "
            f"{st._p_text(p, label)} (n = {pr.n} pairs): ")
    if pr.resolved and not math.isnan(p) and p < 1 - LEVEL:
        hi, lo = (a, b) if pr.diff > 0 else (b, a)
        better = "" if higher else f" Lower is better, so {lo} is better."
        return line + f"resolved: {hi} higher than {lo} by {abs(pr.diff) * scale:.{dec}f}{u}.{better}"
    if pr.sd_diff == 0 and pr.diff == 0:
        return line + "not resolved: every shared seed gave the same value in both groups."
    return line + ("not resolved after the Holm adjustment." if pr.resolved else "not resolved.")


def _frame(ranked: list[Ranked], m: str, columns: list[str], split_data: bool, splits: tuple = ()):
    """The Comparison's table: one row per group, in `ranked`'s order."""
    import pandas as pd

    from normbench.analysis import stats as st

    stat_keys = list(STATS) if m in STATS else [m, *STATS]
    records = []
    for r in ranked:
        g, first = r.group, r.group.first
        rec = {"section": r.section, "label": r.label, "name": r.name, "rank": r.rank}
        rec.update({k: show_value(first.config.get(k)) for k in columns})
        rec["data"] = short_fingerprint(g.fingerprint)
        rec["data_fingerprint"] = g.fingerprint
        rec |= {col: g.shown(col) for col in SPLITS}
        rec["n"] = len(g.runs)
        rec["seeds"] = [x.config.get("seed") for x in g.runs]
        ci = r.ci
        rec |= {f"{m}_mean": ci.mean, f"{m}_std": ci.sd, f"{m}_ci_low": ci.low, f"{m}_ci_high": ci.high}
        others = [k for k in stat_keys if k != m]
        means, sds = st.rows_mean_sd([[x.metric(k)[0] for x in g.runs] for k in others])  # NaN skipped; a run older than a metric: from history
        for k, mean, sd in zip(others, means, sds):
            rec[f"{k}_mean"], rec[f"{k}_std"] = mean, sd
        rec["runs"] = [str(x.path) for x in g.runs]
        rec["same_runs"] = len(r.same)
        if r.diff is not None:
            d, pr = r.diff, r.paired
            rec |= {f"{m}_diff": d.diff, f"{m}_diff_low": d.low, f"{m}_diff_high": d.high,
                    f"{m}_hedges_g": d.hedges_g, f"{m}_p_welch": d.p,
                    f"{m}_paired_diff": pr.diff if pr else math.nan, f"{m}_paired_low": pr.low if pr else math.nan,
                    f"{m}_paired_high": pr.high if pr else math.nan,
                    f"{m}_paired_width_ratio": pr.width_ratio if pr else math.nan,
                    f"{m}_seeds_needed": st.seeds_needed(d.diff, d.sd_a, d.sd_b, alpha=1 - LEVEL),
                    f"{m}_p_holm": r.p_holm, f"{m}_p_tost": r.p_tost, f"{m}_call": r.call, "verdict": r.verdict}
        rec["did_not_learn"] = r.did_not_learn
        records.append(rec)
    out_cols = ["section", "rank", *columns, *(["data"] if split_data else []),
                *splits, "label", "n", "data_fingerprint",
                *[f"{m}_{a}" for a in ("mean", "std", "ci_low", "ci_high", "diff", "diff_low", "diff_high", "hedges_g",
                                       "p_welch", "p_holm", "p_tost", "call", "paired_diff", "paired_low", "paired_high",
                                       "paired_width_ratio", "seeds_needed")],
                *[f"{k}_{a}" for k in stat_keys if k != m for a in ("mean", "std")], "did_not_learn", "verdict",
                "same_runs", "seeds", "runs", "name"]
    table = pd.DataFrame(records).reindex(columns=out_cols)
    table[f"{m}_seeds_needed"] = table[f"{m}_seeds_needed"].astype("Int64")
    for col in ("verdict", "did_not_learn", f"{m}_call"):
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    return table


def _name(run: Run, keys: list[str]) -> str:
    """A group's name in verdicts: the value alone when one key varies ('batch'), else
    'norm=batch, batch_size=64'."""
    if len(keys) == 1:
        return show_value(run.config.get(keys[0]))
    return label_of(run, keys)
