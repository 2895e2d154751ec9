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


def export_mlflow(paths, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> Exported:
    """Export the finished runs under `paths` into MLflow experiment `experiment` at
    `tracking_uri` (default: default_tracking_uri of the first run)."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise NormbenchError(INSTALL) from None

    from mlflow.exceptions import MlflowException

    try:
        return _export(paths, tracking_uri, experiment, MlflowClient, Metric, Param, RunTag)
    except MlflowException as e:
        uri = tracking_uri or "the default tracking URI"
        raise NormbenchError(f"mlflow {uri}: {one_line(e, 160).rstrip('.')}; check --tracking-uri and --experiment") from None


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
            if row.get(column) not in ("", None) and math.isfinite(float(row[column])):  # absent: a column newer than the run
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
