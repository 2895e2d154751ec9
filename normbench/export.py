"""Replay finished run folders into MLflow (`normbench export mlflow`, docs/bridges.md).

Each run folder becomes one MLflow run: parameters = the flattened resolved config (the
same keys `normbench compare` groups by, defaults of old configs filled in), metrics =
every history.csv column with step = the epoch (from 1), plus summary.json's figures
(test_accuracy, test_loss, wall_seconds ...) at step = the epochs completed; tags = the
status, normbench's run id and the run folder; artifacts = config.yaml, history.csv,
summary.json. The run's start and end times are the run's own.

Exporting is idempotent: each MLflow run carries `normbench.run_id` (<name>/<run-id>)
and `normbench.config_sha256` (of config.yaml), and a run folder already present in the
experiment is skipped. A run is tagged `normbench.exported` only once everything is
logged, so an export cut short is replaced, not skipped, the next time.

mlflow is an optional extra (`pip install 'normbench[mlflow]'`), imported inside.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from normbench import NormbenchError, one_line, results, runfolder
from normbench.frames import run_name

FINISHED = ("completed", "diverged", "failed")  # a summary.json that no later process will change
DEFAULT_EXPERIMENT = "normbench"
DB = "mlflow.db"
ARTIFACTS = runfolder.MLFLOW_ARTIFACTS  # results.find_run_dirs does not enter it
TAG_ID, TAG_SHA, TAG_DONE = "normbench.run_id", "normbench.config_sha256", "normbench.exported"
INSTALL = "mlflow: not installed; install it with: pip install 'normbench[mlflow]'"


@dataclass
class Exported:
    tracking_uri: str
    experiment: str
    added: list = field(default_factory=list)  # run folders exported now
    present: list = field(default_factory=list)  # already in the experiment: skipped
    unfinished: list = field(default_factory=list)  # (folder, status): not finished, not exported


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
        first = results.find_run_dirs(paths if isinstance(paths, (str, Path)) else paths[0], []) if paths else []
        store = default_tracking_uri(first[0]) if first else None
    uri = tracking_uri or store or "the default tracking URI"
    try:
        with _StoreLock(tracking_uri or store, tracking_uri is not None, force):
            return _export(paths, tracking_uri or store, experiment, MlflowClient, Metric, Param, RunTag)
    except MlflowException as e:
        if "must be in the 'active' state" in str(e):  # deleted in the UI: MLflow keeps its name, in its trash
            raise NormbenchError(f"mlflow {uri}: experiment {experiment} is deleted (in MLflow's trash, which keeps "
                                 "its name); restore it (mlflow experiments restore) or choose another --experiment") from None
        raise NormbenchError(f"mlflow {uri}: {one_line(e, 160).rstrip('.')}; check --tracking-uri and --experiment") from None
    except Exception as e:  # the store's own layers (SQLAlchemy, sqlite3, the file system): one line, not a traceback
        if not (isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "alembic")):
            raise
        raise NormbenchError(f"mlflow {uri}: cannot open the store ({one_line(e, 160, kind=True)}); "
                             "check --tracking-uri") from None


SQLITE_MAGIC = b"SQLite format 3\x00"
MLFLOW_TABLES = {"experiments", "runs", "alembic_version"}  # a store MLflow made has these


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for other URIs and in-memory ones)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?")[0]
    return Path(rest).expanduser() if rest and rest != ":memory:" else None


def _check_sqlite(uri: str, db: Path, named: bool, force: bool) -> None:
    """Refuse, in one line, a SQLite store MLflow would fail on or should not touch: a
    path under a file, a folder, a file that is no SQLite database, and (without
    --force) another application's database, into which MLflow would create its tables."""
    import sqlite3

    where = f"--tracking-uri {uri}" if named else f"the default store {uri}"
    q = db.parent
    while not q.exists() and q != q.parent:
        q = q.parent
    if q.exists() and not q.is_dir():
        raise NormbenchError(f"{where}: {q} is a file, not a folder; choose a store path under a folder, or move the file")
    if db.is_dir():
        raise NormbenchError(f"{where}: {db} is a folder, not a database file; name a file, e.g. {db / DB}")
    # SQLite writes a journal beside the database: its folder must be writable, or MLflow
    # retries "unable to open database file" for minutes before it gives up
    if q.is_dir() and not os.access(q, os.W_OK | os.X_OK) or db.exists() and not os.access(db, os.W_OK):
        what = db if db.exists() and not os.access(db, os.W_OK) else q
        raise NormbenchError(f"{where}: {what} is not writable; give yourself write access, or export to a store in "
                             f"a folder you can write to (--tracking-uri sqlite:///FOLDER/{DB})")
    if not db.exists() or db.stat().st_size == 0:
        return
    with open(db, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise NormbenchError(f"{where}: {db} is not a SQLite database; name a new file or an MLflow store")
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise NormbenchError(f"{where}: cannot read {db} ({e}); check the file") from None
    if tables and not MLFLOW_TABLES <= tables and not force:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise NormbenchError(f"{where}: {db} is a SQLite database of another application (tables {shown}), not an "
                             "MLflow store, and MLflow would create its own tables inside it; name another file, "
                             "or pass --force to add them anyway")


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
            where = f"--tracking-uri {uri}" if named else f"the default store {uri}"
            raise NormbenchError(f"{where}: cannot use the folder {db.parent} ({e.strerror}); "
                                 "choose a store in a folder you can write to") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None


def _export(paths, tracking_uri, experiment, MlflowClient, Metric, Param, RunTag) -> Exported:
    runs = results.load_runs(paths)
    finished = [r for r in runs if r.status in FINISHED]
    out = Exported(tracking_uri or (default_tracking_uri(runs[0].path) if runs else ""), experiment)
    out.unfinished = [(r.path, r.status) for r in runs if r.status not in FINISHED]
    if not finished:
        return out

    client = MlflowClient(tracking_uri=out.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        where = _sqlite_dir(out.tracking_uri)  # artifacts beside a local database, not in the cwd
        exp_id = client.create_experiment(experiment, artifact_location=(where / ARTIFACTS).as_uri() if where else None)
    else:
        exp_id = exp.experiment_id
    present, partial = set(), []
    for mr in _all_runs(client, exp_id):
        key = (mr.data.tags.get(TAG_ID), mr.data.tags.get(TAG_SHA))
        if key[0] is None:
            continue
        if mr.data.tags.get(TAG_DONE) == "true":
            present.add(key)
        else:
            partial.append((key, mr.info.run_id))
    for key, run_id in partial:  # an export cut short: replaced below (or by a complete copy)
        client.delete_run(run_id)

    for run in finished:
        key = (run_name(run.path), _sha(run.path))
        if key in present:
            out.present.append(run.path)
            continue
        _export_one(client, exp_id, run, key, Metric, Param, RunTag)
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


def _export_one(client, exp_id, run, key, Metric, Param, RunTag) -> None:
    s = run.summary
    start, end = _ms(s.get("started_at")), _ms(s.get("finished_at"))
    tags = {TAG_ID: key[0], TAG_SHA: key[1], "normbench.status": run.status, "normbench.path": str(run.path)}
    if s.get("error"):
        tags["normbench.error"] = str(s["error"])[:5000]
    mr = client.create_run(exp_id, start_time=start, tags=tags, run_name=key[0])
    rid = mr.info.run_id
    t = end or start or 0
    params = [Param(k, _param(v)[:6000]) for k, v in run.config.items()]
    metrics = []
    for row in runfolder.read_history(run.path):
        if not runfolder.well_formed(row):
            continue
        for column in runfolder.HISTORY_COLUMNS[1:]:
            if row[column] not in ("", None) and math.isfinite(float(row[column])):
                metrics.append(Metric(column, float(row[column]), t, int(row["epoch"])))
    last = int(s.get("epochs_completed") or 0)
    for k, v in s.items():
        if _number(v) is not None and k not in ("seed", "batch_size"):  # those two are params
            metrics.append(Metric(k, _number(v), t, last))
    for chunk in _chunks(params, 100):  # MLflow's per-request limits
        client.log_batch(rid, params=chunk)
    for chunk in _chunks(metrics, 1000):
        client.log_batch(rid, metrics=chunk)
    for name in runfolder.RESULT_FILES:
        if (run.path / name).exists():
            client.log_artifact(rid, str(run.path / name))
    client.set_terminated(rid, status="FAILED" if run.status == "failed" else "FINISHED", end_time=end)
    client.set_tag(rid, TAG_DONE, "true")
