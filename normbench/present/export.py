"""Replay finished run folders into MLflow (`normbench export mlflow`, docs/bridges.md).

Each run folder becomes one MLflow run named by what tells it apart ("norm=batch,
seed=0", with the other config keys that vary among the runs exported): parameters = the
flattened resolved config (the same keys `normbench compare` groups by, defaults of old
configs filled in) and summary.json's constants (n_train, params, steps_per_epoch,
versions.*, host.* ...: one value per run, not a one-point chart); metrics = every
history.csv column with step = the epoch (from 1), each epoch's timestamp the run's start
plus its epoch_seconds so far, plus summary.json's figures (metrics.SUMMARY: test
accuracy, test loss, wall_seconds ...) at step = the epochs completed; tags = the status,
normbench's run id and the run folder; artifacts = config.yaml, history.csv,
summary.json. The run's start and end times are the run's own. A new experiment is
tagged as a training experiment (mlflow.experimentKind), so MLflow 3's UI opens it on
its runs table rather than its GenAI view; `Exported.ui_url` is that table's address.

Exporting is idempotent: each MLflow run carries `normbench.run_id` (<name>/<run-id>),
`normbench.config_sha256` (of config.yaml) and `normbench.store.identity` (normbench.store.identity:
what determined the training, data fingerprint included), and a run already present in
the experiment (all three equal) is skipped. The identity tells apart two runs of one
config in two output folders that trained on different data (same run id, same
config.yaml), and counts the same run copied into two folders once. A run without an
identity (no data fingerprint) is keyed by its folder instead; an MLflow run exported
before the identity tag matches a run folder only at its recorded path (`normbench.path`).
A run is tagged `normbench.exported` only once everything is logged, so an export cut
short is replaced, not skipped, the next time.

mlflow is an optional extra (`pip install 'normbench[mlflow]'`), imported inside.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from normbench.core.errors import NormbenchError, ParamError, literal, one_line
from normbench.core import metrics
from normbench.analysis import results
from normbench.analysis.runs import find_run_dirs, load_runs
from normbench.store import runfolder
from normbench.present.frames import run_name

FINISHED = ("completed", "diverged", "failed")  # a summary.json that no later process will change
DEFAULT_EXPERIMENT = "normbench"
DB = "mlflow.db"
ARTIFACTS = runfolder.MLFLOW_ARTIFACTS  # runs.find_run_dirs does not enter it
TAG_ID, TAG_SHA, TAG_DONE = "normbench.run_id", "normbench.config_sha256", "normbench.exported"
TAG_IDENTITY, TAG_PATH = "normbench.store.identity", "normbench.path"
INSTALL = "mlflow: not installed; install it with: pip install 'normbench[mlflow]'"
# summary.json figures that are metrics (the rest of its numbers are constants of the run: params)
SUMMARY_METRICS = (*metrics.SUMMARY, "first_epoch_seconds")
# summary.json keys that are neither: a tag, the run's times, or already a config param
SUMMARY_SKIPPED = ("status", "run_id", "name", "model", "norm", "seed", "batch_size", "started_at", "finished_at",
                   "error")
# MLflow 3 opens an experiment in its GenAI view unless it is tagged as model training
KIND_TAG, KIND_TRAINING = "mlflow.experimentKind", "custom_model_development"
UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store


@dataclass
class Exported:
    tracking_uri: str
    experiment: str
    added: list = field(default_factory=list)  # run folders exported now
    present: list = field(default_factory=list)  # already in the experiment: skipped
    unfinished: list = field(default_factory=list)  # (folder, status): not finished, not exported
    experiment_id: str | None = None

    @property
    def ui_url(self) -> str | None:
        """The experiment's runs table (MLflow 3's training view): under `mlflow ui` for a
        local store, under the server itself for an http(s) tracking URI."""
        if self.experiment_id is None:
            return None
        base = self.tracking_uri.rstrip("/") if self.tracking_uri.startswith(("http://", "https://")) else UI
        return f"{base}/#/experiments/{self.experiment_id}/runs"


def default_tracking_uri(run_dir: Path) -> str:
    """A local SQLite store beside the results: <output.dir>/mlflow.db, output.dir being
    where the run's runs.csv is (the run folder's grandparent)."""
    return f"sqlite:///{(Path(run_dir).resolve().parent.parent / DB)}"


def _sqlite_dir(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent
    return None


def _ms(iso: str | None) -> int | None:
    try:
        return int(_dt.datetime.fromisoformat(iso).timestamp() * 1000) if isinstance(iso, str) else None
    except ValueError:
        return None


def _param(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _sha(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / runfolder.CONFIG).read_bytes()).hexdigest()


def _chunks(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def export_mlflow(paths, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                  force: bool = False) -> Exported:
    """Export the finished runs under `paths` into MLflow experiment `experiment` at
    `tracking_uri` (default: default_tracking_uri of the first run). A local SQLite store
    is checked first (_check_sqlite; `force` lets MLflow add its tables to another
    application's database) and held by one export at a time (_StoreLock)."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise NormbenchError(INSTALL) from None

    from mlflow.exceptions import MlflowException

    store = None
    if tracking_uri is None:  # the default store, beside the first run (as _export would choose it)
        first = find_run_dirs(paths if isinstance(paths, (str, Path)) else paths[0], []) if paths else []
        store = default_tracking_uri(first[0]) if first else None
    uri = tracking_uri or store or "the default tracking URI"
    try:
        with _StoreLock(tracking_uri or store, tracking_uri is not None, force):
            return _export(paths, tracking_uri or store, experiment, MlflowClient, Metric, Param, RunTag)
    except MlflowException as e:
        if "must be in the 'active' state" in str(e):  # deleted in the UI: MLflow keeps its name, in its trash
            raise ParamError(None, uri, f"mlflow {literal(uri)}: experiment {literal(experiment)} is deleted (in MLflow's "
                                        "trash, which keeps its name); restore it (mlflow experiments restore) or choose "
                                        "another {experiment}") from None
        raise ParamError(None, uri, f"mlflow {literal(uri)}: {literal(one_line(e, 160).rstrip('.'))}; check {{tracking_uri}} "
                                    "and {experiment}") from None
    except Exception as e:  # the store's own layers (SQLAlchemy, sqlite3, the file system): one line, not a traceback
        if not (isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "alembic")):
            raise
        raise ParamError(None, uri, f"mlflow {literal(uri)}: cannot open the store ({literal(one_line(e, 160, kind=True))}); "
                                    "check {tracking_uri}") from None


SQLITE_MAGIC = b"SQLite format 3\x00"
MLFLOW_TABLES = {"experiments", "runs", "alembic_version"}  # a store MLflow made has these


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for other URIs and in-memory ones)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?")[0]
    return Path(rest).expanduser() if rest and rest != ":memory:" else None


def _store_error(uri: str, named: bool, reason: str) -> ParamError:
    """A failure of the store `uri`: of the tracking_uri parameter when the caller named the
    store, else of the default store beside the runs."""
    if named:
        return ParamError("tracking_uri", uri, reason)
    return ParamError(None, uri, f"the default store {literal(uri)}: {reason}")


def _check_sqlite(uri: str, db: Path, named: bool, force: bool) -> None:
    """Refuse, in one line, a SQLite store MLflow would fail on or should not touch: a
    path under a file, a folder, a file that is no SQLite database, and (without
    `force`) another application's database, into which MLflow would create its tables."""
    import sqlite3

    q = db.parent
    while not q.exists() and q != q.parent:
        q = q.parent
    if q.exists() and not q.is_dir():
        raise _store_error(uri, named, f"{literal(q)} is a file, not a folder; choose a store path under a folder, or move "
                                       "the file")
    if db.is_dir():
        raise _store_error(uri, named, f"{literal(db)} is a folder, not a database file; name a file, e.g. {literal(db / DB)}")
    # SQLite writes a journal beside the database: its folder must be writable, or MLflow
    # retries "unable to open database file" for minutes before it gives up
    if q.is_dir() and not os.access(q, os.W_OK | os.X_OK) or db.exists() and not os.access(db, os.W_OK):
        what = db if db.exists() and not os.access(db, os.W_OK) else q
        raise _store_error(uri, named, f"{literal(what)} is not writable; give yourself write access, or export to a "
                                       f"store in a folder you can write to ({{tracking_uri}} sqlite:///FOLDER/{literal(DB)})")
    if not db.exists() or db.stat().st_size == 0:
        return
    with open(db, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise _store_error(uri, named, f"{literal(db)} is not a SQLite database; name a new file or an MLflow store")
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise _store_error(uri, named, f"cannot read {literal(db)} ({literal(e)}); check the file") from None
    if tables and not MLFLOW_TABLES <= tables and not force:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise _store_error(uri, named, f"{literal(db)} is a SQLite database of another application (tables "
                                       f"{literal(shown)}), not an MLflow store, and MLflow would create its own tables "
                                       "inside it; name another file, or pass {force} to add them anyway")


class _StoreLock:
    """One export at a time into a local SQLite store: an exclusive lock on the folder
    that holds the database (no file is added beside it), waited for. Two exports that
    start together on a fresh store would both create MLflow's tables, and one dies
    ("table alembic_version already exists"); both would also find a run missing and
    add it twice. Other URIs (a tracking server) are not locked here."""

    def __init__(self, uri, named, force):
        self.fd = None
        db = _sqlite_file(uri) if uri else None
        if db is None:
            return
        _check_sqlite(uri, db, named, force)
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            import fcntl

            self.fd = os.open(db.parent, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock
            return
        except OSError as e:
            raise _store_error(uri, named, f"cannot use the folder {literal(db.parent)} ({literal(e.strerror)}); "
                                           "choose a store in a folder you can write to") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None


def _export(paths, tracking_uri, experiment, MlflowClient, Metric, Param, RunTag) -> Exported:
    runs = load_runs(paths)
    finished = [r for r in runs if r.status in FINISHED]
    out = Exported(tracking_uri or (default_tracking_uri(runs[0].path) if runs else ""), experiment)
    out.unfinished = [(r.path, r.status) for r in runs if r.status not in FINISHED]
    if not finished:
        return out

    client = MlflowClient(tracking_uri=out.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        where = _sqlite_dir(out.tracking_uri)  # artifacts beside a local database, not in the cwd
        exp_id = client.create_experiment(experiment, artifact_location=(where / ARTIFACTS).as_uri() if where else None,
                                          tags={KIND_TAG: KIND_TRAINING})
    else:
        exp_id = exp.experiment_id
        if KIND_TAG not in exp.tags:  # an experiment an older export made: open it on its runs, too
            client.set_experiment_tag(exp_id, KIND_TAG, KIND_TRAINING)
    out.experiment_id = exp_id
    keys = ["model.norm", *[k for k in results.varying_keys(finished) if k not in ("model.norm", "role")]]
    present, partial = set(), []
    for mr in _all_runs(client, exp_id):
        tags = mr.data.tags
        if tags.get(TAG_ID) is None:
            continue
        # exported before the identity tag: that run folder, at the path it was exported from
        key = (tags.get(TAG_ID), tags.get(TAG_SHA), tags.get(TAG_IDENTITY) or f"path:{tags.get(TAG_PATH)}")
        if tags.get(TAG_DONE) == "true":
            present.add(key)
        else:
            partial.append((key, mr.info.run_id))
    for key, run_id in partial:  # an export cut short: replaced below (or by a complete copy)
        client.delete_run(run_id)

    for run in finished:
        key = (run_name(run.path), _sha(run.path), run.identity or f"path:{run.path}")
        if key in present or (key[0], key[1], f"path:{run.path}") in present:
            out.present.append(run.path)
            continue
        title = ", ".join(x for x in (results.label_of(run, [k for k in keys if k in run.config]),
                                      f"seed={results.show_value(run.config.get('seed'))}") if x)
        _export_one(client, exp_id, run, key, Metric, Param, RunTag, title)
        present.add(key)
        out.added.append(run.path)
    return out


def _all_runs(client, exp_id):
    token = None
    while True:
        page = client.search_runs([exp_id], max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _summary_params(s: dict) -> dict:
    """summary.json's constants as params: every value that is not a SUMMARY_METRICS figure
    nor SUMMARY_SKIPPED; versions and host flattened to versions.* and host.*."""
    out = {}
    for k, v in s.items():
        if k in SUMMARY_METRICS or k in SUMMARY_SKIPPED or v is None:
            continue
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _export_one(client, exp_id, run, key, Metric, Param, RunTag, title: str) -> None:
    s = run.summary
    start, end = _ms(s.get("started_at")), _ms(s.get("finished_at"))
    tags = {TAG_ID: key[0], TAG_SHA: key[1], "normbench.status": run.status, TAG_PATH: str(run.path)}
    if run.identity:
        tags[TAG_IDENTITY] = run.identity
    if s.get("error"):
        tags["normbench.error"] = str(s["error"])[:5000]
    mr = client.create_run(exp_id, start_time=start, tags=tags, run_name=title)
    rid = mr.info.run_id
    t = end or start or 0
    params = [Param(k, _param(v)[:6000]) for k, v in {**run.config, **_summary_params(s)}.items()]
    metrics = []
    elapsed = 0.0  # the run's own clock: its start plus each epoch's seconds (resumed runs: their epochs' sum)
    for row in runfolder.read_history(run.path):
        if not runfolder.well_formed(row):
            continue
        seconds = _number(_float(row.get("epoch_seconds")))
        elapsed += seconds or 0.0
        when = start + int(elapsed * 1000) if start is not None and seconds is not None else t
        for column in runfolder.HISTORY_COLUMNS[1:]:
            if row.get(column) not in ("", None) and math.isfinite(float(row[column])):  # absent: a column newer than the run
                metrics.append(Metric(column, float(row[column]), when, int(row["epoch"])))
    last = int(s.get("epochs_completed") or 0)
    for k in SUMMARY_METRICS:
        if _number(s.get(k)) is not None:
            metrics.append(Metric(k, _number(s[k]), t, last))
    for chunk in _chunks(params, 100):  # MLflow's per-request limits
        client.log_batch(rid, params=chunk)
    for chunk in _chunks(metrics, 1000):
        client.log_batch(rid, metrics=chunk)
    for name in runfolder.RESULT_FILES:
        if (run.path / name).exists():
            client.log_artifact(rid, str(run.path / name))
    client.set_terminated(rid, status="FAILED" if run.status == "failed" else "FINISHED", end_time=end)
    client.set_tag(rid, TAG_DONE, "true")
