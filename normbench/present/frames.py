"""Run folders as pandas DataFrames, for notebooks (docs/bridges.md):

- `load_runs(paths)`    one row per run: run, status, path, the flattened resolved config
                        (dotted keys: model.norm, train.batch_size ...), summary.json's
                        figures (nested ones flattened: versions.keras, host.cpu ...)
- `load_history(paths)` long form: one row per run and epoch (run, path, epoch, loss,
                        accuracy, val_loss, val_accuracy, learning_rate, epoch_seconds)

Both read run folders through `normbench.analysis.runs.load_runs`, the reading `normbench compare` uses,
so a DataFrame holds the same runs, statuses and filled-in config defaults as compare.
`run` is `<name>/<run-id>` (the folder's last two parts); `path` joins the two frames
exactly. pandas is imported inside the functions.
"""

from __future__ import annotations

import csv

from normbench.analysis import runs as run_folders
from normbench.store import runfolder
from normbench.schema.config import flatten



def run_name(path) -> str:
    """`<name>/<run-id>`: how the frames (and MLflow's run names) call a run folder."""
    return f"{path.parent.name}/{path.name}"


def _row(run: run_folders.Run) -> dict:
    row = {"run": run_name(run.path), "status": run.status, "path": str(run.path)}
    row.update(run.config)
    for key, value in flatten(run.summary).items():
        if key in row or key == "status":  # seed, name: the config's own, the same value
            continue
        row[key] = str(value) if isinstance(value, (list, dict)) else value
    if run.problem:
        row["problem"] = run.problem
    return row


def load_runs(paths):
    """One row per run folder under `paths` (as `normbench compare` finds them): every
    status, corrupt folders too (status "corrupt", the reason in `problem`)."""
    import pandas as pd

    rows = [_row(run) for run in run_folders.load_runs(paths)]
    return pd.DataFrame(rows)


def load_history(paths):
    """Every run's history.csv in long form, one row per run and epoch (rows a crash cut
    short are left out, as compare and plot leave them out)."""
    import pandas as pd

    frames = []
    for run in run_folders.load_runs(paths):
        try:
            rows = [r for r in runfolder.read_history(run.path) if runfolder.well_formed(r)]
        except (OSError, UnicodeDecodeError, csv.Error):  # compare lists such a run apart; no curve to give
            rows = []
        if not rows:
            continue
        df = pd.DataFrame(rows, columns=runfolder.HISTORY_COLUMNS).apply(pd.to_numeric, errors="coerce")
        df["epoch"] = df["epoch"].astype(int)
        df.insert(0, "path", str(run.path))
        df.insert(0, "run", run_name(run.path))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run", "path", *runfolder.HISTORY_COLUMNS])
    return pd.concat(frames, ignore_index=True)
