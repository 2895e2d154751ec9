"""Tuned comparisons: each norm at its own best setting, chosen on validation, confirmed
on fresh seeds (`normbench tune`).

    normbench tune configs/study/cifar10_tuned.yaml --per model.norm=batch,layer,none \\
        --grid train.learning_rate=0.0003,0.001,0.003,0.01 --tune-seeds 0,1 \\
        --seeds-until 0.01 --max-seeds 10

Three phases, every run an ordinary sweep member (normbench.sweep: its own run folder,
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
from typing import Any

from normbench import NormbenchError, runfolder
from normbench import sweep as sw

# the metrics a tune may select on: measured on the validation split, never on test
VALIDATION_METRICS = ("best_val_accuracy", "last_val_accuracy")
# what selection may read of a tuning run's summary.json: no test figure is in it
VIEW_KEYS = ("status", "epochs", "steps_per_epoch", *VALIDATION_METRICS)
DEFAULT_TUNE_SEEDS = (0, 1)
DEFAULT_CONFIRM_SEEDS = 3  # without --seeds-until: this many fresh seeds per --per value
TIE = 1e-12  # means closer than this are a tie


# ----------------------------------------------------------------------------- the plan


@dataclass
class TuneSpec:
    """A validated tune: the base config, what is compared (--per), what is tuned (--grid),
    the seeds of each phase and the metrics."""

    cfg: Any  # normbench.config.Config, without a sweep: section
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

    def points(self) -> list[dict]:
        """The grid's points, in grid order (the last key varies fastest)."""
        keys = list(self.grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.grid[k] for k in keys))]

    def info(self) -> dict:
        """What role.json records beside the role: how this tune chooses."""
        return {"per": self.per_key, "grid": list(self.grid), "select": self.select, "tune_seeds": self.tune_seeds}

    def tuning_members(self, create: bool = True) -> list[sw.Member]:
        """Every (per value, grid point) x tuning seed; seeds outermost, so a tune stopped
        early has every value at every point of its first seeds."""
        grid = {"seed": self.tune_seeds, **self.grid, self.per_key: self.per_values}
        members = self._prepare(grid, create)
        if create:
            _mark(members, "tuning", self.info())
        return members

    def _prepare(self, grid: dict, create: bool) -> list[sw.Member]:
        try:
            return sw.prepare_members(self.cfg, grid, self.output, self.source, create)
        except NormbenchError as e:  # a bad --per value is named as the --per flag's
            text = str(e)
            if text.startswith(f"--grid {self.per_key}="):
                text = "--per" + text[len("--grid"):]
            raise NormbenchError(text) from None


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
        raise NormbenchError(
            f"{m.run_dir}: an earlier tune made it as a {have['role']} run, this one wants it as a {role} run "
            f"(seed {m.config.seed} changed phase); keep that tune's seeds or tune into another --output")
    return have


def parse_seeds(text: str | None, flag: str) -> list[int] | None:
    """'0,1' -> [0, 1] (repeats dropped); None stays None."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise NormbenchError(f"{flag} {text}: expected seeds as integers >= 0, e.g. {flag} 0,1")
    return list(dict.fromkeys(seeds))


def check_select(select: str) -> None:
    """--select must be a validation metric: selecting on test leaks the test set."""
    from normbench.results import check_metric

    try:
        check_metric(select)
    except NormbenchError:
        raise NormbenchError(f"--select {select}: unknown metric; choose a validation metric: "
                             f"{', '.join(VALIDATION_METRICS)}") from None
    if select.startswith("test_"):
        raise NormbenchError(
            f"--select {select}: a test metric; choosing each norm's point on the test set leaks it into the choice "
            f"and makes the tuned comparison optimistic; select on a validation metric: {', '.join(VALIDATION_METRICS)}")
    if select not in VALIDATION_METRICS:
        raise NormbenchError(f"--select {select}: not a validation metric; select on one of: {', '.join(VALIDATION_METRICS)}")


def load_spec(config_path: str, per: str, grid_items=(), overrides=(), smoke: bool = False, *,
              tune_seeds: str | None = None, confirm_seeds: str | None = None, select: str = "best_val_accuracy",
              metric: str = "test_accuracy", target: float | None = None, max_seeds: int | None = None,
              output: str | None = None) -> TuneSpec:
    """Read and check a tune before anything is created: one line per bad input."""
    from normbench.config import load_config
    from normbench.results import check_metric

    check_select(select)
    check_metric(metric)
    cfg = load_config(config_path, overrides, smoke)
    if cfg.sweep:
        raise NormbenchError(f"{config_path}: has a sweep: section ({', '.join(cfg.sweep)}); tune makes its own grid "
                             f"from --per, --grid and the seeds; remove the section")
    per_grid = sw.parse_grid([per], "--per")
    (per_key, per_values), = per_grid.items()
    per_values = list(dict.fromkeys(per_values))
    if per_key == "seed":
        raise NormbenchError(f"--per {per}: seeds are not compared; they are set by --tune-seeds and --confirm-seeds")
    if len(per_values) < 2:
        raise NormbenchError(f"--per {per}: one value; a tune compares at least two, e.g. --per {per_key}=batch,layer")
    grid = sw.parse_grid(grid_items)
    if not grid:
        raise NormbenchError("--grid: nothing to tune; add e.g. --grid train.learning_rate=0.0003,0.001,0.003,0.01")
    grid = {k: list(dict.fromkeys(v)) for k, v in grid.items()}
    if "seed" in grid:
        raise NormbenchError("--grid seed: seeds are set by --tune-seeds (tuning) and --confirm-seeds (confirmation), "
                             "not the grid; drop it from --grid")
    if per_key in grid:
        raise NormbenchError(f"--per {per_key}: --grid also varies {per_key}; a key is compared (--per) or tuned "
                             f"(--grid), not both; drop it from one")
    n_points = math.prod(len(v) for v in grid.values())
    if n_points < 2:
        point = ", ".join(f"{k}={v[0]}" for k, v in grid.items())
        raise NormbenchError(f"--grid {point}: one grid point; tuning needs at least two to choose between; "
                             f"add values, e.g. --grid train.learning_rate=0.0003,0.001,0.003")
    tseeds = parse_seeds(tune_seeds, "--tune-seeds") or list(DEFAULT_TUNE_SEEDS)
    cseeds = parse_seeds(confirm_seeds, "--confirm-seeds")
    if cseeds is not None:
        both = [s for s in cseeds if s in tseeds]
        if both:
            raise NormbenchError(
                f"--confirm-seeds {confirm_seeds}: seed{'s' * (len(both) > 1)} {', '.join(map(str, both))} "
                f"{'are also tuning seeds' if len(both) > 1 else 'is also a tuning seed'} "
                f"(--tune-seeds {','.join(map(str, tseeds))}); their scores chose the point and are biased upward, "
                f"so confirmation needs fresh seeds; pick seeds not in --tune-seeds")
    # with --seeds-until, up to --max-seeds seeds; without it, the listed seeds (default 3);
    # missing seeds continue after every seed listed so far
    n = (max_seeds or len(cseeds or ()) or DEFAULT_CONFIRM_SEEDS) if target is not None else \
        (len(cseeds) if cseeds else DEFAULT_CONFIRM_SEEDS)
    seeds = list(cseeds or [])
    while len(seeds) < n:
        seeds.append(max(seeds + tseeds) + 1)
    seeds = seeds[:n]
    spec = TuneSpec(cfg, per_key, per_values, grid, tseeds, seeds, select, metric, target, output,
                    f"{config_path} (tune)")
    # every member's config is checked, and no folder of an earlier tune changes phase,
    # before any folder is created
    for m in spec.tuning_members(create=False):
        check_role(m, "tuning")
    for m in spec._prepare({"seed": spec.confirm_seeds, **spec.grid, per_key: per_values}, create=False):
        check_role(m, "confirmation")
    return spec


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
    from normbench import results

    out = []
    for d in run_dirs:
        run = results.load_run(d)
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
            runs, steps = out.get(_key(c.per), (0, 0))
            out[_key(c.per)] = (runs + len(c.scores) + len(c.diverged), steps + c.steps)
        return out

    def chosen(self) -> list[tuple[Any, dict]]:
        return [(ch.per, ch.cell.point) for ch in self.choices if ch.cell is not None]


def _key(v) -> str:
    from normbench.results import _canon

    return _canon(v)


def select(records: list[Record], spec: TuneSpec) -> Selection:
    """For each --per value, the grid point with the best mean of spec.select over the
    tuning seeds (a pure function of the records: the same folders give the same choice).
    Only points where every tuning seed completed are chosen; of tied means the first in
    grid order is kept and the others listed; a chosen value at the end of a numeric grid
    key's range is an edge (the best may lie beyond it)."""
    from normbench.results import METRICS, value_order

    higher = METRICS[spec.select]
    seeds = {_key(s) for s in spec.tune_seeds}
    cells = [Cell(v, p) for v in spec.per_values for p in spec.points()]
    index = {(_key(c.per), _key(c.point)): c for c in cells}
    for r in records:
        if _key(r.config.get("seed")) not in seeds:
            continue
        point = {k: r.config.get(k) for k in spec.grid}
        cell = index.get((_key(r.config.get(spec.per_key)), _key(point)))
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
        seen = {_key(s) for s in [*c.scores, *c.diverged, *c.missing]}
        c.missing += [s for s in spec.tune_seeds if _key(s) not in seen]
    choices = []
    for v in spec.per_values:
        ok = [c for c in cells if _key(c.per) == _key(v) and c.eligible]
        if not ok:
            choices.append(Choice(v, None))
            continue
        best = max(ok, key=lambda c: c.mean) if higher else min(ok, key=lambda c: c.mean)
        best = next(c for c in ok if abs(c.mean - best.mean) <= TIE)  # the first in grid order
        ties = [c for c in ok if c is not best and abs(c.mean - best.mean) <= TIE]
        edges = []
        for k, values in spec.grid.items():
            nums = [x for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if len(nums) < 2 or len(nums) != len(values):
                continue  # an optimizer name has no edge
            ordered = sorted(nums, key=value_order)
            if best.point[k] == ordered[0]:
                edges.append(f"the smallest {k} tried ({_show(ordered[0])})")
            elif best.point[k] == ordered[-1]:
                edges.append(f"the largest {k} tried ({_show(ordered[-1])})")
        choices.append(Choice(v, best, ties, edges))
    return Selection(spec, cells, choices)


def selection_of(spec: TuneSpec) -> Selection:
    """Select from the tuning run folders as they are on disk (nothing is written)."""
    dirs = [m.run_dir for m in spec.tuning_members(create=False) if (m.run_dir / runfolder.CONFIG).exists()]
    return select(read_records(dirs), spec)


def _show(v) -> str:
    from normbench.results import _show as show

    return show(v)


def _point_label(point: dict) -> str:
    from normbench.results import _short_names

    short = _short_names(list(point))
    return ", ".join(f"{short[k]}={_show(v)}" for k, v in point.items())


def format_selection(sel: Selection) -> list[str]:
    """The tuning table (mean of the select metric per grid point and per value, * the
    selected point), the selected point per value with ties and edges, and the budget."""
    spec = sel.spec
    seeds = ", ".join(map(str, spec.tune_seeds))
    lines = [f"tuning table: mean {spec.select} over tuning seeds {seeds} (validation split; * = selected, "
             f"(n) = seeds when not all completed)"]
    chosen = {(_key(ch.per), _key(ch.cell.point)) for ch in sel.choices if ch.cell is not None}
    header = ["grid point", *(_show(v) for v in spec.per_values)]
    rows = []
    for p in spec.points():
        row = [_point_label(p)]
        for v in spec.per_values:
            c = next(c for c in sel.cells if _key(c.per) == _key(v) and _key(c.point) == _key(p))
            n_all = len(spec.tune_seeds)
            if c.diverged:
                text = f"diverged {len(c.diverged)}/{n_all}"
            elif not c.scores:
                text = "not run" if len(c.missing) == n_all else "n/a"
            else:
                text = f"{c.mean:.4f}" + (f" ({len(c.scores)})" if len(c.scores) != n_all else "")
            row.append(text + (" *" if (_key(v), _key(p)) in chosen else "  "))
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    lines.append(f"selected (best mean {spec.select} on the tuning seeds; no test figure is read):")
    for ch in sel.choices:
        name = f"{spec.per_key}={_show(ch.per)}"
        if ch.cell is None:
            lines.append(f"  {name}: no grid point where every tuning seed completed; widen the grid or check the runs")
            continue
        text = f"  {name}: {_point_label(ch.cell.point)} ({spec.select} {ch.cell.mean:.4f})"
        if ch.ties:
            text += (f"; tie with {'; '.join(_point_label(c.point) for c in ch.ties)} "
                     f"(same mean): the first in grid order is kept")
        if ch.edges:
            text += f"; at the grid's edge: {' and '.join(ch.edges)}, so the best may lie beyond it: widen the grid"
        lines.append(text)
    budget = sel.budget()
    per_value = {v: budget.get(_key(v), (0, 0)) for v in spec.per_values}
    if len(set(per_value.values())) == 1:
        runs, steps = next(iter(per_value.values()))
        lines.append(f"budget: every {spec.per_key.split('.')[-1]} got {runs} tuning runs ({len(spec.points())} points "
                     f"x {len(spec.tune_seeds)} seeds), {steps} optimizer steps in all")
    else:
        lines.append("budget: NOT EQUAL so far: " + "; ".join(
            f"{_show(v)} {r} runs, {s} optimizer steps" for v, (r, s) in per_value.items()))
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

    def members(self, k: int, create: bool = True) -> list[sw.Member]:
        spec, out = self.spec, []
        for s in self.seeds[:k]:  # seed by seed: a round stopped early has every value of its first seeds
            for v, point in self.chosen:
                grid = {"seed": [s], **{key: [point[key]] for key in spec.grid}, spec.per_key: [v]}
                out += spec._prepare(grid, create)
        if create:
            _mark(out, "confirmation", {**spec.info(), "confirm_seeds": self.seeds})
        return out


def confirm_plan(sel: Selection) -> ConfirmPlan:
    missing = [ch.per for ch in sel.choices if ch.cell is None]
    if missing:
        names = ", ".join(f"{sel.spec.per_key}={_show(v)}" for v in missing)
        raise NormbenchError(f"{names}: no grid point where every tuning seed completed (the others diverged or "
                             f"failed); widen the grid toward safer values, or delete the failed folders to retrain them")
    return ConfirmPlan(sel.spec, sel.chosen(), sel.spec.confirm_seeds)


# ----------------------------------------------------------------------------- driver


@dataclass
class TuneResult:
    failures: list  # [(member, error)] of the phase that stopped the tune
    selection: Selection | None = None
    confirmation: list = field(default_factory=list)  # confirmation members
    comparison: Any = None  # results.Comparison of the confirmation runs


def describe(spec: TuneSpec) -> str:
    n = len(spec.per_values) * len(spec.points()) * len(spec.tune_seeds)
    confirm = (f"--seeds-until {spec.target:g} on {spec.metric}, at most {len(spec.confirm_seeds)} seeds"
               if spec.target is not None else f"{len(spec.confirm_seeds)} seed{'s' * (len(spec.confirm_seeds) != 1)} each")
    return (f"tune: {len(spec.per_values)} x {spec.per_key} ({', '.join(map(_show, spec.per_values))}), "
            f"{len(spec.points())} grid points x {len(spec.tune_seeds)} tuning seed{'s' * (len(spec.tune_seeds) != 1)} ({', '.join(map(str, spec.tune_seeds))})"
            f" = {n} tuning runs, selected on {spec.select}; confirmation on fresh seeds "
            f"({', '.join(map(str, spec.confirm_seeds))}): {confirm}")


def run_tune(spec: TuneSpec, *, jobs: int = 1, executor=None, fail_fast: bool = False, echo=print) -> TuneResult:
    """Tuning, selection, confirmation, comparison (see the module docstring); every
    phase skips what is finished, so running it again continues where it stopped."""
    from normbench import results, tables

    echo(describe(spec))
    echo("== tuning")
    members = spec.tuning_members()
    failures = sw.run_sweep(members, jobs=jobs, executor=executor, fail_fast=fail_fast, echo=echo)
    if failures:
        return TuneResult(failures)
    sel = selection_of(spec)
    echo("== selection")
    for line in format_selection(sel):
        echo(line)
    plan = confirm_plan(sel)
    echo(f"== confirmation: fresh seeds at each {spec.per_key}'s selected point (the tuning runs are not averaged in)")
    if spec.target is not None:
        failures, last = sw.sweep_until(plan, spec.target, spec.metric, jobs=jobs, executor=executor,
                                        fail_fast=fail_fast, echo=echo)
        confirmation = plan.members(last.seeds)
    else:
        confirmation = plan.members(len(plan.seeds))
        failures = sw.run_sweep(confirmation, jobs=jobs, executor=executor, fail_fast=fail_fast, echo=echo)
    result = TuneResult(failures, sel, confirmation)
    echo(f"== comparison: {spec.metric} of the confirmation runs only, each {spec.per_key} at its selected point")
    try:
        result.comparison = results.compare(results.load_runs([str(m.run_dir) for m in confirmation]), spec.metric)
    except NormbenchError as e:
        echo(f"(no comparison: {e})")
        return result
    echo(tables.format_comparison(result.comparison, "table").rstrip("\n"))
    return result


def dry_run(spec: TuneSpec) -> list[str]:
    """What a tune would do now, from the folders as they are; nothing is created."""
    lines = [describe(spec)]
    members = spec.tuning_members(create=False)
    for m in members:
        status = m.status() or ("running" if m.holder() is not None else "todo")
        lines.append(f"{status:>11}  tuning        {m.run_dir}")
    sel = selection_of(spec)
    if not sel.finished:
        done = sum(m.status() in sw.FINAL for m in members)
        lines.append(f"selection and confirmation: after the tuning runs ({done} of {len(members)} finished)")
        return lines
    lines += format_selection(sel)
    plan = confirm_plan(sel)
    if spec.target is not None:
        return lines + sw.describe_until(plan, spec.target, spec.metric)
    for m in plan.members(len(plan.seeds), create=False):
        status = m.status() or ("running" if m.holder() is not None else "todo")
        lines.append(f"{status:>11}  confirmation  {m.run_dir}")
    return lines
