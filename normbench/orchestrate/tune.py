"""Tuned comparisons: each norm at its own best setting, chosen on validation, confirmed
on fresh seeds (`normbench tune`).

    normbench tune configs/study/cifar10_tuned.yaml --per model.norm=batch,layer,none \\
        --grid train.learning_rate=0.0003,0.001,0.003,0.01 --tune-seeds 0,1 \\
        --seeds-until 0.01 --max-seeds 10

Three phases, every run an ordinary sweep member (normbench.orchestrate.sweep: its own run folder,
resumable, --jobs, Ray, the run-folder lock), each marked with its role in role.json
(runfolder.ROLES):

1. tuning: every (--per value, grid point) on the tuning seeds, so every norm gets the
   same budget (the same points, seeds and epochs);
2. selection (`select`): for each --per value, the grid point with the best mean of a
   validation metric over the tuning seeds. It reads only what the finished tuning run
   folders say, through a view without any test figure (`VIEW_KEYS`), so a rerun picks
   the same points and the test set never takes part in the choice. Ties and a choice at
   the grid's edge are reported;
3. confirmation: fresh seeds, disjoint from the tuning seeds, at each value's selected
   point (sweep.sweep_until rounds with --seeds-until), and the comparison of these runs
   only (results.compare: intervals, Holm, verdicts). The tuning runs chose the point,
   so their scores there are biased upward (the winner's curse): they are never
   averaged into the verdict.

A rerun after Ctrl-C, SIGTERM or SIGKILL of the driver skips the finished members,
resumes the unfinished ones, selects again from the same folders and continues the
confirmation rounds: nothing finished is trained twice.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normbench.core.errors import NormbenchError, ParamError, WordedError
from normbench.store import runfolder
from normbench.orchestrate import sweep as sw
from normbench.analysis.results import canonical, show_value

# the metrics a tune may select on: measured on the validation split, never on test
VALIDATION_METRICS = ("best_val_accuracy", "last_val_accuracy")
# what selection may read of a tuning run's summary.json: no test figure is in it
VIEW_KEYS = ("status", "epochs", "steps_per_epoch", *VALIDATION_METRICS)
DEFAULT_TUNE_SEEDS = (0, 1)
DEFAULT_CONFIRM_SEEDS = 3  # without --seeds-until: this many fresh seeds per --per value
TIE = 1e-12  # means closer than this are a tie
_GRID_WORDS = "--grid"  # how normbench.schema.config (_Where) names a grid value in its errors


# ----------------------------------------------------------------------------- the plan


@dataclass
class TuneSpec:
    """A validated tune: the base config, what is compared (--per), what is tuned (--grid),
    the seeds of each phase and the metrics."""

    cfg: Any  # normbench.schema.config.Config, without a sweep: section
    per_key: str
    per_values: list
    grid: dict[str, list]
    tune_seeds: list[int]
    confirm_seeds: list[int]
    select: str = "best_val_accuracy"
    metric: str = "test_accuracy"
    target: float | None = None  # --seeds-until half-width; None: run every confirm seed
    output: str | None = None
    source: str = "<tune>"
    ranges: dict = field(default_factory=dict)  # --optuna: key -> (low, high, log) searched continuously
    trials: int | None = None  # --optuna N: trials per --per value (TPE); None: the grid
    # --against DIR: folders of runs the confirmation seeds must be fresh against (besides
    # the output folder): a seed already run at a selected point is not a fresh draw
    against: list = field(default_factory=list)
    seeds_given: bool = False  # --confirm-seeds was given: a used seed in it is refused, not skipped

    @property
    def keys(self) -> list[str]:
        """The keys a point sets: the grid's (choices, with --optuna), then the ranges'."""
        return [*self.grid, *self.ranges]

    def points(self) -> list[dict]:
        """The grid's points, in grid order (the last key varies fastest)."""
        keys = list(self.grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.grid[k] for k in keys))]

    def pairs(self) -> list[tuple[Any, dict]]:
        """(per value, point) of every tuning cell: the grid for every value, or with
        --optuna the points of each value's finished trials (from its study)."""
        if self.trials is not None:
            return search_pairs(self)
        return [(v, p) for v in self.per_values for p in self.points()]

    def info(self) -> dict:
        """What role.json records beside the role: how this tune chooses."""
        info = {"per": self.per_key, "grid": self.keys, "select": self.select, "tune_seeds": self.tune_seeds}
        return info if self.trials is None else {**info, "search": "optuna", "trials": self.trials}

    def tuning_members(self, create: bool = True) -> list[sw.Member]:
        """Every (per value, grid point) x tuning seed; seeds outermost, so a tune stopped
        early has every value at every point of its first seeds. With --optuna: the
        members of the trials finished so far."""
        if self.trials is not None:
            return self.members_at(self.pairs(), create)
        grid = {"seed": self.tune_seeds, **self.grid, self.per_key: self.per_values}
        members = self._prepare(grid, create)
        if create:
            _mark(members, "tuning", self.info())
        return members

    def members_at(self, pairs, create: bool = True, seeds=None, role: str = "tuning") -> list[sw.Member]:
        """The members of these (per value, point) pairs on `seeds` (default: the tuning
        seeds), seed by seed; run ids as the grid's (the same keys in the same order)."""
        out = []
        for s in (self.tune_seeds if seeds is None else seeds):
            for v, point in pairs:
                out += self._prepare({"seed": [s], **{k: [point[k]] for k in self.keys}, self.per_key: [v]}, create)
        if create:
            _mark(out, role, self.info() if role == "tuning" else {**self.info(), "confirm_seeds": self.confirm_seeds})
        return out

    def _prepare(self, grid: dict, create: bool) -> list[sw.Member]:
        try:
            return sw.prepare_members(self.cfg, grid, self.output, self.source, create)
        except NormbenchError as e:  # a bad per value (or range end) is an error of that parameter
            for key, param in ((self.per_key, "per"), *((k, "ranges") for k in self.ranges)):
                if isinstance(e, ParamError) and e.param == "grid" and str(e.value).startswith(f"{key}="):
                    raise ParamError(param, e.value, e.reason, **e.values) from None
                for text in (f"{key}={v}" for v in grid.get(key, ())):
                    head = f"{_GRID_WORDS} {text}: "  # config's _Where words a grid value so, not as a ParamError
                    if str(e).startswith(head):
                        raise ParamError(param, text, "{reason}", reason=str(e)[len(head):]) from None
            raise


def _mark(members: list[sw.Member], role: str, info: dict) -> None:
    """role.json in each member folder that has none (`check_role` first)."""
    for m in members:
        if check_role(m, role) is None:
            runfolder.write_role(m.run_dir, role, **info)


def check_role(m: sw.Member, role: str) -> dict | None:
    """The member's role.json; a folder an earlier tune made for the other role is
    refused (its seed moved between --tune-seeds and --confirm-seeds)."""
    have = runfolder.read_role(m.run_dir)
    if have is not None and have["role"] != role:
        raise WordedError(
            "{run_dir}: an earlier tune made it as a {had} run, this one wants it as a {role} run (seed {seed} "
            "changed phase); keep that tune's seeds or tune into another {output}",
            run_dir=m.run_dir, had=have["role"], role=role, seed=m.config.seed)
    return have


def parse_seeds(text: str | None, param: str) -> list[int] | None:
    """'0,1' -> [0, 1] (repeats dropped); None stays None. Errors are ParamErrors of
    `param`, the caller's parameter the text came in."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise ParamError(param, text, f"expected seeds as integers >= 0, e.g. {{{param}}} 0,1")
    return list(dict.fromkeys(seeds))


def endpoint(metric: str, eval_: str = "last") -> str | None:
    """Which epoch a metric reads: "best" (the best validation epoch's weights), "last",
    or None (a time, not an epoch's figure). test_accuracy/test_loss read the weights
    train.eval picks (`eval_`)."""
    if metric.endswith("_best") or metric == "best_val_accuracy":
        return "best"
    if metric in ("test_accuracy", "test_loss"):
        return eval_
    if metric.endswith("_last") or metric in ("last_val_accuracy", "final_train_loss"):
        return "last"
    return None


def default_select(metric: str, eval_: str = "last") -> str:
    """--select's default: the validation counterpart of --metric, so the choice and the
    verdict read one endpoint: best_val_accuracy for a best-epoch verdict, else (the last
    epoch, or a metric of no epoch) last_val_accuracy."""
    return "best_val_accuracy" if endpoint(metric, eval_) == "best" else "last_val_accuracy"


def check_select(select: str) -> None:
    """`select` must be a validation metric: selecting on test leaks the test set."""
    from normbench.analysis.results import check_metric

    try:
        check_metric(select)
    except NormbenchError:
        raise ParamError("select", select, f"unknown metric; choose a validation metric: "
                                           f"{', '.join(VALIDATION_METRICS)}") from None
    if select.startswith("test_"):
        raise ParamError(
            "select", select, f"a test metric; choosing each norm's point on the test set leaks it into the choice "
            f"and makes the tuned comparison optimistic; select on a validation metric: {', '.join(VALIDATION_METRICS)}")
    if select not in VALIDATION_METRICS:
        raise ParamError("select", select, f"not a validation metric; select on one of: {', '.join(VALIDATION_METRICS)}")


def load_spec(config_path: str, per: str, grid_items=(), overrides=(), smoke: bool = False, *,
              tune_seeds: str | None = None, confirm_seeds: str | None = None, select: str | None = None,
              metric: str = "test_accuracy", target: float | None = None, max_seeds: int | None = None,
              output: str | None = None, trials: int | None = None, ranges=(), against=()) -> TuneSpec:
    """Read and check a tune before anything is created: one line per bad input.
    `trials` (--optuna N): an Optuna search of N trials per --per value over `ranges`
    (--range key=LOW:HIGH[:log]) and the grid keys' values (as choices)."""
    from normbench.schema.config import load_config
    from normbench.analysis.results import check_metric

    check_metric(metric)
    cfg = load_config(config_path, overrides, smoke)
    select = select or default_select(metric, cfg.train.eval)
    check_select(select)
    if cfg.sweep:
        raise WordedError("{path}: has a sweep: section ({keys}); tune makes its own grid from {per}, {grid_items} "
                          "and the seeds; remove the section", path=config_path, keys=", ".join(cfg.sweep))
    per_key, per_values = _compared(per)
    grid, space = _tuning_space(per_key, grid_items, ranges, trials)
    tseeds, seeds = _seeds(tune_seeds, confirm_seeds, target, max_seeds)
    _check_against(against)
    spec = TuneSpec(cfg, per_key, per_values, grid, tseeds, seeds, select, metric, target, output,
                    f"{config_path} (tune)", space, trials, [str(d) for d in against], confirm_seeds is not None)
    _check_members(spec)
    return spec


def _compared(per: str) -> tuple[str, list]:
    """load_spec's `per` ("key=a,b") -> (key, its distinct values), at least two."""
    (per_key, per_values), = sw.parse_grid([per], "per").items()
    per_values = list(dict.fromkeys(per_values))
    if per_key == "seed":
        raise ParamError("per", per, "seeds are not compared; they are set by {tune_seeds} and {confirm_seeds}")
    if len(per_values) < 2:
        raise ParamError("per", per, "one value; a tune compares at least two, e.g. {per} {key}=batch,layer", key=per_key)
    return per_key, per_values


def _tuning_space(per_key: str, grid_items, ranges, trials: int | None) -> tuple[dict, dict]:
    """What is tuned: the grid ({key: distinct values}) and the ranges Optuna searches."""
    grid = sw.parse_grid(grid_items)
    space = parse_ranges(ranges)
    if space and trials is None:
        raise ParamError("ranges", ranges[0], "a range is searched by {trials} N; add it, or list values with {grid_items}")
    if trials is not None:
        _check_search(per_key, grid, space, trials)
    if not grid and not space:
        raise WordedError("{grid_items}: nothing to tune; add e.g. {grid_items} train.learning_rate=0.0003,0.001,0.003,0.01")
    grid = {k: list(dict.fromkeys(v)) for k, v in grid.items()}
    if "seed" in grid:
        raise ParamError("grid_items", "seed", "seeds are set by {tune_seeds} (tuning) and {confirm_seeds} "
                                               "(confirmation), not the grid; drop it from {grid_items}")
    if per_key in grid:
        raise ParamError("per", per_key, "{grid_items} also varies {key}; a key is compared ({per}) or tuned "
                                         "({grid_items}), not both; drop it from one", key=per_key)
    if math.prod(len(v) for v in grid.values()) < 2 and not space:
        point = ", ".join(f"{k}={v[0]}" for k, v in grid.items())
        raise ParamError("grid_items", point, "one grid point; tuning needs at least two to choose between; "
                                              "add values, e.g. {grid_items} train.learning_rate=0.0003,0.001,0.003")
    return grid, space


def _check_search(per_key: str, grid: dict, space: dict, trials: int) -> None:
    """An Optuna search: Optuna installed, at least 2 trials, each range a key of its own."""
    _optuna()
    if trials < 2:
        raise ParamError("trials", trials, "one trial chooses nothing; give at least 2 trials per value")
    for k in space:
        if k == "seed":
            raise ParamError("ranges", "seed", "seeds are set by {tune_seeds} and {confirm_seeds}; drop the range")
        if k == per_key or k in grid:
            raise ParamError("ranges", k, "{key} is also in {per} or {grid_items}; a key is compared, listed or "
                                          "searched, once", key=k)


def _seeds(tune_seeds: str | None, confirm_seeds: str | None, target, max_seeds) -> tuple[list[int], list[int]]:
    """(tuning seeds, confirmation seeds): the confirmation seeds fresh against the tuning
    ones; with a target (--seeds-until) up to max_seeds of them, else the listed seeds
    (default 3); missing seeds continue after every seed listed so far."""
    tseeds = parse_seeds(tune_seeds, "tune_seeds") or list(DEFAULT_TUNE_SEEDS)
    cseeds = parse_seeds(confirm_seeds, "confirm_seeds")
    both = [s for s in cseeds or () if s in tseeds]
    if both:
        raise ParamError(
            "confirm_seeds", confirm_seeds, "seed{s} {both} {are} ({tune_seeds} {tuning}); their scores chose the "
            "point and are biased upward, so confirmation needs fresh seeds; pick seeds not in {tune_seeds}",
            s="s" * (len(both) > 1), both=", ".join(map(str, both)), tuning=",".join(map(str, tseeds)),
            are="are also tuning seeds" if len(both) > 1 else "is also a tuning seed")
    n = (max_seeds or len(cseeds or ()) or DEFAULT_CONFIRM_SEEDS) if target is not None else \
        (len(cseeds) if cseeds else DEFAULT_CONFIRM_SEEDS)
    seeds = list(cseeds or [])
    while len(seeds) < n:
        seeds.append(max(seeds + tseeds) + 1)
    return tseeds, seeds[:n]


def _check_against(against) -> None:
    for d in against:
        if not Path(d).expanduser().is_dir():
            raise ParamError("against", d, "no such folder; pass a folder of runs the confirmation seeds must be "
                                           "fresh against, e.g. {against} results/")


def _check_members(spec: TuneSpec) -> None:
    """Every member's config is checked, and no folder of an earlier tune changes phase,
    before any folder is created; with Optuna, the space's corners (each grid value, each
    range end) are valid configs."""
    if spec.trials is not None:
        n_corners = max([2, *map(len, spec.grid.values())])
        corners = [{**{k: vals[i % len(vals)] for k, vals in spec.grid.items()},
                    **{k: (lo, hi)[i % 2] for k, (lo, hi, _) in spec.ranges.items()}} for i in range(n_corners)]
        spec.members_at([(v, c) for v in spec.per_values for c in corners], create=False)
        return
    for m in spec.tuning_members(create=False):
        check_role(m, "tuning")
    for m in spec._prepare({"seed": spec.confirm_seeds, **spec.grid, spec.per_key: spec.per_values}, create=False):
        check_role(m, "confirmation")


# ----------------------------------------------------------------------------- selection


@dataclass
class Record:
    """What selection sees of one tuning run: its config and summary.json without any
    test figure (VIEW_KEYS)."""

    path: Any
    config: dict  # flattened
    view: dict


def view_of(summary: dict | None) -> dict:
    return {k: v for k, v in (summary or {}).items() if k in VIEW_KEYS}


def read_records(run_dirs) -> list[Record]:
    """The tuning run folders as Records (corrupt files raise NormbenchError naming them)."""
    from normbench.analysis.runs import load_run

    out = []
    for d in run_dirs:
        run = load_run(d)
        out.append(Record(run.path, run.config, view_of(run.summary)))
    return out


@dataclass
class Cell:
    """One (per value, grid point) on the tuning seeds."""

    per: Any
    point: dict
    scores: dict = field(default_factory=dict)  # completed seed -> select metric
    diverged: list = field(default_factory=list)  # seeds whose run diverged (or failed)
    missing: list = field(default_factory=list)  # seeds not finished, or without a score
    steps: int = 0  # optimizer steps allotted to its finished runs (epochs x steps per epoch)

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else math.nan

    @property
    def eligible(self) -> bool:
        """Every tuning seed completed with a score: a point where a seed diverged is not chosen."""
        return bool(self.scores) and not self.diverged and not self.missing


@dataclass
class Choice:
    per: Any
    cell: Cell | None  # None: no eligible point
    ties: list = field(default_factory=list)  # other eligible cells with the same mean
    edges: list = field(default_factory=list)  # "the largest train.learning_rate tried (0.01)"


@dataclass
class Selection:
    spec: TuneSpec
    cells: list[Cell]
    choices: list[Choice]

    @property
    def finished(self) -> bool:
        return not any(c.missing for c in self.cells)

    def budget(self) -> dict:
        """per value -> (finished tuning runs, optimizer steps allotted to them)."""
        out = {}
        for c in self.cells:
            runs, steps = out.get(canonical(c.per), (0, 0))
            out[canonical(c.per)] = (runs + len(c.scores) + len(c.diverged), steps + c.steps)
        return out

    def chosen(self) -> list[tuple[Any, dict]]:
        return [(ch.per, ch.cell.point) for ch in self.choices if ch.cell is not None]


def select(records: list[Record], spec: TuneSpec, pairs=None) -> Selection:
    """For each --per value, the grid point with the best mean of spec.select over the
    tuning seeds (a pure function of the records: the same folders give the same choice).
    Only points where every tuning seed completed are chosen; of tied means the first in
    grid order is kept and the others listed; a chosen value at the end of a numeric grid
    key's range is an edge (the best may lie beyond it). `pairs`: the cells (default
    spec.pairs()), in order."""
    from normbench.analysis.results import METRICS, value_order

    higher = METRICS[spec.select]
    seeds = {canonical(s) for s in spec.tune_seeds}
    cells = [Cell(v, p) for v, p in (spec.pairs() if pairs is None else pairs)]
    index = {(canonical(c.per), canonical(c.point)): c for c in cells}
    for r in records:
        if canonical(r.config.get("seed")) not in seeds:
            continue
        point = {k: r.config.get(k) for k in spec.keys}
        cell = index.get((canonical(r.config.get(spec.per_key)), canonical(point)))
        if cell is None:
            continue
        status, score = r.view.get("status"), r.view.get(spec.select)
        seed = r.config.get("seed")
        if status in ("completed", "diverged", "failed") and isinstance(r.view.get("epochs"), int) \
                and isinstance(r.view.get("steps_per_epoch"), int):
            cell.steps += r.view["epochs"] * r.view["steps_per_epoch"]
        if status == "completed" and isinstance(score, (int, float)) and math.isfinite(score):
            cell.scores[seed] = float(score)
        elif status in ("diverged", "failed"):
            cell.diverged.append(seed)
        else:
            cell.missing.append(seed)
    for c in cells:  # seeds with no folder at all are missing too
        seen = {canonical(s) for s in [*c.scores, *c.diverged, *c.missing]}
        c.missing += [s for s in spec.tune_seeds if canonical(s) not in seen]
    choices = []
    for v in spec.per_values:
        ok = [c for c in cells if canonical(c.per) == canonical(v) and c.eligible]
        if not ok:
            choices.append(Choice(v, None))
            continue
        best = max(ok, key=lambda c: c.mean) if higher else min(ok, key=lambda c: c.mean)
        best = next(c for c in ok if abs(c.mean - best.mean) <= TIE)  # the first in grid order
        ties = [c for c in ok if c is not best and abs(c.mean - best.mean) <= TIE]
        edges = _range_edges(spec, best.point)
        for k, values in spec.grid.items():
            nums = [x for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if len(nums) < 2 or len(nums) != len(values):
                continue  # an optimizer name has no edge
            ordered = sorted(nums, key=value_order)
            if best.point[k] == ordered[0]:
                edges.append(f"the smallest {k} tried ({show_value(ordered[0])})")
            elif best.point[k] == ordered[-1]:
                edges.append(f"the largest {k} tried ({show_value(ordered[-1])})")
        choices.append(Choice(v, best, ties, edges))
    return Selection(spec, cells, choices)


def _range_edges(spec: TuneSpec, point: dict) -> list[str]:
    """--optuna ranges: a chosen value in the outer 5 % of its range (of its logarithm
    for a log range) is at the edge."""
    out = []
    for k, (low, high, log) in spec.ranges.items():
        f = (lambda x: math.log(x)) if log else (lambda x: x)
        share = (f(point[k]) - f(low)) / (f(high) - f(low))
        if share <= 0.05:
            out.append(f"near the lowest {k} searched ({show_value(low)})")
        elif share >= 0.95:
            out.append(f"near the highest {k} searched ({show_value(high)})")
    return out


def selection_of(spec: TuneSpec) -> Selection:
    """Select from the tuning run folders as they are on disk (nothing is written)."""
    pairs = spec.pairs()
    members = spec.members_at(pairs, create=False) if spec.trials is not None else spec.tuning_members(create=False)
    dirs = [m.run_dir for m in members if (m.run_dir / runfolder.CONFIG).exists()]
    return select(read_records(dirs), spec, pairs)


def _point_label(point: dict) -> str:
    from normbench.analysis.results import short_names

    short = short_names(list(point))
    return ", ".join(f"{short[k]}={show_value(v)}" for k, v in point.items())


def format_selection(sel: Selection) -> list[str]:
    """The tuning table (mean of the select metric per grid point and per value, * the
    selected point), the selected point per value with ties and edges, and the budget."""
    spec = sel.spec
    seeds = ", ".join(map(str, spec.tune_seeds))
    lines = [f"tuning table: mean {spec.select} over tuning seeds {seeds} (validation split; * = selected, "
             f"(n) = seeds when not all completed)"]
    chosen = {(canonical(ch.per), canonical(ch.cell.point)) for ch in sel.choices if ch.cell is not None}
    if spec.trials is not None:
        return lines + _trial_table(sel, chosen) + _choices(sel)
    header = ["grid point", *(show_value(v) for v in spec.per_values)]
    rows = []
    for p in spec.points():
        row = [_point_label(p)]
        for v in spec.per_values:
            c = next(c for c in sel.cells if canonical(c.per) == canonical(v) and canonical(c.point) == canonical(p))
            row.append(_cell_text(c, len(spec.tune_seeds)) + (" *" if (canonical(v), canonical(p)) in chosen else "  "))
        rows.append(row)
    return lines + _aligned(header, rows, left=1) + _choices(sel)


def _cell_text(c: Cell, n_all: int) -> str:
    if c.diverged:
        return f"diverged {len(c.diverged)}/{n_all}"
    if not c.scores:
        return "not run" if len(c.missing) == n_all else "n/a"
    return f"{c.mean:.4f}" + (f" ({len(c.scores)})" if len(c.scores) != n_all else "")


def _aligned(header, rows, left: int) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header, ["-" * w for w in widths], *rows]]


def _trial_table(sel: Selection, chosen) -> list[str]:
    """--optuna: one row per trial, per value, in the order of the trial's point."""
    from normbench.analysis.results import value_order

    spec = sel.spec
    header = [spec.per_key.split(".")[-1], "trial point", spec.select]
    rows = []
    for v in spec.per_values:
        cells = sorted((c for c in sel.cells if canonical(c.per) == canonical(v)),
                       key=lambda c: [value_order(c.point[k]) for k in spec.keys])
        for c in cells:
            rows.append([show_value(v), _point_label(c.point), _cell_text(c, len(spec.tune_seeds))
                         + (" *" if (canonical(v), canonical(c.point)) in chosen else "  ")])
    return _aligned(header, rows, left=2)


def _choices(sel: Selection) -> list[str]:
    spec, lines = sel.spec, []
    lines.append(f"selected (best mean {spec.select} on the tuning seeds; no test figure is read):")
    chose, verdict = endpoint(spec.select), endpoint(spec.metric, spec.cfg.train.eval)
    if verdict is not None and chose != verdict:
        lines.append(f"  note: endpoints differ: selected on {spec.select} (the {chose} epoch) while the verdict reads "
                     f"{spec.metric} (the {verdict} epoch's weights); a point chosen on one endpoint need not be best "
                     f"on the other: --select {default_select(spec.metric, spec.cfg.train.eval)} matches --metric")
    for ch in sel.choices:
        name = f"{spec.per_key}={show_value(ch.per)}"
        if ch.cell is None:
            lines.append(f"  {name}: no grid point where every tuning seed completed; widen the grid or check the runs")
            continue
        text = f"  {name}: {_point_label(ch.cell.point)} ({spec.select} {ch.cell.mean:.4f})"
        if ch.ties:
            text += (f"; tie with {'; '.join(_point_label(c.point) for c in ch.ties)} "
                     f"(same mean): the first in {'trial' if spec.trials is not None else 'grid'} order is kept")
        if ch.edges:
            text += f"; at the grid's edge: {' and '.join(ch.edges)}, so the best may lie beyond it: widen the grid"
        lines.append(text)
    budget = sel.budget()
    per_value = {v: budget.get(canonical(v), (0, 0)) for v in spec.per_values}
    if len(set(per_value.values())) == 1:
        runs, steps = next(iter(per_value.values()))
        n_seeds = f"{len(spec.tune_seeds)} seed{'s' * (len(spec.tune_seeds) != 1)}"
        what = f"{spec.trials} Optuna trials" if spec.trials is not None else f"{len(spec.points())} points"
        lines.append(f"budget: every {spec.per_key.split('.')[-1]} got {runs} tuning runs ({what} x {n_seeds}), "
                     f"{steps} optimizer steps in all")
    else:
        lines.append("budget: NOT EQUAL so far: " + "; ".join(
            f"{show_value(v)} {r} runs, {s} optimizer steps" for v, (r, s) in per_value.items()))
    return lines


# ----------------------------------------------------------------------------- confirmation


@dataclass
class ConfirmPlan:
    """The confirmation members: each --per value at its selected point, on the fresh
    seeds. `members(k)` gives the first k seeds (as sweep.SeedPlan, so sweep_until,
    rounds_done and describe_until run its rounds)."""

    spec: TuneSpec
    chosen: list  # [(per value, point)]
    seeds: list[int]
    skipped: dict = field(default_factory=dict)  # seed -> a run folder that ran it at a chosen point already
    unconfirmed: list = field(default_factory=list)  # per values with no point to confirm (every one diverged)

    def members(self, k: int, create: bool = True) -> list[sw.Member]:
        # seed by seed: a round stopped early has every value of its first seeds
        return self.spec.members_at(self.chosen, create, self.seeds[:k], "confirmation")


def confirm_plan(sel: Selection) -> ConfirmPlan:
    """The confirmation members: seeds fresh against the tuning seeds and against every
    run the tune is shown (`used_seeds`) at a selected point, the same seeds for every
    value (so they pair by seed). Default seeds that ran already are skipped (the plan's
    `skipped` says where); seeds given with --confirm-seeds that ran already are refused."""
    spec = sel.spec
    missing = [ch.per for ch in sel.choices if ch.cell is None]
    if missing and len(missing) == len(sel.choices):
        raise NormbenchError(unconfirmed_line(spec, missing))
    chosen = sel.chosen()
    used = used_seeds(spec, chosen)
    if spec.seeds_given:
        clash = [s for s in spec.confirm_seeds if s in used]
        if clash:
            s = clash[0]
            raise WordedError(
                "{confirm_seeds}: seed {seed} already ran at a selected point ({run}); that run is not a fresh draw "
                "(compare would count it twice), so pick seeds no run at these points used, or leave {confirm_seeds} "
                "out to skip them", seed=s, run=used[s])
        seeds = list(spec.confirm_seeds)
    else:
        seeds, s = [], min(spec.confirm_seeds)
        while len(seeds) < len(spec.confirm_seeds):
            if s not in used and s not in spec.tune_seeds:
                seeds.append(s)
            s += 1
    skipped = {s: used[s] for s in sorted(used) if s < max(seeds) and s not in spec.tune_seeds}
    spec.confirm_seeds = seeds  # role.json records the seeds used
    plan = ConfirmPlan(spec, chosen, seeds)
    plan.skipped = skipped
    plan.unconfirmed = missing
    return plan


def unconfirmed_line(spec, missing: list) -> str:
    """Why the `missing` per values have no confirmation: no grid point of theirs where
    every tuning seed completed. The others are confirmed and compared without them."""
    names = ", ".join(f"{spec.per_key}={show_value(v)}" for v in missing)
    return (f"{names}: no grid point where every tuning seed completed (the others diverged or failed); widen the "
            "grid toward safer values, or delete the failed folders to retrain them")


def _point_key(flat: dict, per_key: str | None = None) -> str:
    """A run's point: its flat config without the seed and the keys that do not train
    (normbench.store.identity.not_training: name, output, sweep, role, data.path)."""
    from normbench.store import identity

    return canonical({k: v for k, v in sorted(flat.items()) if k != "seed" and not identity.not_training(k)})


def used_seeds(spec: TuneSpec, chosen: list) -> dict:
    """seed -> a run folder that already ran it at one of the `chosen` (per value, point)s,
    among the runs the tune is shown: its output folder and --against folders, except
    this tune's own confirmation runs (the ones it resumes)."""
    from normbench.schema.config import load_run_yaml, resolve_flat
    from normbench.schema.config import dump_yaml
    from normbench.analysis.runs import find_run_dirs, load_runs

    points = {}
    for m in spec.members_at(chosen, create=False, seeds=[spec.confirm_seeds[0]], role="confirmation"):
        points[_point_key(resolve_flat(load_run_yaml(dump_yaml(m.config))))] = m
    own = tune_dir(spec).resolve()
    folders = [Path(spec.output or spec.cfg.output.dir).expanduser(), *(Path(d).expanduser() for d in spec.against)]
    used: dict = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        try:
            find_run_dirs(folder, [])
        except NormbenchError:  # no runs there yet
            continue
        for run in load_runs([folder]):
            if not run.config or run.config.get("seed") is None:
                continue
            if run.config.get("role") == "confirmation" and run.path.resolve().parent == own:
                continue  # this tune's own confirmation run
            if _point_key(run.config) in points:
                used.setdefault(run.config["seed"], run.path)
    return used


# ----------------------------------------------------------------------------- Optuna (--optuna N)

STORAGE = "optuna.db"  # Optuna's own SQLite storage, in the tune folder: a rerun resumes the search
SIGNIFICANT = 3  # a searched float is rounded to this many significant digits (readable run ids)


def tune_dir(spec: TuneSpec) -> Path:
    """<output.dir>/<name>: the folder of the tune's members (and of its Optuna storage)."""
    return Path(spec.output or spec.cfg.output.dir).expanduser() / spec.cfg.name


def _optuna():
    try:
        import optuna
    except ImportError:
        raise WordedError("{trials} needs Optuna; install it with: pip install 'normbench[optuna]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def parse_ranges(items) -> dict:
    """`key=LOW:HIGH[:log]` strings (load_spec's `ranges`) -> {key: (low, high, log)}."""
    out = {}
    for text in items:
        key, sep, raw = text.partition("=")
        parts = raw.split(":")
        log = len(parts) == 3 and parts[2] == "log"
        try:
            if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and not log):
                raise ValueError
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ParamError("ranges", text, "expected key.path=LOW:HIGH or LOW:HIGH:log, "
                                             "e.g. {ranges} train.learning_rate=0.0001:0.03:log") from None
        if not low < high or (log and low <= 0):
            raise ParamError("ranges", text, f"needs LOW < HIGH{' and LOW > 0 on a log scale' if log else ''}")
        out[key.strip()] = (low, high, log)
    return out


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT}g}")


def point_of(spec: TuneSpec, params: dict) -> dict:
    """A trial's parameters as a point: floats of a range rounded (SIGNIFICANT)."""
    return {k: _round(params[k]) if k in spec.ranges else params[k] for k in spec.keys}


def study_name(spec: TuneSpec, v) -> str:
    return f"{spec.per_key}={show_value(v)}"


def _studies(spec: TuneSpec, create: bool) -> dict:
    """per value (canonical) -> its Optuna study; without create, only those that exist."""
    from normbench.analysis.results import METRICS

    optuna = _optuna()
    db = tune_dir(spec) / STORAGE
    if not create and not db.exists():
        return {}
    if create:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise NormbenchError(f"output.dir: cannot create {db.parent} ({e.strerror}); choose a writable folder") from None
    storage = _storage(db)
    out = {}
    for v in spec.per_values:
        name = study_name(spec, v)
        if create:
            out[canonical(v)] = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                               direction="maximize" if METRICS[spec.select] else "minimize")
            if out[canonical(v)].metric_names is None:  # optuna-dashboard names the objective, not "Objective 0"
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    out[canonical(v)].set_metric_names([spec.select])
        else:
            try:
                out[canonical(v)] = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                continue
    return out


_STORAGES: dict = {}


def _storage(db: Path):
    """One Optuna RDBStorage per database file in this process (each opens an engine)."""
    import optuna

    url = f"sqlite:///{db.resolve()}"
    if url not in _STORAGES:
        _STORAGES[url] = optuna.storages.RDBStorage(url)
    return _STORAGES[url]


def _finished(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.FAIL)]


def search_pairs(spec: TuneSpec) -> list[tuple[Any, dict]]:
    """(per value, point) of each finished trial, in trial order (a point tried twice once)."""
    studies = _studies(spec, create=False)
    out, seen = [], set()
    for v in spec.per_values:
        study = studies.get(canonical(v))
        for t in sorted(_finished(study), key=lambda t: t.number) if study else []:
            point = point_of(spec, t.params)
            if (canonical(v), canonical(point)) not in seen:
                seen.add((canonical(v), canonical(point)))
                out.append((v, point))
    return out


def _distributions(spec: TuneSpec) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    d = {k: CategoricalDistribution(list(values)) for k, values in spec.grid.items()}
    d.update({k: FloatDistribution(low, high, log=log) for k, (low, high, log) in spec.ranges.items()})
    return d


def _sampler(spec: TuneSpec, v, n: int):
    """TPE, seeded by the study and how many trials it has: the n-th suggestion is the
    same whether or not the driver was stopped before it (a resumed search continues as
    an uninterrupted one would)."""
    import zlib

    from optuna.samplers import TPESampler

    seed = zlib.crc32(f"{study_name(spec, v)}/{n}".encode())
    return TPESampler(seed=seed, n_startup_trials=min(10, max(2, spec.trials // 3)))


def _label_trials(spec: TuneSpec, studies: dict, batch: list, members: list, trial_ids: dict) -> None:
    """Each trial's run folders (relative to the tune folder) and seeds as user attributes,
    before they train, so optuna-dashboard shows which normbench runs a trial is."""
    import optuna

    base = tune_dir(spec)
    for v, number, point in batch:
        mine = [m for m in members if canonical(m.config.get(spec.per_key)) == canonical(v)
                and all(canonical(m.config.get(k)) == canonical(x) for k, x in point.items())]
        trial = optuna.trial.Trial(studies[canonical(v)], trial_ids[number, canonical(v)])
        trial.set_user_attr("normbench.run_folders", sorted(str(Path(m.run_dir).relative_to(base)) for m in mine))
        trial.set_user_attr("normbench.seeds", sorted(m.config.seed for m in mine))
        trial.set_user_attr("normbench.point", {k: point[k] for k in point})


def run_search(spec: TuneSpec, *, jobs: int = 1, executor=None, fail_fast: bool = False, echo=print) -> list:
    """The tuning phase with --optuna: rounds of one trial per --per value (so every value
    has had the same number of trials at every moment) until each has spec.trials; each
    trial's members are ordinary sweep members on the tuning seeds, its value the mean of
    spec.select over them (a point where a seed diverged is a failed trial). A trial
    asked but not told (the driver stopped) is finished on the rerun with its own
    parameters, so nothing is asked or trained twice."""
    optuna = _optuna()
    from optuna.trial import TrialState

    studies = _studies(spec, create=True)
    dists = _distributions(spec)
    storage = _storage(tune_dir(spec) / STORAGE)
    trial_ids: dict = {}  # (trial number, per value) -> Optuna's trial id (its user attributes are set by id)
    while True:
        batch = []  # (per value, trial number, point)
        for v in spec.per_values:
            study = studies[canonical(v)]
            trials = study.get_trials(deepcopy=False)
            if len(_finished(study)) >= spec.trials:
                continue
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if running:
                number, params, trial_id = running[0].number, running[0].params, running[0]._trial_id
            else:
                asked = optuna.load_study(study_name=study_name(spec, v), storage=storage,
                                          sampler=_sampler(spec, v, len(trials))).ask(dists)
                number, params, trial_id = asked.number, asked.params, asked._trial_id
            batch.append((v, number, point_of(spec, params)))
            trial_ids[number, canonical(v)] = trial_id
        if not batch:
            return []
        done = len(_finished(studies[canonical(batch[0][0])]))
        echo(f"optuna: trial {done + 1} of {spec.trials} for " + "; ".join(
            f"{show_value(v)} at {_point_label(p)}" for v, _, p in batch))
        members = spec.members_at([(v, p) for v, _, p in batch])
        _label_trials(spec, studies, batch, members, trial_ids)
        failures = sw.run_sweep(members, jobs=jobs, executor=executor, fail_fast=fail_fast, echo=echo)
        if failures:
            return failures
        pairs = [(v, p) for v, _, p in batch]
        sel = select(read_records([m.run_dir for m in members]), spec, pairs)
        for (v, number, _), cell in zip(batch, sel.cells):
            study = studies[canonical(v)]
            if cell.eligible:
                study.tell(number, cell.mean)
            else:
                study.tell(number, state=TrialState.FAIL)


def describe_search(spec: TuneSpec) -> list[str]:
    """--dry-run with --optuna: each value's trials so far."""
    studies = _studies(spec, create=False)
    return [f"optuna: {study_name(spec, v)}: {len(_finished(studies[canonical(v)])) if canonical(v) in studies else 0} of "
            f"{spec.trials} trials finished ({tune_dir(spec) / STORAGE})" for v in spec.per_values]


# ----------------------------------------------------------------------------- driver


@dataclass
class TuneResult:
    failures: list  # [(member, error)] of the phase that stopped the tune
    selection: Selection | None = None
    confirmation: list = field(default_factory=list)  # confirmation members
    comparison: Any = None  # results.Comparison of the confirmation runs


def describe(spec: TuneSpec) -> str:
    if spec.trials is not None:
        space = ", ".join([*(f"{k} in {{{', '.join(map(show_value, v))}}}" for k, v in spec.grid.items()),
                           *(f"{k} in [{show_value(lo)}, {show_value(hi)}]{' (log)' if log else ''}"
                             for k, (lo, hi, log) in spec.ranges.items())])
        what = f"{spec.trials} Optuna trials (TPE) over {space}"
        n = len(spec.per_values) * spec.trials * len(spec.tune_seeds)
    else:
        what = f"{len(spec.points())} grid points"
        n = len(spec.per_values) * len(spec.points()) * len(spec.tune_seeds)
    confirm = (f"--seeds-until {spec.target:g} on {spec.metric}, at most {len(spec.confirm_seeds)} seeds"
               if spec.target is not None else f"{len(spec.confirm_seeds)} seed{'s' * (len(spec.confirm_seeds) != 1)} each")
    return (f"tune: {len(spec.per_values)} x {spec.per_key} ({', '.join(map(show_value, spec.per_values))}), "
            f"{what} x {len(spec.tune_seeds)} tuning seed{'s' * (len(spec.tune_seeds) != 1)} ({', '.join(map(str, spec.tune_seeds))})"
            f" = {n} tuning runs{' at most' if spec.trials is not None else ''}, selected on {spec.select}; confirmation on fresh seeds "
            f"({', '.join(map(str, spec.confirm_seeds))}): {confirm}")


def run_tune(spec: TuneSpec, *, jobs: int = 1, executor=None, fail_fast: bool = False, echo=print) -> TuneResult:
    """Tuning, selection, confirmation, comparison (see the module docstring); every
    phase skips what is finished, so running it again continues where it stopped."""
    from normbench.analysis import results, runs, tables

    echo(describe(spec))
    echo("== tuning")
    if spec.trials is not None:
        failures = run_search(spec, jobs=jobs, executor=executor, fail_fast=fail_fast, echo=echo)
    else:
        failures = sw.run_sweep(spec.tuning_members(), jobs=jobs, executor=executor, fail_fast=fail_fast, echo=echo)
    if failures:
        return TuneResult(failures)
    sel = selection_of(spec)
    echo("== selection")
    for line in format_selection(sel):
        echo(line)
    plan = confirm_plan(sel)
    echo(f"== confirmation: fresh seeds at each {spec.per_key}'s selected point (the tuning runs are not averaged in)")
    for line in skipped_lines(plan):
        echo(line)
    unconfirmed = [f"not confirmed, so not compared: {unconfirmed_line(spec, plan.unconfirmed)}"] if plan.unconfirmed else []
    for line in unconfirmed:
        echo(line)
    if spec.target is not None:
        failures, last = sw.sweep_until(plan, spec.target, spec.metric, jobs=jobs, executor=executor,
                                        fail_fast=fail_fast, echo=echo)
        confirmation = plan.members(last.seeds)
    else:
        confirmation = plan.members(len(plan.seeds))
        failures = sw.run_sweep(confirmation, jobs=jobs, executor=executor, fail_fast=fail_fast, echo=echo)
    result = TuneResult(failures, sel, confirmation)
    echo(f"== comparison: {spec.metric} of the confirmation runs only, each {spec.per_key} at its selected point")
    stale = stale_confirmations(spec, confirmation)
    if stale:
        echo(f"note: {len(stale)} confirmation run{'s' * (len(stale) != 1)} in {tune_dir(spec)} at points an earlier "
             f"selection chose (a narrower grid?) are not in this comparison; `compare --role confirmation` would "
             f"include them: move them away, e.g. {stale[0]}")
    try:
        result.comparison = results.compare(runs.load_runs([str(m.run_dir) for m in confirmation]), spec.metric)
    except NormbenchError as e:
        echo(f"(no comparison: {e})")
        return result
    echo(tables.format_comparison(result.comparison, "table").rstrip("\n"))
    for line in unconfirmed:  # again under the table, where the verdict is read
        echo(line)
    return result


def skipped_lines(plan: ConfirmPlan) -> list[str]:
    """The seeds the confirmation skipped because a run the tune is shown ran them at a
    selected point already."""
    if not plan.skipped:
        return []
    seeds = ", ".join(map(str, plan.skipped))
    first = next(iter(plan.skipped.values()))
    return [f"confirmation seeds: {', '.join(map(str, plan.seeds))}; seed{'s' * (len(plan.skipped) != 1)} {seeds} "
            f"skipped: already run at a selected point (e.g. {first}), so not fresh draws"]


def stale_confirmations(spec: TuneSpec, confirmation: list[sw.Member]) -> list:
    """Confirmation run folders of this tune's folder that are not `confirmation`'s (made
    when an earlier, e.g. narrower, grid selected other points)."""
    keep = {m.run_dir.resolve() for m in confirmation}
    d = tune_dir(spec)
    out = []
    for sub in sorted(d.iterdir()) if d.is_dir() else []:
        if sub.is_dir() and sub.resolve() not in keep:
            try:
                role = runfolder.read_role(sub)
            except NormbenchError:
                continue
            if role and role["role"] == "confirmation":
                out.append(sub)
    return out


def dry_run(spec: TuneSpec) -> list[str]:
    """What a tune would do now, from the folders as they are; nothing is created."""
    lines = [describe(spec)]
    if spec.trials is not None:
        lines += describe_search(spec)
        studies = _studies(spec, create=False)
        if any(len(_finished(studies[canonical(v)])) < spec.trials if canonical(v) in studies else True
               for v in spec.per_values):
            return lines + ["selection and confirmation: after the Optuna trials"]
    members = spec.tuning_members(create=False)
    for m in members:
        lines.append(f"{m.state():>11}  tuning        {m.run_dir}")
    sel = selection_of(spec)
    if not sel.finished:
        done = sum(m.status() in sw.FINAL for m in members)
        lines.append(f"selection and confirmation: after the tuning runs ({done} of {len(members)} finished)")
        return lines
    lines += format_selection(sel)
    plan = confirm_plan(sel)
    lines += skipped_lines(plan)
    if plan.unconfirmed:
        lines.append(f"not confirmed, so not compared: {unconfirmed_line(spec, plan.unconfirmed)}")
    if spec.target is not None:
        return lines + sw.describe_until(plan, spec.target, spec.metric)
    for m in plan.members(len(plan.seeds), create=False):
        lines.append(f"{m.state():>11}  confirmation  {m.run_dir}")
    return lines
