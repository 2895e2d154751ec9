"""`normbench ls PATH`: one line per run folder, so an unfinished or diverged run is easy
to find. Reads run folders through `normbench.analysis.runs.load_runs`, as compare does."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from normbench.analysis.runs import load_runs
from normbench.store import runfolder

# every status a run folder can show: summary.json's, then runs.Run's own
STATUSES = (*runfolder.STATUSES, "unfinished", "not started", "corrupt")
HEADER = ("run", "status", "norm", "seed", "test_acc", "epochs", "age")


@dataclass
class Entry:
    path: Path
    status: str
    norm: str
    seed: str
    test_accuracy: float | None
    epochs_done: int
    epochs_total: int | None
    age_seconds: float | None  # since the run finished, else since it last wrote a file

    def cells(self, base: Path | None) -> tuple:
        try:
            name = str(self.path.relative_to(base)) if base else str(self.path)
        except ValueError:
            name = str(self.path)
        acc = "-" if self.test_accuracy is None or math.isnan(self.test_accuracy) else f"{self.test_accuracy:.4f}"
        total = "?" if self.epochs_total is None else str(self.epochs_total)
        return (name or ".", self.status, self.norm, self.seed, acc, f"{self.epochs_done}/{total}", age(self.age_seconds))


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _last_write(d: Path) -> float | None:
    times = [p.stat().st_mtime for p in (d / f for f in (*runfolder.RESULT_FILES, runfolder.LOG)) if p.exists()]
    return max(times) if times else None


def entries(paths, statuses=(), now: float | None = None) -> list[Entry]:
    """The run folders under `paths`, those whose status is in `statuses` (all when empty)."""
    now = time.time() if now is None else now
    out = []
    for run in load_runs(paths):
        if statuses and run.status not in statuses:
            continue
        total = run.summary.get("epochs", run.config.get("train.epochs"))
        acc = run.summary.get("test_accuracy")
        finished = run.finished_time if run.summary.get("finished_at") else None  # a finished run's own time
        last = finished or _last_write(run.path)
        try:
            done = int(run.epochs_completed)
        except (TypeError, ValueError):
            done = 0
        out.append(Entry(run.path, run.status, str(run.config.get("model.norm", "?")), str(run.config.get("seed", "?")),
                         float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None,
                         done, total if isinstance(total, int) else None, None if last is None else max(0.0, now - last)))
    return out


def _record(e: Entry, base: Path | None) -> dict:
    """One run as a flat record for scripts: numbers as numbers (null when absent)."""
    try:
        name = str(e.path.relative_to(base)) if base else str(e.path)
    except ValueError:
        name = str(e.path)
    acc = None if e.test_accuracy is None or math.isnan(e.test_accuracy) else e.test_accuracy
    return {"run": name or ".", "status": e.status, "norm": e.norm, "seed": e.seed, "test_accuracy": acc,
            "epochs_done": e.epochs_done, "epochs_total": e.epochs_total,
            "age_seconds": None if e.age_seconds is None else round(e.age_seconds, 1), "path": str(e.path)}


def format_json(rows: list[Entry], base: Path | None = None) -> str:
    """one JSON array of records (pandas: pd.read_json(io.StringIO(text)) or pd.DataFrame(json.loads(text)))"""
    import json

    return json.dumps([_record(e, base) for e in rows], indent=1) + "\n"


def format_csv(rows: list[Entry], base: Path | None = None) -> str:
    """CSV with a header row, the JSON records' columns (pandas: pd.read_csv)"""
    import csv
    import io

    buf = io.StringIO()
    cols = list(_record(rows[0], base)) if rows else ["run", "status", "norm", "seed", "test_accuracy", "epochs_done",
                                                        "epochs_total", "age_seconds", "path"]
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    for e in rows:
        w.writerow({k: "" if v is None else v for k, v in _record(e, base).items()})
    return buf.getvalue()


def format_entries(rows: list[Entry], base: Path | None = None, fmt: str = "table") -> str:
    """The rows in format `fmt` (a FORMATS name); "table": a plain aligned table (run
    folders relative to `base`)."""
    if fmt != "table":
        return FORMATS[fmt](rows, base)
    cells = [HEADER, *(e.cells(base) for e in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


# ls --format: name -> formatter(rows, base) (the table is format_entries' own)
FORMATS = {"table": None, "json": format_json, "csv": format_csv}
