"""Read run folders back: a folder (or folders searched recursively) -> [Run].

- `load_runs(paths)`      every run under the paths, each folder once -> [Run]
- `load_run(run_dir)`     one run folder -> Run (corrupt files raise, naming the file)
- `find_run_dirs(path)`   the run folders at or below a path
- `with_role(runs, role)` the runs a `normbench tune` made for one role
- `completed(runs, what)` the completed runs, or one error line when there are none

A folder that cannot be read is still a Run, listed apart and never averaged: "corrupt"
(a summary.json or config.yaml that does not parse, with the reason), "unreadable" (a
file or a folder that cannot be read or listed: permissions, I/O; runs below a folder
that cannot be listed are missing, and its Run says so), "unfinished" (history.csv but
no summary.json: running or killed) or "not started" (config.yaml only: a queued sweep
member). Grouping and ranking are in `normbench.analysis.results`.

What a run folder holds is `normbench.store.runfolder`'s; which summary.json numbers are read
(and checked to be numbers) is `normbench.core.metrics`'. Nothing here imports TensorFlow,
Keras, pandas or click.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from normbench.core.errors import NormbenchError, ParamError
from normbench.store import identity, runfolder
from normbench.core import metrics

HISTORY_NEEDED = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")  # history.csv columns a plot reads
# a tune member's role (runfolder.ROLES, from role.json), kept with its config as this
# key: tuning and confirmation runs at one point never share a group
ROLE_KEY = identity.ROLE_KEY


@dataclass
class Run:
    path: Path
    status: str  # summary.json status, "unfinished", "not started", "corrupt" or "unreadable"
    config: dict  # the resolved config, flattened to dotted keys
    summary: dict = field(default_factory=dict)
    problem: str = ""  # status "corrupt" / "unreadable": what is wrong, one line naming the file
    # what determines the training, as one hash (normbench.store.identity): summary.json's
    # `identity`, or computed from config.yaml and summary.json for runs from before it;
    # None without a data fingerprint. Two runs with one identity are the same run.
    identity: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def value(self, key: str) -> float:
        """A summary number as float; NaN when absent or null."""
        return _number(self.summary.get(key), key, self.path)

    def metric(self, key: str) -> tuple[float, bool]:
        """(value of a ranking metric, whether it came from the metric's fallback key, see normbench.core.metrics).
        test_*_last of a run that predates it is its test_* figure, but only when the run
        evaluated the last epoch's weights (summary `eval` absent or "last"); a metric computed
        from history.csv (metrics' `compute`) that its summary.json lacks is computed from its
        history.csv."""
        m = metrics.TABLE.get(key)
        if m and m.fallback and key not in self.summary and self.summary.get("eval") in (None, "last"):
            return self.value(m.fallback), True
        if m and m.compute and self.summary and key not in self.summary:  # a run from before it was recorded:
            # computed from its history.csv exactly as training computes it (metrics.from_history)
            rows = [r for r in runfolder.read_history(self.path) if runfolder.well_formed(r)]
            by_epoch = {int(r["epoch"]): r for r in rows}
            return _number(m.compute([by_epoch[e] for e in sorted(by_epoch)]), key, self.path), False
        return self.value(key), False

    @property
    def fingerprint(self) -> str | None:
        """summary.json's data_fingerprint (with its preprocess_fingerprint, when data.preprocess
        fitted statistics); None for runs that predate it."""
        fp = self.summary.get("data_fingerprint")
        if not (isinstance(fp, str) and fp):
            return None
        pre = self.summary.get("preprocess_fingerprint")  # data.preprocess's fitted statistics: part of the data
        return f"{fp}+{pre.split(':', 1)[-1][:16]}" if isinstance(pre, str) and pre else fp

    @property
    def data_from_seed(self) -> bool:
        """The data set is generated from the run's seed (the synthetic_* sets, see
        data.load_data): its fingerprint differs from seed to seed by design, so groups
        are not split on it."""
        from normbench.build.data import is_generated

        return is_generated(str(self.config.get("data.name", "")))

    @property
    def finished_time(self) -> float:
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


def _number(v, key, run_dir: Path) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise NormbenchError(f"{run_dir / runfolder.SUMMARY}: {key} is {v!r}, not a number; the file is corrupt, "
                             "rerun the run or delete its folder")
    return float(v)


def _read_config(d: Path) -> dict:
    """A run's config, resolved and flattened (config.resolve_flat): from its index,
    config.json, while that is config.yaml's (runfolder.read_config_index), else from
    config.yaml itself (runs from before the index, or a config.yaml changed since)."""
    import yaml

    from normbench.schema.config import load_run_yaml, resolve_flat, schema_key

    cp = d / runfolder.CONFIG
    try:
        data = cp.read_bytes()
    except FileNotFoundError:
        raise NormbenchError(f"{d}: run folder without config.yaml; restore config.yaml or delete the folder") from None
    except OSError as e:
        raise runfolder.unreadable(cp, e) from None
    flat = runfolder.read_config_index(d, data, schema_key())
    if flat is not None:
        return flat
    try:
        raw = load_run_yaml(runfolder.config_text(data))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise NormbenchError(f"{cp}: corrupt config.yaml ({e.__class__.__name__}); rerun that run or delete its folder") from None
    if not isinstance(raw, dict):
        raise NormbenchError(f"{cp}: corrupt config.yaml (not a mapping); rerun that run or delete its folder")
    return resolve_flat(raw, str(cp))


def load_run(run_dir: str | Path) -> Run:
    """One run folder -> Run. Corrupt files raise NormbenchError naming the file."""
    d = Path(run_dir)
    summary = runfolder.read_summary(d) or {}
    config = _read_config(d)
    role = runfolder.read_role(d)
    if role:
        config[ROLE_KEY] = role["role"]
    status = summary.get("status") or ("unfinished" if runfolder.has_history(d) else "not started")
    recorded = summary.get("identity")
    ident = recorded if isinstance(recorded, str) and recorded else identity.identity(config, summary)
    run = Run(d, status, config, summary, identity=ident)
    for key in metrics.SUMMARY:  # fail here, on the file, rather than later in the statistics
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
        real = _folder_key(root)
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


def _folder_key(path) -> tuple | str:
    """Which real folder `path` is, whatever links lead to it: its (device, inode), one stat
    (a realpath is a stat per path component); its realpath if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return st.st_dev, st.st_ino


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
            key = _folder_key(d)
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
        raise ParamError("role", role, f"unknown role; choose one of: {', '.join(runfolder.ROLES)}")
    kept = [r for r in runs if r.config.get(ROLE_KEY) == role]
    if not kept:
        found = sorted({str(r.config.get(ROLE_KEY)) for r in runs if r.config.get(ROLE_KEY)})
        have = f"roles here: {', '.join(found)}" if found else "these runs have no role (normbench tune records one)"
        raise ParamError("role", role, f"no {role} runs in these folders; {have}")
    return kept




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
