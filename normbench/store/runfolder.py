"""The run folder: the one contract between training, sweeps and results. Only this
module knows the file names and formats; `train`, `sweep`, `results` and the tests
read and write run folders through it.

    <output.dir>/runs.csv            one line per finished run (INDEX_COLUMNS), under a lock
    <output.dir>/<name>/<run-id>/    a run folder (`run_path`, `new_run_dir`)
        config.yaml   the fully resolved config, written first
        config.json   config.yaml as compare reads it (flat JSON), written with it: a cache (`read_config_index`)
        history.csv   one row per finished epoch (HISTORY_COLUMNS), appended as it ends
        summary.json  written atomically at the end (SUMMARY_KEYS)
        backup/       resume state while the run is unfinished
        log.txt       a sweep member's output (local executor)
        .lock         held by the process training the run (runlock.py)
        role.json     a `normbench tune` member only: its ROLES role (`write_role`)
        command.txt   a sweep or tune member: the command line that created it (`write_command`)
        .progress     while it trains: epoch and step, for a sweep's status line (`write_progress`)

A folder without summary.json, or whose summary.json status is not "completed", is
not a finished run. Error policy, for every reader: a missing file is "not there yet"
(None / []); a file that exists but cannot be parsed raises NormbenchError naming the
file, except `status()`, which is for a process about to train the run again and
treats an unreadable summary.json as "not finished" (the rerun rewrites it).

Nothing here imports TensorFlow, Keras or click; pandas only inside `history_frame`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
from pathlib import Path

from normbench.core.errors import NormbenchError, one_line
from normbench.core.atomic import write_atomic  # every file of a run folder is written whole
from normbench.core import metrics  # the summary metrics' descriptions (and the new ones' keys)
from normbench.core.runlock import LOCK_NAME as LOCK

CONFIG = "config.yaml"
CONFIG_INDEX = "config.json"
HISTORY = "history.csv"
SUMMARY = "summary.json"
BACKUP = "backup"
LOG = "log.txt"
ROLE = "role.json"
COMMAND = "command.txt"
PROGRESS = ".progress"
INDEX = "runs.csv"
# folders under an output.dir that hold copies of run files, never runs: the walk that
# finds run folders (runs.find_run_dirs) does not enter them
MLFLOW_ARTIFACTS = "mlartifacts"  # `normbench export mlflow`'s artifact store beside mlflow.db
NOT_RUNS = (MLFLOW_ARTIFACTS,)
# files that make a folder a run folder (config.yaml alone: created, not started yet)
MARKERS = (SUMMARY, CONFIG)
# the files a run's result consists of (what a worker without shared storage sends back)
RESULT_FILES = (CONFIG, HISTORY, SUMMARY)

# What each file, column, key and status means is data here, beside the names: docs/runfolder.md
# is rendered from these tables (`python -m normbench.store.runfolder > docs/runfolder.md`), and
# tests/test_docs.py fails when the committed file differs from what describe_markdown() renders.

# a run folder's files -> what each holds (runlock.py's .lock is listed with them in the docs)
FILES = {
    CONFIG: "the fully resolved config (every default written out), written first",
    CONFIG_INDEX: "config.yaml as compare reads it (resolved, flattened to dotted keys), as JSON, written right "
                  "after it: a cache that spares reading YAML. Used only while its config_sha256 is config.yaml's "
                  "sha256 and its schema is the reading version's config schema (config.schema_key); otherwise, "
                  "or when it is missing (runs from before it), config.yaml is read. Safe to delete",
    HISTORY: "one row per finished epoch (HISTORY_COLUMNS), appended as the epoch ends",
    SUMMARY: "written atomically at the end (SUMMARY_KEYS); a folder without it is unfinished",
    BACKUP: "resume state (Keras BackupAndRestore, optimizer state included) while the run is unfinished; "
            "deleted when summary.json is written, so no weights stay behind",
    LOG: "a sweep member's console output (local executor)",
    LOCK: "held by the process training the run (one owner at a time; normbench/core/runlock.py)",
    ROLE: "`normbench tune` members only: the run's role (ROLES) and how the tune chose, written before it trains",
    COMMAND: "`normbench sweep` and `tune` members: the command line that created the folder, one line, written with "
             "config.yaml (`normbench report` lists it under the commands that reproduce the study)",
    PROGRESS: "while the run trains: its epoch and step within the epoch, rewritten at most once a second (a "
              "sweep's live status line reads it); deleted when training ends. Local state, not a result",
}

# history.csv's columns, in file order -> what each holds
HISTORY_DESCRIPTIONS = {
    "epoch": "the epoch, from 1",
    "loss": "training loss of the epoch as Keras logs it (the mean over its steps)",
    "accuracy": "training accuracy of the epoch (the same mean)",
    "val_loss": "validation loss after the epoch",
    "val_accuracy": "validation accuracy after the epoch",
    "learning_rate": "the rate the epoch's last optimizer step used, after scaling, warm-up and schedule "
                     "(docs/training.md)",
    "epoch_seconds": "wall time of the epoch, validation included",
    "grad_norm_mean": "mean over the epoch's training steps of the global gradient norm (the L2 norm of all "
                      "gradients together, before the update); steps with a non-finite norm left out; empty on the "
                      "jax backend and in runs from before it",
    "grad_norm_max": "the largest of those norms in the epoch",
    "nonfinite_steps": "training steps of the epoch whose gradient norm was NaN or inf (a non-finite loss); "
                       "Keras' TerminateOnNaN stops the run at the first such batch",
}
HISTORY_COLUMNS = list(HISTORY_DESCRIPTIONS)
# columns added after runs were recorded: a row without them is still whole (well_formed)
OPTIONAL_HISTORY = ("grad_norm_mean", "grad_norm_max", "nonfinite_steps")

# runs.csv's columns, in file order -> what each holds
INDEX_DESCRIPTIONS = {
    "run_id": "summary.json's run_id (the run folder's name)",
    "name": "summary.json's name (the config's name)",
    "model": "summary.json's model (model.arch)",
    "norm": "summary.json's norm (model.norm)",
    "seed": "summary.json's seed",
    "batch_size": "summary.json's batch_size (train.batch_size)",
    "status": "summary.json's status",
    "test_accuracy": "summary.json's test_accuracy",
    "test_loss": "summary.json's test_loss",
    "path": "the run folder, relative to the folder holding runs.csv",
}
INDEX_COLUMNS = list(INDEX_DESCRIPTIONS)

# summary.json's status -> what it means, and the exit status of `normbench run`
STATUS_DESCRIPTIONS = {
    "running": "the run is training (the value while it runs; a folder without summary.json is unfinished)",
    "completed": "trained every epoch and evaluated on the test set; exit status 0",
    "diverged": "the loss became NaN/inf (Keras' TerminateOnNaN); exit status 2",
    "interrupted": "Ctrl-C or SIGTERM; resumable; exit status 130",
    "failed": "an error (summary.json's error says which); exit status 1",
}
STATUSES = tuple(STATUS_DESCRIPTIONS)
# role.json "role" -> what the run is for (normbench tune): compare tells them apart, and
# the tuning runs are never averaged into the tuned verdict
ROLES = {
    "tuning": "a grid point on a tuning seed: its validation score picks each norm's point",
    "confirmation": "a fresh seed at its norm's selected point: the tuned comparison uses these only",
}

# every key train.py writes into summary.json -> what it holds. `write_summary` refuses
# any other key, so a renamed key fails loudly in train and in the test fixtures alike.
def _metric(name: str) -> str:
    """A metric's summary.json description: its entry in normbench/core/metrics.py owns it."""
    return metrics.TABLE[name].description


def _with_new_metrics(keys: dict) -> dict:
    """`keys` with every summary metric of the metric table that it does not name (a new
    one: one entry in metrics.py) added before finished_at."""
    new = {m.name: m.description for m in metrics.TABLE.values() if m.source == "summary" and m.name not in keys}
    return {**{k: v for k, v in keys.items() if k != "finished_at"}, **new, "finished_at": keys["finished_at"]}


SUMMARY_KEYS = _with_new_metrics({
    "status": "one of STATUSES (the statuses below)",
    "run_id": "the run folder's name",
    "name": "config name",
    "model": "model.arch",
    "norm": "model.norm",
    "seed": "seed",
    "batch_size": "train.batch_size",
    "data_source": "where the data came from (Keras download or a file)",
    "data_fingerprint": "sha256 of the arrays actually used, before scaling",
    "identity": "sha256 of what determines the training (normbench/store/identity.py): the resolved config without "
                "name, output.*, sweep.*, role and data.path; the seed; data_fingerprint; versions.normbench; the "
                "backend; model_sha256. compare and tune count runs of one identity as one run, and export mlflow "
                "tells runs apart by it; for runs from before this key it is computed from config.yaml and "
                "summary.json",
    "preprocess_fingerprint": "sha256 of data.preprocess's method, the training rows it was fitted on and the "
                              "statistics it fitted (normbench/build/preprocess.py); null for preprocess none. compare "
                              "groups runs by it with data_fingerprint",
    "eval": "train.eval: which weights test_loss/test_accuracy come from (last or best)",
    "n_train": "training examples (after the validation split)",
    "n_val": "validation examples",
    "n_test": "test examples",
    "chance_accuracy": "the test set's majority-class rate (always predicting its most frequent class); compare flags "
                       "a group not above it as \"did not learn\"",
    "params": "model parameters (count_params)",
    "steps_per_epoch": "training steps per epoch",
    "optimizer_steps": "optimizer steps of the whole run: epochs x steps_per_epoch",
    "peak_learning_rate": "train.learning_rate after train.lr_scaling (the schedule's peak)",
    "jit_compile": "what Keras resolved train.jit_compile (auto) to",
    "unroll": "what model.unroll (auto) resolved to",
    "precision": "the Keras dtype policy the model was built under (train.precision)",
    "deterministic": "train.deterministic",
    "op_determinism": "whether TensorFlow op determinism was on in the run's process (null on jax)",
    "started_at": "ISO time the run (or this resume) started",
    "versions": "python, tensorflow, keras, numpy, normbench, backend (and jax on that backend)",
    "host": "cpu (the CPU model), cpu_count (cores), gpus, platform",
    "model_source": "user models only: model.layers file (or 'model.layers'), model.from file or model.arch builder",
    "model_sha256": "user models only: sha256 of that file (or of the inline layer list); compare groups on it",
    "norm_slots": "user models only: one line per norm slot (name, kind, input shape, old layer -> new layer)",
    "norm_slots_verified": "user models only: norm slots found holding model.norm when the built model was walked "
                           "(nested models included) before training; no norm layer was left outside them",
    "error": "failed runs only: the exception, one line",
    "epochs_completed": "rows in history.csv",
    "epochs": "epochs trained: train.epochs, or what train.budget steps resolved it to",
    "test_loss": _metric("test_loss"),
    "test_accuracy": _metric("test_accuracy"),
    "test_loss_last": _metric("test_loss_last"),
    "test_accuracy_last": _metric("test_accuracy_last"),
    "test_loss_best": _metric("test_loss_best"),
    "test_accuracy_best": _metric("test_accuracy_best"),
    "best_val_accuracy": _metric("best_val_accuracy"),
    "best_epoch": _metric("best_epoch"),
    "last_val_accuracy": _metric("last_val_accuracy"),
    "final_train_loss": _metric("final_train_loss"),
    "first_train_loss": "loss of the first epoch (compare flags a group whose final train loss is not below it as "
                        "\"did not learn\")",
    "wall_seconds": _metric("wall_seconds"),
    "first_epoch_seconds": "the first epoch's time (includes graph tracing)",
    "mean_epoch_seconds": _metric("mean_epoch_seconds"),
    "epochs_to_95": _metric("epochs_to_95"),
    "mean_grad_norm": _metric("mean_grad_norm"),
    "max_grad_norm": _metric("max_grad_norm"),
    "nonfinite_steps": "training steps of the run whose gradient norm was NaN or inf (history.csv's column summed)",
    "ms_per_step": _metric("ms_per_step"),
    "finished_at": "ISO time the summary was written",
})
OPTIONAL_SUMMARY_KEYS = ("error", "model_source", "model_sha256", "norm_slots", "norm_slots_verified")


def _corrupt(path: Path, why: str) -> NormbenchError:
    return NormbenchError(f"{path}: corrupt {path.name} ({why}); rerun that run or delete its folder")


class UnreadableFile(NormbenchError):
    """A run's file that exists but cannot be read (permissions, I/O): not corrupt, and
    never a reason to delete a finished run."""


def unreadable(path: Path, e: OSError) -> UnreadableFile:
    if isinstance(e, IsADirectoryError):  # not a permissions problem: something made a folder of that name
        return UnreadableFile(f"{path}: is a folder, not the file normbench writes; move that folder "
                              f"out of the run folder (it holds no result of this run) and try again")
    why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or e.__class__.__name__)
    return UnreadableFile(f"{path}: cannot read {path.name} ({why}); a permissions or disk problem, not a broken run: "
                          f"give yourself read access (e.g. chmod -R u+rX {path.parent}) and try again")


# ----------------------------------------------------------------------------- layout


def run_path(output_dir, name: str, run_id: str) -> Path:
    """The folder of run `run_id` of config `name`: <output.dir>/<name>/<run-id>."""
    return Path(output_dir) / name / run_id


def new_run_dir(output_dir, name: str, seed: int, run_id: str | None = None) -> Path:
    """Create and return a run folder that no other run uses (default id:
    <date>-<time>-seed<seed>, with -1, -2, ... when taken)."""
    parent = Path(output_dir) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NormbenchError(f"output.dir: cannot create {parent} ({e.strerror}); choose a writable folder") from None
    base = run_id or f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-seed{seed}"
    for i in range(1000):
        d = parent / (base if i == 0 else f"{base}-{i}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise NormbenchError(f"output.dir: more than 1000 runs named {base} in {parent}; clean it up")


def is_run_dir(files) -> bool:
    """Whether a folder holding these file names is a run folder."""
    return any(m in files for m in MARKERS)


def has_history(run_dir) -> bool:
    return (Path(run_dir) / HISTORY).exists()


# ----------------------------------------------------------------------------- files


def write_config(run_dir, config_text: str) -> None:
    """config.yaml, the resolved config as YAML text (config.dump_yaml), then config.json,
    its index: what `read_config_index` gives back while config.yaml stays these bytes."""
    d = Path(run_dir)
    data = config_text.encode("utf-8")
    write_atomic(d / CONFIG, data)
    index = _config_index(d, data)
    if index is None:
        (d / CONFIG_INDEX).unlink(missing_ok=True)
    else:
        write_atomic(d / CONFIG_INDEX, index)


def _config_index(d: Path, data: bytes) -> str | None:
    """config.json's text for config.yaml `data`; None when there is none to write: a config
    that does not load as a mapping (the reader reports it), or values JSON would not give
    back exactly (tuples, dates, NaN, keys that are not text)."""
    import yaml

    from normbench.schema import config

    key = config.schema_key()
    if key is None:
        return None
    try:
        raw = config.load_run_yaml(config_text(data))
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(raw, dict):
        return None
    flat = config.resolve_flat(raw, str(d / CONFIG))
    try:
        if json.loads(json.dumps(flat, allow_nan=False)) != flat:
            return None
    except (TypeError, ValueError):
        return None
    return json.dumps({"config_sha256": hashlib.sha256(data).hexdigest(), "schema": key, "config": flat},
                      indent=2, allow_nan=False) + "\n"


def config_text(data: bytes) -> str:
    """config.yaml's bytes as text, as Path.read_text reads it (UTF-8, universal newlines).
    Raises UnicodeDecodeError."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def read_config_index(run_dir, data: bytes, schema: str | None) -> dict | None:
    """The flat config in config.json, when it is the index of config.yaml's `data` (its
    sha256) resolved under config schema `schema` (config.schema_key); None otherwise:
    missing, unreadable, not ours, stale (config.yaml changed since), or resolved by a
    version with another schema. Then the caller reads config.yaml. Never raises: it is a
    cache, and config.yaml is the record."""
    if schema is None:
        return None
    try:
        with open(Path(run_dir) / CONFIG_INDEX, "rb") as f:
            index = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if (not isinstance(index, dict) or index.get("schema") != schema or not isinstance(index.get("config"), dict)
            or index.get("config_sha256") != hashlib.sha256(data).hexdigest()):
        return None
    return index["config"]


def read_files(run_dir) -> dict[str, str]:
    """The result files of a run folder that exist, name -> text (to copy a run
    trained elsewhere; `write_files` writes them back)."""
    d = Path(run_dir)
    return {name: (d / name).read_text(encoding="utf-8") for name in RESULT_FILES if (d / name).exists()}


def write_files(run_dir, files: dict[str, str]) -> None:
    """Write files from `read_files` into a run folder, summary.json last so that a
    copy cut short never looks finished."""
    d = Path(run_dir)
    unknown = set(files) - set(RESULT_FILES)
    if unknown:
        raise ValueError(f"not run-folder result files: {sorted(unknown)}")
    for name in sorted(files, key=lambda n: n == SUMMARY):
        if name == CONFIG:
            write_config(d, files[name])  # with its index
        else:
            write_atomic(d / name, files[name])


# ----------------------------------------------------------------------------- summary.json


def write_summary(run_dir, summary: dict) -> None:
    unknown = [k for k in summary if k not in SUMMARY_KEYS]
    if unknown:
        raise ValueError(f"summary.json keys not in runfolder.SUMMARY_KEYS: {unknown}")
    # JSON has no Infinity or NaN (json.dumps would write them, and strict readers refuse
    # the file): a non-finite number is recorded as null, like the metrics of a diverged run
    write_atomic(Path(run_dir) / SUMMARY, json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n")


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def remove_summary(run_dir) -> None:
    """Nothing stale looks finished while a run (re)trains."""
    (Path(run_dir) / SUMMARY).unlink(missing_ok=True)


def read_summary(run_dir) -> dict | None:
    """summary.json as a dict; None when there is none (not finished). A file that is
    unreadable, not JSON, or has no "status" raises NormbenchError naming it."""
    sp = Path(run_dir) / SUMMARY
    try:
        text = sp.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise unreadable(sp, e) from None
    except UnicodeDecodeError as e:
        raise _corrupt(sp, e.__class__.__name__) from None
    try:
        summary = json.loads(text)
    except ValueError as e:
        raise _corrupt(sp, one_line(e, 80)) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        raise _corrupt(sp, 'no "status" field')
    return summary


def status(run_dir) -> str | None:
    """The run's status in summary.json; None when it has not finished (no summary.json,
    or one that cannot be read: a run started again rewrites it)."""
    try:
        summary = read_summary(run_dir)
    except NormbenchError:
        return None
    return summary["status"] if summary else None


# ----------------------------------------------------------------------------- role.json


def write_role(run_dir, role: str, **info) -> None:
    """role.json: the run's ROLES role and how the tune that made it chose (`info`:
    JSON-able values, e.g. select=, per=, grid=). Written by the tune driver before the
    run trains; training never touches it."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} not in runfolder.ROLES")
    write_atomic(Path(run_dir) / ROLE, json.dumps({"role": role, **info}, indent=2, sort_keys=True) + "\n")


def write_progress(run_dir, epoch: int, step: int, steps: int | None) -> None:
    """.progress: where training is within the run (replaced whole; no fsync: it is a hint)."""
    d = Path(run_dir)
    tmp = d / f".{PROGRESS}.tmp{os.getpid()}"
    try:
        tmp.write_text(json.dumps({"epoch": epoch, "step": step, "steps": steps}), encoding="utf-8")
        os.replace(tmp, d / PROGRESS)
    except OSError:  # a full disk must not stop training for a progress hint
        tmp.unlink(missing_ok=True)


def read_progress(run_dir) -> dict | None:
    """{"epoch", "step", "steps"} of a run that is training, else None."""
    try:
        p = json.loads((Path(run_dir) / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return p if isinstance(p, dict) and isinstance(p.get("epoch"), int) and isinstance(p.get("step"), int) else None


def remove_progress(run_dir) -> None:
    try:
        (Path(run_dir) / PROGRESS).unlink(missing_ok=True)
    except OSError:
        pass


# The command line of this process as `normbench ...`, set by the CLI (cli.main) and
# written into each folder a sweep or tune creates; None when normbench runs as a library.
_command_line: str | None = None


def set_command_line(args) -> None:
    """Record this process's command (the CLI's arguments, without the program name)."""
    import shlex

    global _command_line
    _command_line = shlex.join(["normbench", *map(str, args)])


def write_command(run_dir) -> None:
    """command.txt: the command line that created the folder, when the CLI recorded one."""
    if _command_line is not None:
        write_atomic(Path(run_dir) / COMMAND, _command_line + "\n")


def read_command(run_dir) -> str | None:
    """The command.txt line of a run folder; None when it has none (made before it was
    recorded, by `normbench run`, or through the library) or it cannot be read."""
    try:
        text = (Path(run_dir) / COMMAND).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def read_role(run_dir) -> dict | None:
    """role.json as a dict; None when there is none (not a tune member). A file that is
    unreadable, not JSON, or has no known "role" raises NormbenchError naming it."""
    rp = Path(run_dir) / ROLE
    try:
        text = rp.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise _corrupt(rp, e.__class__.__name__) from None
    try:
        role = json.loads(text)
    except ValueError as e:
        raise _corrupt(rp, one_line(e, 80)) from None
    if not isinstance(role, dict) or role.get("role") not in ROLES:
        raise _corrupt(rp, f"no \"role\" field of {', '.join(ROLES)}")
    return role


# ----------------------------------------------------------------------------- history.csv


def read_history(run_dir) -> list[dict]:
    """history.csv rows as dicts of strings; [] when there is none."""
    try:
        with open(Path(run_dir) / HISTORY, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def well_formed(row: dict) -> bool:
    """Whether a history.csv row (from `read_history`) is whole: an integer epoch >= 1,
    every column present, each value a number or empty, nothing extra. A line cut short
    by a crash or a full disk is not."""
    try:
        if int(row.get("epoch")) < 1:
            return False
    except (TypeError, ValueError):
        return False
    if row.get(None):  # csv.DictReader files surplus fields under None
        return False
    for column in HISTORY_COLUMNS[1:]:
        value = row.get(column)
        if value is None:
            if column in OPTIONAL_HISTORY:
                continue
            return False
        if value != "":
            try:
                float(value)
            except ValueError:
                return False
    return True


def reconcile_history(run_dir, upto: int) -> int:
    """Keep the well-formed rows of epochs 1..`upto` (the epochs a restored backup has
    finished; the last row of an epoch wins) and drop the rest: rows of epochs past the
    backup and rows that do not parse (a truncated last line, bytes that are not UTF-8).
    Rewrites history.csv only when something changes; returns the rows dropped that did
    not parse."""
    hp = Path(run_dir) / HISTORY
    try:
        text = hp.read_bytes().decode("utf-8", errors="replace").replace("\0", "")
    except FileNotFoundError:
        return 0
    rows = list(csv.DictReader(io.StringIO(text)))
    good = [r for r in rows if well_formed(r)]
    by_epoch = {int(r["epoch"]): r for r in good if int(r["epoch"]) <= upto}
    kept = [{c: by_epoch[e].get(c) or "" for c in HISTORY_COLUMNS} for e in sorted(by_epoch)]
    if kept != rows:
        write_history(run_dir, kept)
    return len(rows) - len(good)


def count_epochs(run_dir) -> int:
    """Rows in history.csv (0 when missing or unreadable)."""
    try:
        return len(read_history(run_dir))
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0


def write_history(run_dir, rows: list[dict]) -> None:
    """Replace history.csv (atomically) with `rows`."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, HISTORY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(Path(run_dir) / HISTORY, buf.getvalue())


def append_history(run_dir, row: dict) -> None:
    """Append one epoch's row (the file, with its header, exists: `write_history` first)."""
    with open(Path(run_dir) / HISTORY, "a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, HISTORY_COLUMNS, lineterminator="\n").writerow(row)


def remove_history(run_dir) -> None:
    (Path(run_dir) / HISTORY).unlink(missing_ok=True)


def history_frame(run_dir, columns=("epoch", "loss", "accuracy", "val_loss", "val_accuracy")):
    """history.csv as a float pandas DataFrame of `columns`; NormbenchError naming the
    file when it is missing or corrupt."""
    import pandas as pd

    hp = Path(run_dir) / HISTORY
    try:
        df = pd.read_csv(hp)
    except FileNotFoundError:
        raise NormbenchError(f"{hp}: missing; the run folder is incomplete, rerun that run or delete its folder") from None
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise _corrupt(hp, e.__class__.__name__) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise _corrupt(hp, f"no {', '.join(missing)} column")
    try:
        return df[list(columns)].astype(float)
    except ValueError:
        raise _corrupt(hp, "a value is not a number") from None


# a value history.csv's fast reading (history_rows) takes: a plain decimal number, or empty (NaN)
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def history_rows(run_dir, columns=("epoch", "loss", "accuracy", "val_loss", "val_accuracy")) -> list[tuple]:
    """history.csv's `columns` as one tuple of floats per row: the numbers history_frame
    gives, read with the csv module (pandas' read_csv costs ~3 ms a file; plot reads every
    run's). A file this plain reading does not take whole (a value that is not a plain
    decimal number or empty, a row of another length, a blank line, a missing or repeated
    column, bytes that are not UTF-8) is read by history_frame instead, with its errors."""
    hp = Path(run_dir) / HISTORY
    try:
        with open(hp, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        rows = None
    if rows:
        header, match = rows[0], _PLAIN_NUMBER.fullmatch
        if len(set(header)) == len(header) and all(c in header for c in columns):
            at = [header.index(c) for c in columns]
            if all(len(r) == len(header) and all(v == "" or match(v) for v in r) for r in rows[1:]):
                return [tuple(float(r[i]) if r[i] else math.nan for i in at) for r in rows[1:]]
    return list(history_frame(run_dir, columns).itertuples(index=False, name=None))


# ----------------------------------------------------------------------------- runs.csv


def append_index(output_dir, summary: dict, run_dir) -> None:
    """One line per run folder in <output.dir>/runs.csv: appended, or replaced when the
    run already has one (a diverged or failed run resumed), under an exclusive lock so
    that two runs finishing at once never interleave or both write the header."""
    import fcntl

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    index = output_dir / INDEX
    row = {k: summary.get(k) for k in INDEX_COLUMNS}
    row["path"] = os.path.relpath(run_dir, output_dir)
    while True:
        fd = os.open(index, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(index).st_ino == os.fstat(fd).st_ino:
                break  # still the index (a replace below swaps the file while others wait)
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        with open(index, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        buf = io.StringIO()
        w = csv.DictWriter(buf, INDEX_COLUMNS, lineterminator="\n", extrasaction="ignore")
        if any(r.get("path") == row["path"] for r in rows):
            w.writeheader()
            w.writerows(row if r.get("path") == row["path"] else r for r in rows)
            write_atomic(index, buf.getvalue())
        else:
            if os.fstat(fd).st_size == 0:
                w.writeheader()
            w.writerow(row)
            os.write(fd, buf.getvalue().encode())
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ----------------------------------------------------------------------------- docs/runfolder.md

DOC_COMMAND = "python -m normbench.store.runfolder > docs/runfolder.md"

_DOC_INTRO = """\
`normbench run` prints the folder and a one-line summary when it ends:

```
completed: test_accuracy 0.7572, test_loss 0.5470, wall 180.9 s, 94.6 ms/step -> results/imdb_ln/20261125-120401-seed0
```

```
results/<name>/<run-id>/        run-id: <date>-<time>-seed<seed> (sweeps: imdb_rnn-norm=layer-bs=64-seed=0)
results/runs.csv                one line per finished run (appended under a lock; a resumed run replaces its line)
```
"""

_DOC_RESUME = """\
## Unfinished runs, resume, exit status

A folder without `summary.json` is unfinished (running, or killed); one whose status is
not `completed` never counts as a result. `normbench run --resume RUN_DIR` continues an
unfinished run from its last finished epoch (Keras `BackupAndRestore`, optimizer state
included; a Ctrl-C or SIGTERM during the backup save takes effect once the save is
complete; the backup, with the best validation epoch's weights for `train.eval: best`,
is kept until `summary.json` is written, so an interrupt during the final test
evaluation resumes by evaluating only, and it is deleted then, so no weights stay
behind). The history row is written before the backup, and on resume rows past the
restored epoch are dropped, so `history.csv` holds every epoch exactly once even after a
SIGKILL; rows that do not parse (a line cut short, NUL bytes left by a crash) are
dropped with a note on stderr, never the backup. A full disk ends the run with
`Error: output.dir: no space left on the device of RUN_DIR; free some space, then resume
with: normbench run --resume RUN_DIR` (exit 1, no temp files left; the backup keeps the
last epoch saved whole: before each save normbench checks that the weights fit, since
HDF5 leaves a half-written file and tracebacks when the disk fills mid-save).
Exit status: 0 completed, 2 diverged, 130 interrupted, 1 for any error.

The faults tested (a kill, a signal, a full disk, a corrupt file at an exact point) and
their outcomes are tabled in the [README](../README.md).
"""


def _table(header: tuple[str, str], rows: dict[str, str], code: bool = True) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for name, what in rows.items():
        cell = f"`{name}`" if code else name
        lines.append(f"| {cell} | {what.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


def describe_markdown() -> str:
    """docs/runfolder.md: the run folder's files, history.csv's columns, summary.json's keys,
    the statuses and runs.csv's columns, rendered from this module's tables (so the page
    cannot drift from what train, sweep and results read and write)."""
    files = {f"{name}/" if name == BACKUP else name: what for name, what in FILES.items()}
    optional = ", ".join(f"`{k}`" for k in OPTIONAL_SUMMARY_KEYS)
    parts = [
        "# The run folder\n",
        f"*Generated by `{DOC_COMMAND}` from the tables in `normbench/store/runfolder.py` (the one contract "
        "for what a run folder holds); edit those, then rerun the command. `tests/test_docs.py` fails when "
        "this file differs from what they render.*\n",
        _DOC_INTRO,
        "## Files of a run folder\n",
        _table(("file", "holds"), files),
        f"## `{HISTORY}` columns\n",
        "One row per finished epoch, in this column order.\n",
        _table(("column", "holds"), HISTORY_DESCRIPTIONS),
        f"## `{SUMMARY}` keys\n",
        f"Every key a run writes; `write_summary` refuses any other. Only {optional} may be absent.\n",
        _table(("key", "holds"), SUMMARY_KEYS),
        "## Statuses\n",
        _table(("status", "meaning"), STATUS_DESCRIPTIONS),
        f"## `{ROLE}` roles\n",
        "Written by `normbench tune` (docs/tune.md); compare never groups runs of different roles together, "
        "and `compare --role` keeps one role.\n",
        _table(("role", "meaning"), ROLES),
        f"## `{INDEX}` columns\n",
        f"`<output.dir>/{INDEX}`: one line per run folder, appended under an exclusive lock; a resumed "
        "(diverged or failed) run replaces its line, and the line is written beside the run "
        "(`<run folder>/../../runs.csv`) whatever the current directory.\n",
        _table(("column", "holds"), INDEX_DESCRIPTIONS),
        _DOC_RESUME,
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    import sys

    sys.stdout.write(describe_markdown())
