"""Shared helpers. Tests make their own small data; real-data tests skip without it.

Every helper more than one test file uses lives here, once (test files import each other
never): the CLI runner `cli`, the error checks `error_line` / `assert_one_line_error`,
configs (`write_config`), a sweep trained in this process (`sweep_here`), hand-written
run folders (`write_run`), compare's tables (`parse_table`), a normbench process started
in the background (`start_run`), and the run sets the compare and plot tests share (`three`, `two_groups`, `real_runs`: a few
tiny real trainings, once per session) with their readers (`compare_csv`, `group_stats`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NORMBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests that train in this process run Keras on TensorFlow (the configs' default
# backend); a KERAS_BACKEND=jax in the environment, or "backend" in ~/.keras/keras.json,
# must not change that. Subprocesses inherit it; the JAX tests ask for jax in the config.
os.environ["KERAS_BACKEND"] = "tensorflow"

# tests never read or fill the user's data cache (~/.cache/normbench): one per session
if "NORMBENCH_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["NORMBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="normbench-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NORMBENCH_CACHE_DIR"], True)

# a tiny, fast variant of a smoke config: 1 epoch on 160 examples
TINY = ["data.subset={train: 160, test: 64}", "train.epochs=1"]


def cli(*args, env=None):
    """normbench's CLI in this process; an exception the CLI did not map to a clean
    error propagates (catch_exceptions=False), so a traceback fails the test."""
    from normbench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


# ----------------------------------------------------------------------------- one-line errors


def error_line(result, *fragments, code=1) -> str:
    """The one `Error:` line of a failed command, checked and returned (compare it with
    == where the exact text matters): exit `code` (2: click's usage errors), no
    traceback, exactly one line starting with "Error:", and it is the last line (a
    command may print before it fails: validate prints the config, compare its notes),
    containing each fragment."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert result.output.strip().endswith(lines[0]), result.output
    for frag in fragments:
        assert frag in lines[0], lines[0]
    return lines[0]


def assert_one_line_error(r, expected, out, started=False):
    """The whole output is one `Error:` line containing `expected` (error_line, exit 1),
    and nothing half-written looks complete: an error found before training (`started`
    False) leaves no run folder under `out` at all; a run that started and failed leaves
    a summary.json that says how it ended."""
    error_line(r, expected)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    assert lines[0].startswith("Error: ")
    run_dirs = [c.parent for c in out.rglob("config.yaml")] if out.exists() else []
    if not started:
        assert run_dirs == [], "an error found before training leaves no run folder"
        return
    assert run_dirs, "the run started"
    for d in run_dirs:
        assert json.loads((d / "summary.json").read_text())["status"] != "completed"


def write_config(path: Path, **changes) -> Path:
    """A valid smoke config with dotted-key changes; value None deletes the key."""
    raw = yaml.safe_load((REPO / "configs/smoke/imdb_ln.yaml").read_text())
    for key, value in changes.items():
        parts = key.split("__")
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def out(tmp_path) -> Path:
    d = tmp_path / "results"
    return d


def shared_file(name: str) -> Path:
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real data {p} not present")
    return p


# ----------------------------------------------------------------------------- hand-written run folders


def config_dict(*, name="exp", seed=0, norm="batch", arch="cifar10_cnn", batch_size=64, epochs=3, out="results", sweep=None,
                data=None):
    data = data or ("synthetic_cifar10" if arch == "cifar10_cnn" else "synthetic_imdb")
    return {
        "name": name,
        "data": {"name": data, "path": None, "subset": {"train": 256, "test": 64}, "num_words": 10000, "maxlen": 200},
        "model": {"arch": arch, "norm": norm, "norm_groups": 8, "unroll": False},
        "seed": seed,
        "train": {"epochs": epochs, "batch_size": batch_size, "optimizer": "adam", "learning_rate": 0.001,
                  "validation_split": 0.2, "jit_compile": "auto", "deterministic": False},
        "output": {"dir": out},
        "sweep": sweep or {},
    }


FP = "sha256:" + "ab" * 32  # the data fingerprint of write_run's runs


def write_run(root: Path, *, seed, norm="batch", test_accuracy=0.5, test_loss=1.0, status="completed", epochs=3,
              batch_size=64, name=None, out="results", summary=True, curve_shift=0.0, sweep=None, run_id=None,
              fingerprint=FP, finished_at="2026-01-01T00:00:00", extra=None, **kw) -> Path:
    """A run folder as normbench.training.train writes it, with chosen numbers, through
    runfolder's writers. fingerprint=None: a run from before data fingerprints; `extra`:
    more summary keys (None deletes one). history.csv: val_accuracy epoch e is
    min(0.99, 0.3 + 0.15 e + curve_shift + 0.01 seed) - 0.05, loss 2 / e - curve_shift."""
    import yaml

    from normbench.store import runfolder

    name = name or f"exp_{norm}"
    d = runfolder.run_path(root, name, run_id or f"20260101-000000-seed{seed}-bs{batch_size}")
    d.mkdir(parents=True)
    cfg = config_dict(name=name, seed=seed, norm=norm, batch_size=batch_size, epochs=epochs, out=out, sweep=sweep, **kw)
    runfolder.write_config(d, yaml.safe_dump(cfg, sort_keys=False))
    done = epochs if status == "completed" else 1
    rows = []
    for e in range(1, done + 1):
        acc = min(0.99, 0.3 + 0.15 * e + curve_shift + 0.01 * seed)
        rows.append({"epoch": e, "loss": 2.0 / e - curve_shift, "accuracy": acc, "val_loss": 2.2 / e,
                     "val_accuracy": acc - 0.05, "learning_rate": 0.001, "epoch_seconds": 1.0 + 0.1 * seed})
    runfolder.write_history(d, rows)
    if summary:
        last = rows[-1]
        # every key train writes (None unless set below); write_summary refuses unknown keys
        s = {k: None for k in runfolder.SUMMARY_KEYS if k not in runfolder.OPTIONAL_SUMMARY_KEYS}
        s |= {
            "status": status, "run_id": d.name, "name": name, "model": cfg["model"]["arch"], "norm": norm, "seed": seed,
            "batch_size": batch_size, "test_loss": test_loss if status == "completed" else None,
            "test_accuracy": test_accuracy if status == "completed" else None,
            "best_val_accuracy": max(r["val_accuracy"] for r in rows), "best_epoch": len(rows),
            "last_val_accuracy": last["val_accuracy"], "final_train_loss": last["loss"] if status != "diverged" else None,
            "epochs_completed": len(rows), "epochs": epochs, "wall_seconds": 5.0 + seed, "first_epoch_seconds": 2.0,
            "mean_epoch_seconds": statistics.mean(r["epoch_seconds"] for r in rows), "ms_per_step": 10.0 + seed,
            "params": 1000, "steps_per_epoch": 4, "jit_compile": False, "versions": {}, "host": {},
            "data_fingerprint": fingerprint, "finished_at": finished_at, "eval": "last",
            "test_accuracy_last": test_accuracy if status == "completed" else None,
            "test_loss_last": test_loss if status == "completed" else None,
            "test_accuracy_best": test_accuracy if status == "completed" else None,
            "test_loss_best": test_loss if status == "completed" else None,
        }
        for k, v in (extra or {}).items():
            if v is None:
                s.pop(k, None)
            else:
                s[k] = v
        runfolder.write_summary(d, s)
    return d


# ----------------------------------------------------------------------------- compare's tables


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("  ") if c.strip()]


def parse_tables(text: str) -> list[list[dict]]:
    """Every table of `compare` (format table) whose header starts with "#", as dicts."""
    lines = text.splitlines()
    tables = []
    for start in (i for i, l in enumerate(lines) if l.startswith("#  ")):
        header = cells(lines[start])
        rows = []
        for line in lines[start + 2:]:
            if not line.strip():
                break
            rows.append(dict(zip(header, cells(line))))
        tables.append(rows)
    return tables


def parse_table(text: str, section: int = 0) -> list[dict]:
    """One section of `compare` (format table): its two blocks (the metric, the other
    metrics) merged row by row, keyed by header."""
    first, second = parse_tables(text)[2 * section:2 * section + 2]
    return [a | b for a, b in zip(first, second, strict=True)]


def sweep_here(config, grid):
    """`normbench sweep CONFIG --grid GRID` with its members trained in this process: the
    sweep's own member folders (load_sweep names them), each trained by `run --resume`, the
    command the sweep's local executor starts per member, without a process start per member
    (the sweep command's own path, subprocesses and all: tests/test_sweep.py)."""
    from normbench.orchestrate import sweep as sw

    members = sw.load_sweep(str(config), grid_items=[grid])
    for member in members:
        r = cli("run", "--resume", member.run_dir, "-q")
        assert r.exit_code == 0, r.output
    return members


# ----------------------------------------------------------------------------- a run in the background


def history_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def as_from_a_shell():
    """preexec_fn of a child a test signals: SIGINT at its default, as a shell's foreground
    command has it. pytest-xdist's workers ignore SIGINT, a child inherits an ignored
    signal, and Python then never turns SIGINT into KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(cfg_path, out, *extra):
    """`normbench run CONFIG -q` in its own process (stdout and stderr together)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "normbench", "run", str(cfg_path), "-q", "--set", f"output.dir={out}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=as_from_a_shell,
    )


def wait_rows(out, n, proc, timeout=120) -> Path:
    """The run folder under `out` once its history.csv has `n` epochs (the process must
    still be running meanwhile)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for h in out.rglob("history.csv"):
            if len(history_rows(h.parent)) >= n:
                return h.parent
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    raise AssertionError("no epochs written in time")


# ----------------------------------------------------------------------------- compare's run sets


# compare's hand-written run sets (tests/test_compare_*.py, test_plot.py): three norms over
# seeds that only partly overlap (ACC3, SEEDS3), and two norms x three seeds (ACC2, LOSS2)
ACC3 = {"batch": [0.80, 0.83, 0.79, 0.86], "layer": [0.74, 0.80, 0.73, 0.78], "none": [0.70, 0.77, 0.72]}
SEEDS3 = {"batch": [0, 1, 2, 3], "layer": [0, 1, 2, 3], "none": [0, 1, 5]}  # none shares only some seeds


@pytest.fixture
def three(tmp_path):
    root = tmp_path / "r"
    for norm, accs in ACC3.items():
        for seed, acc in zip(SEEDS3[norm], accs):
            write_run(root, seed=seed, norm=norm, test_accuracy=acc)
    return root


ACC2 = {"batch": [0.80, 0.82, 0.85], "layer": [0.70, 0.74, 0.71]}
LOSS2 = {"batch": [0.60, 0.55, 0.50], "layer": [0.80, 0.75, 0.79]}


@pytest.fixture
def two_groups(tmp_path) -> Path:
    """Two configs (norm batch / layer) x three seeds, all completed."""
    root = tmp_path / "results"
    for norm in ("batch", "layer"):
        for i, seed in enumerate((1, 2, 3)):
            write_run(root, seed=seed, norm=norm, test_accuracy=ACC2[norm][i], test_loss=LOSS2[norm][i],
                      curve_shift=0.1 if norm == "batch" else 0.0)
    return root


def compare_csv(root, *args):
    """compare's CSV of the runs under `root` as a DataFrame (the command must succeed)."""
    import pandas as pd

    r = cli("compare", root, "--format", "csv", *args)
    assert r.exit_code == 0, r.output
    return pd.read_csv(io.StringIO(r.stdout))


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def group_stats(root: Path, key: str) -> dict:
    """norm -> (n, mean, sample std) of a summary key over completed runs, independently."""
    by = {}
    for s in summaries(root):
        if s["status"] == "completed":
            by.setdefault(s["norm"], []).append(s[key])
    return {k: (len(v), statistics.mean(v), statistics.stdev(v) if len(v) > 1 else None) for k, v in by.items()}


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory) -> Path:
    """Two configs (BN, LN CNN on synthetic CIFAR-10) x two seeds, one epoch on tiny subsets."""
    from normbench.training import train
    from normbench.schema.config import load_config

    out = tmp_path_factory.mktemp("real")
    root = Path(__file__).resolve().parents[1] / "configs" / "smoke"
    for name in ("cifar10_bn", "cifar10_ln"):
        for seed in (1, 2):
            sets = [f"output.dir={out}", f"seed={seed}", "train.epochs=2", "data.subset.train=160", "data.subset.test=32"]
            train.run(load_config(root / f"{name}.yaml", sets), verbose=0)
    return out


def bench_module(name: str, monkeypatch):
    """benchmarks/<name>.py imported as `python benchmarks/<name>.py` has it: benchmarks/
    on sys.path, so its `import harness` works whatever ran before in this worker."""
    import importlib.util

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
