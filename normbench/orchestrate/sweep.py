"""Sweeps: a grid of configs, each member its own run folder with a stable name.

    normbench sweep configs/cifar10_bn.yaml --grid model.norm=batch,layer,none --grid seed=0,1,2

Every member is prepared up front (validated, folder created, config.yaml written),
then trained by an executor in its own process through the same path as
`normbench run --resume FOLDER`. So a sweep started again skips members whose
summary.json says completed (or diverged: a CPU rerun would diverge again) and continues
the others from their last finished epoch.
A member folder has one owner at a time (normbench.core.runlock): a member locked by another
process is "running elsewhere"; the sweep waits for it and resumes it only if that owner
stopped before the end.

Executors (normbench.orchestrate.executors: the contract, `local` and `ray`) start members and are
polled: `local` runs subprocesses on this machine (they die with the driver); `ray`
sends each member to a Ray cluster.

`sweep_until` adds one seed per group per round until every group's 95 % interval is
narrow enough (`normbench sweep --seeds-until`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from normbench.core.errors import NormbenchError, ParamError, WordedError
from normbench.core.metrics import LEVEL, LEVEL_TEXT  # LEVEL: the level of every interval
from normbench.store import runfolder
from normbench.schema.config import (NAME_MAX, Config, dump_yaml, flatten, from_dict, load_config, parse_override,
                                     path_problem, read_yaml, with_values)
from normbench.orchestrate.executors.base import Elsewhere, Executor, make_executor
from normbench.core.runlock import Busy, holder
from normbench.core.signals import sigterm_raises, signals_deferred

ABBREV = {"model.norm": "norm", "train.batch_size": "bs", "seed": "seed"}


@dataclass
class Member:
    run_id: str
    config: Config
    run_dir: Path

    def status(self) -> str | None:
        """Status in summary.json, or None when the member has not finished."""
        return runfolder.status(self.run_dir)

    def state(self) -> str:
        """What a dry run shows: its status, else "running" (another process holds it) or "todo"."""
        return self.status() or ("running" if self.holder() is not None else "todo")

    def holder(self) -> int | None:
        """The pid of another process training this member, else None."""
        return holder(self.run_dir)


def parse_grid(items: list[str] | tuple[str, ...], param: str = "grid_items") -> dict[str, list]:
    """`key=a,b,c` strings -> {key: [a, b, c]} with YAML-typed values; errors are ParamErrors
    of `param`, the caller's parameter the strings came in (load_sweep's grid_items)."""
    grid = {}
    for text in items:
        try:
            key, value = parse_override(text)
        except NormbenchError:
            raise ParamError(param, text, f"expected key.path=a,b,c, e.g. {{{param}}} model.norm=batch,layer") from None
        raw = text.partition("=")[2]
        values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()] if isinstance(value, (str, int, float)) else value
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise ParamError(param, text, f"no values; write {{{param}}} {{key}}=a,b,c", key=key)
        grid[key] = values
    return grid


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def run_id_for(cfg: Config, grid_keys) -> str:
    """Readable, stable id: cifar10_cnn-norm=batch-bs=64-seed=0 (+ any other grid key)."""
    parts = [cfg.model.label]
    keys = ["model.norm", "train.batch_size"] + [k for k in grid_keys if k not in ABBREV] + ["seed"]
    for k in keys:
        name = ABBREV.get(k, k.split(".")[-1])
        parts.append(f"{name}={_fmt(cfg.get(k))}")
        if k == "model.norm" and cfg.model.norms and not any(g.startswith("model.norms") for g in grid_keys):
            parts.append("norms=" + "+".join(f"{slot}.{norm}" for slot, norm in sorted(cfg.model.norms.items())))
    return "-".join(parts).replace("/", "_")


def expand(cfg: Config, grid: dict[str, list], source: str = "<sweep>") -> list[Config]:
    """The cartesian product of the config's `sweep:` section and `grid` (grid wins)."""
    full = {**cfg.sweep, **grid}
    keys = list(full)
    configs = []
    base = dataclasses.replace(cfg, sweep={})
    for combo in itertools.product(*(full[k] for k in keys)):
        # errors name `--grid KEY=VALUE` for the flag's values, the config file for its sweep: section
        configs.append(with_values(base, dict(zip(keys, combo)), source, flagged=set(grid)))
    return configs


def prepare_members(cfg: Config, grid: dict[str, list], output: str | None = None, source: str = "<sweep>",
                    create: bool = True) -> list[Member]:
    """Validate every member and create its folder (config.yaml) before any training;
    `create=False` (--dry-run) writes nothing."""
    if output:
        problem = path_problem(output)
        if problem:
            raise ParamError("output", repr(output), "{problem}", problem=problem)
        where = Path(output).expanduser()
        if where.exists() and not where.is_dir():
            raise ParamError("output", output, "is a file, not a folder; choose another {output} or move the file")
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=output))
    keys = list({**cfg.sweep, **grid})
    members, seen = [], set()
    for c in expand(cfg, grid, source):
        rid = run_id_for(c, keys)
        if len(rid.encode("utf-8", "surrogateescape")) > NAME_MAX:
            long = max((k for k in keys if k in grid), key=lambda k: len(_fmt(c.get(k))), default=None)
            reason = (f"the member folder name {rid[:40]!r}... would be {len(rid.encode())} bytes, "
                      f"more than the {NAME_MAX} a folder name may have; use shorter values")
            raise ParamError("grid", long, "{reason}", reason=reason) if long else NormbenchError(f"sweep:: {reason}")
        if rid in seen:
            continue
        seen.add(rid)
        run_dir = runfolder.run_path(c.output.dir, c.name, rid)
        cfg_path = run_dir / runfolder.CONFIG
        if cfg_path.exists():
            new = flatten(c.to_dict())
            was = flatten(from_dict(read_yaml(cfg_path), str(cfg_path)).to_dict())
            diff = [k for k in {**was, **new} if was.get(k) != new.get(k) and not k.startswith(("output.", "sweep", "compare."))]
            if diff:
                raise WordedError("{run_dir}: made with a different config ({keys} differ); delete that folder or "
                                  "sweep into another {output}", run_dir=run_dir, keys=", ".join(diff[:3]))
        elif create:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise NormbenchError(f"output.dir: cannot create {run_dir} ({e.strerror}); choose a writable folder") from None
            runfolder.write_config(run_dir, dump_yaml(c))
            runfolder.write_command(run_dir)
        members.append(Member(rid, c, run_dir))
    return members


# ----------------------------------------------------------------------------- driver


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


FINAL = ("completed", "diverged", "failed")  # statuses that another owner's run may end with


def run_sweep(members: list[Member], *, jobs: int = 1, executor: Executor | None = None, fail_fast: bool = False, echo=print,
              finished: tuple[str, ...] = FINAL[:2], status_line=None, note=None) -> list[tuple[Member, str]]:
    """Train every member whose status is not in `finished`, `jobs` at a time. Returns
    [(member, error)] failures. A diverged member is finished by default: its result is
    the divergence (a CPU run repeats it exactly), so a sweep started again keeps it; delete
    its folder to train it again. Failed members are trained again. A member locked by
    another process is not trained here: the sweep waits for it, and resumes it only if
    that process stopped before the end.
    SIGTERM of the driver is handled like Ctrl-C: the running members are sent SIGTERM
    (they save their state) and waited for, then KeyboardInterrupt is raised.
    Progress: each finished member's line says done / running / left and the ETA, then
    `note()` when given; `status_line(text)`, when given, gets the same counts with each running
    member's epoch about once a second (normbench.orchestrate.progress shows it on a terminal)."""
    run = _Run(members, executor or make_executor("local"), jobs, fail_fast, echo, finished, status_line, note)
    run.announce()
    restore_sigterm = sigterm_raises()
    try:
        while run.todo or run.running or run.waiting:
            run.start_members()
            if run.stopping() or not (run.running or run.waiting or run.todo):
                break
            time.sleep(0.2)
            run.show_status()
            run.check_waiting()
            run.collect_finished()
    except KeyboardInterrupt:
        _stop(run.executor, run.running)
        raise
    finally:
        restore_sigterm()
    echo(f"sweep: finished in {_duration(time.time() - run.t0)}; {len(run.failures)} failed")
    return run.failures


class _Run:
    """One run_sweep's state and its steps: the members to start, running (run id ->
    (member, handle, start time)), waiting for another process (run id -> member), failed."""

    def __init__(self, members, executor, jobs, fail_fast, echo, finished, status_line, note):
        self.members, self.executor, self.jobs, self.fail_fast, self.echo = members, executor, jobs, fail_fast, echo
        self.finished, self.status_line, self.note = finished, status_line, note
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.threads = max(1, cores // jobs)
        statuses = [m.status() for m in members]
        self.todo = [m for m, st in zip(members, statuses) if st not in finished]
        self.kept_diverged = sum(st == "diverged" and st in finished for st in statuses)
        self.skipped = len(members) - len(self.todo) - self.kept_diverged
        self.running: dict = {}
        self.waiting: dict[str, Member] = {}  # locked by another process
        self.failures: list[tuple[Member, str]] = []
        self.done, self.durations, self.t0, self.shown = 0, [], time.time(), 0.0
        self.noted = note() if note else ""  # read again only when a member finishes

    def announce(self) -> None:
        diverged = (f"{self.kept_diverged} diverged earlier (kept: a rerun diverges the same way; delete a member's "
                    f"folder to train it again), " if self.kept_diverged else "")
        self.echo(f"sweep: {len(self.members)} members, {self.skipped} already completed, {diverged}{len(self.todo)} to "
                  f"run, {self.jobs} at a time ({self.threads} threads each, {self.executor.name})")

    def stopping(self) -> bool:
        """--fail-fast after a failure: start nothing more."""
        return self.fail_fast and bool(self.failures)

    def elsewhere(self, m: Member, why: str) -> None:
        self.waiting[m.run_id] = m
        self.echo(f"running elsewhere {m.run_id}: {why}; waiting for it")

    def start_members(self) -> None:
        """Start members until `jobs` run; a finished or locked one is not started."""
        while self.todo and len(self.running) < self.jobs and not self.stopping():
            m = self.todo.pop(0)
            if m.status() in self.finished:
                self.echo(f"completed elsewhere {m.run_id}")
                continue
            pid = m.holder()
            if pid is not None:
                self.elsewhere(m, f"pid {pid or 'unknown'}")
                continue
            # a Ctrl-C or SIGTERM that lands while a member starts takes effect once it is
            # registered, so that _stop ends it too
            with signals_deferred():
                try:
                    self.running[m.run_id] = (m, self.executor.submit(m, self.threads), time.time())
                except Busy as e:
                    self.elsewhere(m, f"pid {e.pid or 'unknown'}")

    def show_status(self) -> None:
        if self.status_line and time.time() - self.shown >= 1:
            self.shown = time.time()
            self.status_line(_status_text(self.done, len(self.members) - self.skipped, self.running, len(self.todo),
                                          self.durations, self.jobs, self.noted))

    def check_waiting(self) -> None:
        """A member another process released: finished there, or resumed here."""
        for rid, m in list(self.waiting.items()):
            if m.holder() is not None:
                continue
            del self.waiting[rid]
            status = m.status()
            if status in self.finished:
                self.echo(f"completed elsewhere {m.run_id}")
            elif status in FINAL:
                self.failures.append((m, f"finished elsewhere with status {status}"))
                self.echo(f"FAILED {m.run_id}: finished elsewhere with status {status} ({m.run_dir})")
            else:  # its owner stopped before the end: resume it here
                self.todo.append(m)

    def collect_finished(self) -> None:
        """Each member that ended: its result line; with fail_fast a failure stops the rest."""
        for rid, (m, handle, started) in list(self.running.items()):
            if not self.executor.poll(handle):
                continue
            del self.running[rid]
            error = self.executor.result(m, handle)
            self.noted = self.note() if self.note else ""
            if isinstance(error, Elsewhere):
                self.elsewhere(m, error)
                continue
            self.done += 1
            self.durations.append(time.time() - started)
            if self.report(m, error) and self.fail_fast:
                _stop(self.executor, self.running)
                self.todo.clear()
                break

    def report(self, m: Member, error: str | None) -> bool:
        """The line of a member that ended (its status, or why it failed); whether it failed."""
        status = m.status()
        if error is None and status not in self.finished:
            error = f"finished with status {status}"
        left = len(self.todo)
        eta = sum(self.durations) / len(self.durations) * (left + len(self.running)) / self.jobs
        progress = (f"[{self.done}/{len(self.members) - self.skipped} done, {len(self.running)} running, {left} left, "
                    f"ETA {_duration(eta)}{'; ' + self.noted if self.noted else ''}]")
        if error:
            self.failures.append((m, error))
            self.echo(f"{progress} FAILED {m.run_id}: {error} ({m.run_dir})")
            return True
        acc = (runfolder.read_summary(m.run_dir) or {}).get("test_accuracy")
        self.echo(f"{progress} {status} {m.run_id}: test_accuracy {acc:.4f} in {_duration(self.durations[-1])}"
                  if acc is not None else f"{progress} {status} {m.run_id}")
        return False


def _where(m: Member) -> tuple[str, float]:
    """A running member's place ("epoch 2/5 step 120/313") and the share of its epochs done."""
    epochs, done = m.config.train.epochs, runfolder.count_epochs(m.run_dir)
    p = runfolder.read_progress(m.run_dir)
    if p and p["epoch"] == done + 1 and p.get("steps"):
        return f"epoch {p['epoch']}/{epochs} step {p['step']}/{p['steps']}", (done + p["step"] / p["steps"]) / epochs
    return f"epoch {done}/{epochs}", done / epochs if epochs else 0.0


def _status_text(done, total, running, left, durations, jobs, noted, now: float | None = None) -> str:
    """The live status line: counts, ETA, each running member's epoch and step. The ETA
    moves with the running members: each one's time to go is its elapsed time over its
    share done (epochs and steps), and a member not started takes the mean of the finished
    ones and those estimates."""
    now = time.time() if now is None else now
    places, to_go, totals, unknown = [], 0.0, list(durations), 0
    for m, _, started in running.values():
        place, share = _where(m)
        places.append(f"{m.run_id} {place}")
        if share > 0:
            whole = (now - started) / share  # this member's time, start to end, at its pace so far
            totals.append(whole)
            to_go += max(0.0, whole - (now - started))
        else:
            unknown += 1  # no step yet: counted as a member to come
    eta = ""
    if totals:
        mean = sum(totals) / len(totals)
        eta = f", ETA {_duration((to_go + mean * (left + unknown)) / jobs)}"
    return (f"sweep: {done}/{total} done, {len(running)} running, {left} left{eta}{'; ' + noted if noted else ''}"
            f"{' | ' + ', '.join(places) if places else ''}")


def _stop(executor: Executor, running: dict) -> None:
    """Cancel every running member, then wait for each to save its state and end."""
    for _, h, _ in running.values():
        executor.cancel(h)
    for _, h, _ in running.values():
        executor.wait(h)
    running.clear()


def load_sweep(config_path: str, overrides=(), grid_items=(), smoke: bool = False, output: str | None = None,
               create: bool = True) -> list[Member]:
    cfg, grid, source = _load(config_path, overrides, grid_items, smoke)
    if not cfg.sweep and not grid:
        raise WordedError("{path}: nothing to sweep; add {grid_items} key=a,b or a sweep: section", path=config_path)
    return prepare_members(cfg, grid, output, source=source, create=create)


def _load(config_path, overrides, grid_items, smoke):
    cfg = load_config(config_path, overrides, smoke)
    return cfg, parse_grid(grid_items), f"{config_path} (sweep)"


# ----------------------------------------------------------------------------- --seeds-until

FIRST_ROUND = 2  # seeds per group in the first round: the fewest that give an interval


def group_of(member: Member) -> str:
    """A member's group: its run id without the seed (run ids end with -seed=N)."""
    return member.run_id.rsplit("-seed=", 1)[0]


@dataclass
class SeedPlan:
    """A sweep without its seed key: `members(k)` are its groups x the first k seeds."""

    cfg: Config
    grid: dict
    seeds: list[int]
    output: str | None
    source: str

    def members(self, k: int, create: bool = True) -> list[Member]:
        return prepare_members(self.cfg, {**self.grid, "seed": self.seeds[:k]}, self.output, self.source, create)


@dataclass
class Round:
    seeds: int  # seeds per group
    values: dict[str, list[float]]  # group -> the metric over its completed runs
    unfinished: int  # members of these seeds not finished (no final status)

    @property
    def widths(self) -> dict[str, float]:
        """group -> half-width of its 95 % t-interval (stats.mean_ci); inf below 2 values."""
        from normbench.analysis.stats import mean_ci

        widths = {g: mean_ci(v, LEVEL).half_width for g, v in self.values.items()}
        return {g: math.inf if math.isnan(w) else w for g, w in widths.items()}

    @property
    def completed(self) -> dict[str, int]:
        return {g: len(v) for g, v in self.values.items()}

    def precise(self, target: float) -> bool:
        """Every member finished and every group precise enough (stats.precise_enough)."""
        from normbench.analysis.stats import precise_enough

        return not self.unfinished and all(precise_enough(v, target, LEVEL) for v in self.values.values())


def plan_seeds(config_path: str, max_seeds: int, overrides=(), grid_items=(), smoke: bool = False,
               output: str | None = None) -> SeedPlan:
    """The seeds come from the sweep's seed list (in its order; seeds already run are
    reused) and continue after its largest; without one, from the config's seed."""
    cfg, grid, source = _load(config_path, overrides, grid_items, smoke)
    listed = list(grid.pop("seed", None) or cfg.sweep.get("seed") or [])
    cfg = dataclasses.replace(cfg, sweep={k: v for k, v in cfg.sweep.items() if k != "seed"})
    seeds = list(dict.fromkeys(listed)) or [cfg.seed]
    while len(seeds) < max_seeds:
        seeds.append(max(seeds) + 1)
    return SeedPlan(cfg, grid, seeds[:max_seeds], output, source)


def measure(members: list[Member], metric: str, k: int) -> Round:
    values: dict[str, list[float]] = {}
    unfinished = 0
    for m in members:
        values.setdefault(group_of(m), [])
        try:
            s = runfolder.read_summary(m.run_dir) or {}
        except NormbenchError:
            s = {}  # unreadable: not finished (a run started again rewrites it)
        status = s.get("status")
        if status not in FINAL:
            unfinished += 1
        # a diverged (or failed) run is not completed: its group's interval uses the others
        if status == "completed" and isinstance(s.get(metric), (int, float)) and math.isfinite(s[metric]):
            values[group_of(m)].append(float(s[metric]))
    return Round(k, values, unfinished)


def rounds_done(plan: SeedPlan, metric: str) -> list[Round]:
    """The rounds whose members have all finished, measured (nothing is written)."""
    out = []
    for k in range(1, len(plan.seeds) + 1):
        r = measure(plan.members(k, create=False), metric, k)
        if r.unfinished:
            break
        out.append(r)
    return out


@dataclass(frozen=True)
class Resolve:
    """--seeds-until resolved: stop when every comparison of the family (results.FAMILIES)
    among the sweep's groups is resolved (higher or lower) or, with a margin, equivalent
    within ±margin (stats.call). The rule looks at the tests after every round, and a rule
    that stops when a test passes inflates its error rates (optional stopping), so each
    look tests at alpha / looks (Bonferroni over the rounds that can stop): the chance that
    any look calls a difference or an equivalence that is not there stays <= alpha.
    The verdicts compare prints afterwards are fixed-n ones at the usual level: read them
    with that in mind (docs/compare.md)."""

    margin: float | None = None
    family: str = "vs-best"
    looks: int = 1  # rounds that can stop: max seeds - FIRST_ROUND + 1

    @property
    def level(self) -> float:
        return 1 - (1 - LEVEL) / max(1, self.looks)

    def calls(self, r: "Round") -> list[tuple[str, str, str]]:
        """[(group a, group b, call of a - b)] of the family, at this rule's level."""
        from normbench.analysis import stats as st

        groups = sorted(r.values, key=lambda g: -_mean(r.values[g]))
        tests = st.family_tests([r.values[g] for g in groups], self.family, self.margin, self.level)
        return [(groups[t.i], groups[t.j], t.call) for t in tests]

    def met(self, r: "Round") -> bool:
        calls = self.calls(r)
        return bool(calls) and all(c != "not resolved" for _, _, c in calls)

    def text(self) -> str:
        eq = f" or equivalent within ±{self.margin:g}" if self.margin else ""
        return f"every comparison ({self.family}) resolved{eq}, each look at alpha {(1 - LEVEL):g}/{self.looks}"


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else -math.inf


def _stops(r: "Round", target) -> bool:
    """Whether round r meets the stopping rule: a half-width (float) or Resolve."""
    if isinstance(target, Resolve):
        return not r.unfinished and target.met(r)
    return r.precise(target)


def widest(r: Round, target: float) -> str:
    """The progress note of a round under way: its widest half-width so far."""
    if isinstance(target, Resolve):
        return f"{sum(c == 'not resolved' for _, _, c in target.calls(r))} comparison(s) not resolved so far"
    finite = {g: w for g, w in r.widths.items() if not math.isinf(w)}
    if not finite:
        return f"half-widths n/a until a group has 2 completed seeds (target {target:g})"
    g = max(finite, key=finite.get)
    na = len(r.widths) - len(finite)
    return f"widest half-width {_width(finite[g], target)} ({g}; target {target:g}{f', {na} group(s) n/a' if na else ''})"


def _width(w: float, target: float) -> str:
    """A half-width to 4 decimals, or as many more as it takes not to read as the target
    when it is above it (0.01003 is "0.01003", not "0.0100 > 0.01")."""
    if math.isinf(w):
        return "n/a"
    for digits in range(4, 10):
        text = format(w, f".{digits}f")
        if w <= target or float(text) > target:
            return text
    return text


def format_round(r: Round, target: float) -> list[str]:
    if isinstance(target, Resolve):
        lines = [f"  {'group':<40} {'completed':>9}"] + [f"  {g:<40} {r.completed[g]:>9}" for g in r.values]
        return lines + [f"  {a} vs {b}: {c} (at {target.level * 100:.4g} %)" for a, b, c in target.calls(r)]
    lines = [f"  {'group':<40} {'completed':>9} {'half-width':>10}"]
    for g, w in r.widths.items():
        lines.append(f"  {g:<40} {r.completed[g]:>9} {_width(w, target):>10}"
                     f"{'' if w <= target else '  > ' + format(target, 'g')}")
    return lines


def sweep_until(plan: SeedPlan, target: float, metric: str = "test_accuracy", *, jobs: int = 1, executor=None,
                fail_fast: bool = False, echo=print, status_line=None) -> tuple[list[tuple[Member, str]], Round]:
    """Rounds: the first gives every group FIRST_ROUND seeds, each next one adds the next
    seed to every group (so the seeds stay paired), until every group's 95 % half-width
    of `metric` over its completed runs is <= target, or the seeds run out (--max-seeds).
    Seeds already trained are reused; the rule never looks at a p-value."""
    max_seeds = len(plan.seeds)
    k = min(FIRST_ROUND, max_seeds)
    while True:
        members = plan.members(k)
        n = len({group_of(m) for m in members})
        echo(f"round: {k} seed{'s' * (k != 1)} per group ({', '.join(map(str, plan.seeds[:k]))}), {n} group{'s' * (n != 1)}")
        failures = run_sweep(members, jobs=jobs, executor=executor, fail_fast=fail_fast, echo=echo, status_line=status_line,
                             note=lambda: widest(measure(members, metric, k), target))
        r = measure(members, metric, k)
        for line in format_round(r, target):
            echo(line)
        if failures:
            return failures, r
        if _stops(r, target):
            if isinstance(target, Resolve):
                echo(f"seeds-until: {target.text()}, on {metric} with {k} seeds; stopped")
            else:
                echo(f"seeds-until: every group's {LEVEL_TEXT} half-width of {metric} is <= {target:g} with {k} seeds; stopped")
            return [], r
        if k >= max_seeds and isinstance(target, Resolve):
            left = sum(c == "not resolved" for _, _, c in target.calls(r))
            echo(f"seeds-until: --max-seeds {max_seeds} reached; {left} comparison(s) still not resolved")
            return [], r
        if k >= max_seeds:
            wide = [g for g, w in r.widths.items() if w > target]
            echo(f"seeds-until: --max-seeds {max_seeds} reached; {len(wide)} group(s) still wider than {target:g}")
            return [], r
        k += 1


def describe_until(plan: SeedPlan, target: float, metric: str) -> list[str]:
    """--dry-run of --seeds-until: the rounds so far and the current half-widths."""
    done = rounds_done(plan, metric)
    groups = {group_of(m) for m in plan.members(1, create=False)}
    k = len(done)
    lines = [f"seeds-until {'resolved' if isinstance(target, Resolve) else format(target, 'g')} on {metric}, at most {len(plan.seeds)} seeds, {len(groups)} group{'s' * (len(groups) != 1)}: "
             f"{k} seed{'s' * (k != 1)} finished in every group"
             f"{' (' + ', '.join(map(str, plan.seeds[:k])) + ')' if k else ''}"]
    stop = next((r for r in done[FIRST_ROUND - 1:] if _stops(r, target)), None)
    if done:
        lines += format_round(stop or done[-1], target)
    if stop and isinstance(target, Resolve):
        lines.append(f"stops at {stop.seeds} seeds: {target.text()}")
    elif stop:
        lines.append(f"stops at {stop.seeds} seeds: every group's half-width is <= {target:g}")
    elif k >= len(plan.seeds):
        lines.append(f"stops at {k} seeds: --max-seeds reached")
    else:
        nxt = min(max(FIRST_ROUND, k + 1), len(plan.seeds))
        lines.append(f"next round: seeds {', '.join(map(str, plan.seeds[:nxt]))} in every group")
    return lines
