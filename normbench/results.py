"""Read run folders back and compare groups of runs.

- `load_runs(paths)`      run folders (or folders searched recursively) -> [Run]
- `completed(runs, what)` the completed runs, or one error line when there are none
- `compare(runs, metric)` groups of runs that differ only in seed -> Comparison

Text tables of a Comparison are in `normbench.tables`, plots in `normbench.plots`,
`normbench explain` in `normbench.explain`; every statistic comes from `normbench.stats`.

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

Only runs whose summary.json says "completed" are averaged; every other run is listed
apart with its status and folder: its summary.json status, "corrupt" (a summary.json or
config.yaml that does not parse, with the reason), "unreadable" (a file or a folder that
cannot be read or listed: permissions, I/O; runs below a folder that cannot be listed are
missing, and this says so), "unfinished" (history.csv but no
summary.json: running or killed) or "not started" (config.yaml only: a queued sweep
member). Std is always the sample std (ddof=1).

pandas and scipy are imported inside functions, so importing this module (and
`normbench --help`) stays cheap. Nothing here imports TensorFlow, Keras or click.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from normbench import NormbenchError, runfolder
from normbench.config import flatten

# ranking metrics: name -> higher is better
METRICS = {
    "test_accuracy": True,
    "test_loss": False,
    "test_accuracy_last": True,
    "test_accuracy_best": True,
    "test_loss_last": False,
    "test_loss_best": False,
    "best_val_accuracy": True,
    "last_val_accuracy": True,
    "final_train_loss": False,
    "mean_epoch_seconds": False,
    "ms_per_step": False,
    "wall_seconds": False,
}
# Runs from before summary.json recorded the *_last figures: their headline figure is the
# last epoch's when their `eval` is absent (older than train.eval) or "last", and only then.
LAST_FALLBACK = {"test_accuracy_last": "test_accuracy", "test_loss_last": "test_loss"}
EVAL_KEY = "train.eval"  # which weights test_* reports; test_*_last/_best are the same whatever it says
# per-group statistics (mean and sample std of each)
STATS = (
    "test_accuracy", "test_loss", "best_val_accuracy", "last_val_accuracy", "best_epoch",
    "final_train_loss", "mean_epoch_seconds", "ms_per_step", "wall_seconds",
)
HISTORY_NEEDED = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
ALWAYS_SHOWN = ("model.arch", "model.norm")  # group columns shown even when all groups share them
SECTION_KEYS = ("model.arch", "data.name")  # groups are ranked only against groups of the same section
NOT_GROUPED = "seed, name, output.*, sweep.*"
# a tune member's role (runfolder.ROLES, from role.json), kept with its config as this
# key: tuning and confirmation runs at one point never share a group
ROLE_KEY = "role"
LEVEL = 0.95  # confidence level of every interval


def _not_grouped(key: str) -> bool:
    return key in ("seed", "name") or key.split(".")[0] in ("output", "sweep")


# ----------------------------------------------------------------------------- runs


@dataclass
class Run:
    path: Path
    status: str  # summary.json status, "unfinished", "not started", "corrupt" or "unreadable"
    config: dict  # the resolved config, flattened to dotted keys
    summary: dict = field(default_factory=dict)
    problem: str = ""  # status "corrupt" / "unreadable": what is wrong, one line naming the file

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def value(self, key: str) -> float:
        """A summary number as float; NaN when absent or null."""
        return _number(self.summary.get(key), key, self.path / runfolder.SUMMARY)

    def metric(self, key: str) -> tuple[float, bool]:
        """(value of a ranking metric, whether it came from the LAST_FALLBACK key).
        test_*_last of a run that predates it is its test_* figure, but only when the run
        evaluated the last epoch's weights (summary `eval` absent or "last")."""
        if key in LAST_FALLBACK and key not in self.summary and self.summary.get("eval") in (None, "last"):
            return self.value(LAST_FALLBACK[key]), True
        return self.value(key), False

    @property
    def fingerprint(self) -> str | None:
        """summary.json's data_fingerprint; None for runs that predate it."""
        fp = self.summary.get("data_fingerprint")
        return fp if isinstance(fp, str) and fp else None

    @property
    def data_from_seed(self) -> bool:
        """The data set is generated from the run's seed (the synthetic_* sets, see
        data.load_data): its fingerprint differs from seed to seed by design, so groups
        are not split on it."""
        from normbench.data import is_generated

        return is_generated(str(self.config.get("data.name", "")))

    @property
    def finished(self) -> float:
        """When the run finished (summary finished_at, else summary.json's mtime), as a
        timestamp: the earliest of repeated runs of one seed is the one kept."""
        t = self.summary.get("finished_at")
        if isinstance(t, str):
            try:
                return _dt.datetime.fromisoformat(t).timestamp()
            except ValueError:
                pass
        try:
            return (self.path / runfolder.SUMMARY).stat().st_mtime
        except OSError:
            return math.inf

    @property
    def epochs_completed(self):
        if "epochs_completed" in self.summary:
            return self.summary["epochs_completed"]
        return runfolder.count_epochs(self.path)  # no summary.json: the rows in history.csv

    @property
    def note(self) -> str:
        if self.status in ("corrupt", "unreadable"):
            return self.problem
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


def _read_config(d: Path) -> dict:
    import yaml

    cp = d / runfolder.CONFIG
    if not cp.exists():
        raise NormbenchError(f"{d}: run folder without config.yaml; restore config.yaml or delete the folder")
    try:
        # libyaml's safe loader where PyYAML has it (far faster than the pure-Python one); a
        # run's config.yaml is normbench's own output, so the strict checks of user configs are moot
        raw = yaml.load(cp.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except OSError as e:
        raise runfolder.unreadable(cp, e) from None
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise NormbenchError(f"{cp}: corrupt config.yaml ({e.__class__.__name__}); rerun that run or delete its folder") from None
    if not isinstance(raw, dict):
        raise NormbenchError(f"{cp}: corrupt config.yaml (not a mapping); rerun that run or delete its folder")
    try:  # fill in keys added to the config after this run was made (their defaults), by parsing alone
        from normbench.config import parse

        raw = parse(raw, str(cp)).to_dict()
    except NormbenchError:
        pass  # a key or type this version no longer has: compare it as written
    return flatten(raw)


def load_run(run_dir: str | Path) -> Run:
    """One run folder -> Run. Corrupt files raise NormbenchError naming the file."""
    d = Path(run_dir)
    summary = runfolder.read_summary(d) or {}
    config = _read_config(d)
    role = runfolder.read_role(d)
    if role:
        config[ROLE_KEY] = role["role"]
    status = summary.get("status") or ("unfinished" if runfolder.has_history(d) else "not started")
    run = Run(d, status, config, summary)
    for key in (*STATS, *METRICS):  # fail here, on the file, rather than later in the statistics
        run.value(key)
    return run


def _corrupt_run(d: Path, error: NormbenchError) -> Run:
    """A run folder that cannot be read, kept to be listed apart (status "corrupt")."""
    try:
        config = _read_config(d)
    except NormbenchError:
        config = {}
    status = "unreadable" if isinstance(error, runfolder.UnreadableFile) else "corrupt"
    return Run(d, status, config, {}, str(error).replace(f"{d}{os.sep}", ""))  # the path is in its own column


def find_run_dirs(path: str | Path, unlisted: list | None = None) -> list[Path]:
    """Run folders at or below `path` (a run folder, a folder of runs, or a file in a run
    folder). Linked folders are followed (each real folder once, so a link loop ends).
    Folders that cannot be listed are appended to `unlisted` as (folder, OSError) when
    it is given (then finding none of them is not an error), else they raise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise NormbenchError(f"{path}: no such file or folder; pass a run folder or a folder that holds runs (e.g. results/)")
    if p.is_file():
        if p.name in (runfolder.SUMMARY, runfolder.CONFIG, runfolder.HISTORY, runfolder.LOG):
            return [p.parent]
        raise NormbenchError(f"{path}: is a file, not a run folder; pass a run folder or a folder that holds runs (e.g. results/)")
    found, seen, failed = [], set(), []
    for root, dirs, files in os.walk(p, onerror=failed.append, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # reached again through a link
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d not in runfolder.NOT_RUNS)
        if runfolder.is_run_dir(files):
            found.append(Path(root))
            dirs[:] = []  # nothing below a run folder is another run (backup/ is not)
    if failed:
        if unlisted is None:
            e = failed[0]
            raise NormbenchError(f"{e.filename}: cannot list this folder ({e.strerror}); give yourself read access "
                                 f"(e.g. chmod -R u+rX {e.filename}) and try again")
        unlisted.extend((Path(e.filename), e) for e in failed)
        return found
    if not found:
        raise NormbenchError(f"{path}: no runs found (no summary.json in it or below it); pass the output.dir of normbench run, e.g. results/")
    return found


def load_runs(paths) -> list[Run]:
    """Every run under the given paths, each folder once, in path order. A folder whose
    summary.json or config.yaml cannot be read is a Run with status "corrupt" and the
    reason in `problem` (listed apart, never averaged), not an error."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise NormbenchError("no paths given; pass run folders or a folder that holds runs (e.g. results/)")
    seen, runs = set(), []
    for path in paths:
        unlisted = []
        for d in find_run_dirs(path, unlisted):
            key = d.resolve()
            if key not in seen:
                seen.add(key)
                try:
                    runs.append(load_run(d))
                except NormbenchError as e:  # one corrupt folder must not hide the others
                    runs.append(_corrupt_run(d, e))
        for d, e in unlisted:  # a folder that cannot be listed may hold runs: n would shrink unsaid
            why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or e.__class__.__name__)
            runs.append(Run(d, "unreadable", {}, {}, f"cannot list this folder ({why}), so runs in it are left out; "
                                                     f"give yourself read access (e.g. chmod -R u+rX {d})"))
    return runs


def with_role(runs: list[Run], role: str | None) -> list[Run]:
    """compare --role: the runs a `normbench tune` made for that role (runfolder.ROLES);
    None keeps every run."""
    if role is None:
        return runs
    if role not in runfolder.ROLES:
        raise NormbenchError(f"--role {role}: unknown role; choose one of: {', '.join(runfolder.ROLES)}")
    kept = [r for r in runs if r.config.get(ROLE_KEY) == role]
    if not kept:
        found = sorted({str(r.config.get(ROLE_KEY)) for r in runs if r.config.get(ROLE_KEY)})
        have = f"roles here: {', '.join(found)}" if found else "these runs have no role (normbench tune records one)"
        raise NormbenchError(f"--role {role}: no {role} runs in these folders; {have}")
    return kept


# ----------------------------------------------------------------------------- grouping


def _canon(v) -> str:
    """A value as a hashable, comparable key (JSON text; 1 and 1.0 and True stay apart)."""
    if v is None or isinstance(v, (str, int, float)):
        return _canon_scalar(v)
    return json.dumps(v, sort_keys=True, default=str)


@functools.lru_cache(maxsize=65536, typed=True)  # typed: 1, 1.0 and True are three keys
def _canon_scalar(v) -> str:
    return json.dumps(v, default=str)


def _show(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, "g") if v.is_integer() else repr(v)  # 64.0 -> 64, 0.001 -> 0.001
    return str(v)


def _group_key(run: Run) -> tuple:
    # a user's model file can change under one config: its sha256 (summary.json) splits groups
    built = (("<model_sha256>", _canon(run.summary.get("model_sha256"))),) if run.summary.get("model_sha256") else ()
    return tuple(sorted((k, _canon(v)) for k, v in run.config.items() if not _not_grouped(k))) + built


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


def unit_of(metric: str) -> tuple[float, str]:
    """(scale, unit) a metric's differences are shown in: accuracies in percentage points,
    seconds in s, ms_per_step in ms, anything else (losses) in its own units."""
    from normbench import stats

    if metric.endswith("seconds"):
        return 1.0, "s"
    if metric.startswith("ms_"):
        return 1.0, "ms"
    return stats.unit_for(metric)


def short_fingerprint(fp: str | None) -> str:
    """'sha256:0123abcd...' -> '0123abcd'; None -> 'unknown'."""
    if not fp:
        return "unknown"
    return fp.split(":", 1)[-1][:8]


def section_of(run: Run, within: tuple[str, ...] = ()) -> str:
    """The section a run is ranked in: '<model.arch> on <data.name>', then ', key=value'
    for each `within` key (compare --within: e.g. one section per learning rate)."""
    arch, data = (_show(run.config.get(k)) for k in SECTION_KEYS)
    if run.config.get("model.arch") is None:  # a user's model: the file it came from
        layers = run.config.get("model.layers")
        arch = _show(run.config.get("model.from") or (layers if isinstance(layers, str) else "model.layers"))
    return f"{arch} on {data}" + "".join(f", {k}={_show(run.config.get(k))}" for k in within)


def value_order(v) -> tuple:
    """Sort key for config values: numbers in numeric order (2, 4, ..., 64, not 16, 2, ...),
    then everything else by its shown text."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, _show(v))


def _section_order(run: Run, within: tuple[str, ...]) -> tuple:
    """Sections in numeric order of their `within` values."""
    return (tuple(_show(run.config.get(k)) for k in SECTION_KEYS), tuple(value_order(run.config.get(k)) for k in within))


def check_within(runs: list[Run], within: tuple[str, ...]) -> None:
    """--within keys must be config keys of these runs, and not ones compare never groups on."""
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(r.config))
    for k in within:
        if _not_grouped(k) or k in SECTION_KEYS:
            raise NormbenchError(f"--within {k}: {k} never separates groups (seeds, names and outputs are pooled; "
                                 f"{' and '.join(SECTION_KEYS)} already make sections); name a config key that varies")
        if k not in keys:
            vary = varying_keys([r for r in runs if r.completed])
            hint = f"keys that vary here: {', '.join(vary)}" if vary else "use a dotted config key such as train.batch_size"
            raise NormbenchError(f"--within {k}: no such config key in these runs; {hint}")


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


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def compare(runs: list[Run], metric: str = "test_accuracy", within: tuple[str, ...] = ()) -> Comparison:
    """Group completed runs by config (minus seed/name/output/sweep) and data fingerprint,
    one run per seed, and rank the groups within each (model.arch, data.name) section with
    intervals, effect sizes and a verdict per comparison with the section's best.
    `within`: config keys that split sections further (one section per learning rate,
    say), so each value's norms are ranked against each other only.
    NormbenchError when no run completed, or none has a value for the metric."""
    higher = check_metric(metric)
    within = tuple(dict.fromkeys(within))
    check_within(runs, within)
    import numpy as np
    import pandas as pd

    from normbench import stats as st

    done = completed(runs, "compare")
    excluded = [r for r in runs if not r.completed]
    notes: list[str] = []
    if metric.endswith(("_last", "_best")):
        # test_*_last / test_*_best do not depend on train.eval (which only picks what
        # test_* reports): runs that differ in it alone are one group for these metrics
        done = [dataclasses.replace(r, config={k: v for k, v in r.config.items() if k != EVAL_KEY}) for r in done]

    # the metric's value per run; runs without one are left out of this comparison
    value = {id(r): r.metric(metric) for r in done}
    left_out = [r for r in done if math.isnan(value[id(r)][0])]
    use = [r for r in done if not math.isnan(value[id(r)][0])]
    if not use:
        raise NormbenchError(
            f"--metric {metric}: no completed run has a value for it (runs from before it was recorded lack it); "
            f"pick another metric, e.g. test_accuracy")
    if left_out:
        why = " (they predate it: summary.json did not record it yet)" if metric.endswith(("_best", "_last")) else ""
        notes.append(f"{_plural(len(left_out), 'completed run')} without a {metric} value left out of this comparison{why}")
    fell_back = sum(value[id(r)][1] for r in use)
    if fell_back:
        notes.append(f"{_plural(fell_back, 'run')} predate {metric}: their {LAST_FALLBACK[metric]} is used "
                     f"(they evaluated the last epoch's weights)")

    # groups: config, then data fingerprint
    by_config: dict[tuple, list[Run]] = {}
    for r in use:
        by_config.setdefault(_group_key(r), []).append(r)
    raw_groups: list[tuple[list[Run], str | None, bool]] = []  # (runs, fingerprint, config split by data)
    predate = unknown_apart = split_configs = 0
    for rs in by_config.values():
        if rs[0].data_from_seed:  # one config, one data name: all synthetic or none
            raw_groups.append((rs, None, False))
            continue
        fps = sorted({r.fingerprint for r in rs if r.fingerprint})
        bare = [r for r in rs if not r.fingerprint]
        if len(fps) <= 1:
            raw_groups.append((rs, fps[0] if fps else None, False))
            predate += len(bare)
        else:
            split_configs += 1
            raw_groups += [([r for r in rs if r.fingerprint == fp], fp, True) for fp in fps]
            if bare:
                raw_groups.append((bare, None, True))
                unknown_apart += len(bare)
    if predate:
        notes.append(f"{_plural(predate, 'run')} predate data fingerprints; grouped by config alone")
    if split_configs:
        notes.append(f"{_plural(split_configs, 'config')} ran on different data (data fingerprints differ): "
                     f"each data set is a group of its own (column data)")
    if unknown_apart:
        notes.append(f"{_plural(unknown_apart, 'run')} predate data fingerprints and share a config that ran on "
                     f"several data sets: they form their own group (data unknown)")

    # one run per seed: the earliest finished
    groups, collapsed = [], []
    for rs, fp, split in raw_groups:
        by_seed: dict[str, list[Run]] = {}
        for r in sorted(rs, key=lambda r: (r.finished, str(r.path))):
            by_seed.setdefault(_canon(r.config.get("seed")), []).append(r)
        collapsed += [(dup, kept[0]) for kept in by_seed.values() for dup in kept[1:]]
        groups.append((sorted((kept[0] for kept in by_seed.values()), key=lambda r: str(r.path)), fp, split))
    if collapsed:
        notes.append(f"{_plural(len(collapsed), 'repeated run')} of a seed collapsed (same config, data and seed as "
                     f"a run that finished earlier, which is kept): n counts distinct seeds")
    kept_runs = [r for rs, _, _ in groups for r in rs]

    varying = varying_keys(kept_runs)
    split_data = any(split for _, _, split in groups)
    columns = [k for k in ALWAYS_SHOWN if any(k in r.config for r in kept_runs) and k not in varying] + varying
    label_keys = varying or [k for k in ("model.norm",) if any(k in r.config for r in kept_runs)]
    stat_keys = list(STATS) if metric in STATS else [metric, *STATS]

    sections: dict[str, list[int]] = {}
    order: dict[str, tuple] = {}
    for gi, (rs, _, _) in enumerate(groups):
        name = section_of(rs[0], within)
        sections.setdefault(name, []).append(gi)
        order[name] = _section_order(rs[0], within)
    section_names = sorted(sections, key=order.get)
    scale, unit = unit_of(metric)
    m = metric
    records = []
    for sec in section_names:
        gis = sections[sec]
        sec_runs = [r for gi in gis for r in groups[gi][0]]
        name_keys = varying_keys(sec_runs) or label_keys
        data_note: dict[str, set] = {}
        for gi in gis:
            data_note.setdefault(_canon({k: v for k, v in groups[gi][0][0].config.items() if k.startswith("data.")}),
                                 set()).add(groups[gi][1])
        if any(len({fp for fp in fps if fp}) > 1 for fps in data_note.values()):
            notes.append(f"{sec}: groups with the same data settings ran on different data (fingerprints differ); "
                         f"their differences mix the data with the config")
        recs = []
        for gi in gis:
            rs, fp, split = groups[gi]
            first = rs[0]
            vals = [value[id(r)][0] for r in rs]
            rec = {"section": sec, "label": _label(first, label_keys), "name": _name(first, name_keys)}
            if split:
                rec["label"] += f", data={short_fingerprint(fp)}"
                rec["name"] += f" (data {short_fingerprint(fp)})"
            rec.update({k: _show(first.config.get(k)) for k in columns})
            rec["data"] = short_fingerprint(fp)
            rec["data_fingerprint"] = fp
            rec["n"] = len(rs)
            rec["seeds"] = [r.config.get("seed") for r in rs]
            ci = st.mean_ci(vals, LEVEL)
            rec |= {f"{m}_mean": ci.mean, f"{m}_std": ci.sd, f"{m}_ci_low": ci.low, f"{m}_ci_high": ci.high}
            for k in stat_keys:
                if k != m:
                    col = pd.Series([r.value(k) for r in rs], dtype=float)  # pandas: NaN skipped, ddof=1
                    rec[f"{k}_mean"], rec[f"{k}_std"] = float(col.mean()), float(col.std())
            rec["runs"] = [str(r.path) for r in rs]
            rec["_values"] = vals
            rec["_by_seed"] = {r.config.get("seed"): value[id(r)][0] for r in rs}
            recs.append(rec)
        recs.sort(key=lambda g: (np.inf if math.isnan(g[f"{m}_mean"]) else g[f"{m}_mean"] * (-1 if higher else 1),
                                 g["label"]))
        best = recs[0]
        comps = []
        for rank, g in enumerate(recs, 1):
            g["rank"] = rank
            if rank == 1:
                continue
            d = st.welch_diff(g["_values"], best["_values"], LEVEL)
            pr = st.paired_diff(g["_by_seed"], best["_by_seed"], LEVEL)
            g |= {f"{m}_diff": d.diff, f"{m}_diff_low": d.low, f"{m}_diff_high": d.high,
                  f"{m}_hedges_g": d.hedges_g, f"{m}_p_welch": d.p,
                  f"{m}_paired_diff": pr.diff if pr else math.nan, f"{m}_paired_low": pr.low if pr else math.nan,
                  f"{m}_paired_high": pr.high if pr else math.nan,
                  f"{m}_paired_width_ratio": pr.width_ratio if pr else math.nan,
                  f"{m}_seeds_needed": st.seeds_needed(d.diff, d.sd_a, d.sd_b, alpha=1 - LEVEL)}
            comps.append((g, d, pr))
        holm = st.holm([g[f"{m}_p_welch"] for g, _, _ in comps])
        for (g, d, pr), p_holm in zip(comps, holm):
            g[f"{m}_p_holm"] = p_holm
            g["verdict"] = _verdict(best, g, d.swapped(), pr and pr.swapped(), m, higher, scale, unit,
                                    p_holm if len(comps) > 1 else None)
        records += recs

    out_cols = ["section", "rank", *columns, *(["data"] if split_data else []), "label", "n", "data_fingerprint",
                *[f"{m}_{a}" for a in ("mean", "std", "ci_low", "ci_high", "diff", "diff_low", "diff_high", "hedges_g",
                                       "p_welch", "p_holm", "paired_diff", "paired_low", "paired_high",
                                       "paired_width_ratio", "seeds_needed")],
                *[f"{k}_{a}" for k in stat_keys if k != m for a in ("mean", "std")], "verdict", "seeds", "runs", "name"]
    table = pd.DataFrame(records).reindex(columns=out_cols)
    table[f"{m}_seeds_needed"] = table[f"{m}_seeds_needed"].astype("Int64")
    table["verdict"] = table["verdict"].where(table["verdict"].notna(), None)
    return Comparison(m, higher, columns, varying, table, kept_runs, excluded, collapsed, left_out, notes,
                      section_names, split_data, within)


def _name(run: Run, keys: list[str]) -> str:
    """A group's name in verdicts: the value alone when one key varies ('batch'), else
    'norm=batch, batch_size=64'."""
    if len(keys) == 1:
        return _show(run.config.get(keys[0]))
    return _label(run, keys)


def _verdict(best: dict, g: dict, d, pr, metric: str, higher: bool, scale: float, unit: str, p_holm) -> str:
    """stats.verdict of best vs g from their differences d and pr, best minus g; for a
    metric where lower is better, a resolved verdict says which group is better."""
    from normbench import stats as st

    text = st.verdict(best["name"], g["name"], d, pr, metric=metric, scale=scale, unit=unit, p_adjusted=p_holm)
    resolved = d.resolved and d.sd_a + d.sd_b > 0 and (p_holm is None or math.isnan(p_holm) or p_holm < 1 - LEVEL)
    if resolved and not higher:
        text += f" Lower is better for {metric}, so {best['name']} is better."
    return text


def completed(runs: list[Run], what: str) -> list[Run]:
    """The completed runs; NormbenchError counting the others by status when there are none."""
    done = [r for r in runs if r.completed]
    if not done:
        counts = {}
        for r in runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        states = f" ({', '.join(f'{n} {s}' for s, n in counts.items())})" if counts else ""
        raise NormbenchError(f"no completed runs to {what}{states}; finish them with normbench run --resume RUN_DIR, or pass other folders")
    return done
