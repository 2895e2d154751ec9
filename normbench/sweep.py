"""Sweeps: a grid of configs, each member its own run folder with a stable name.

    normbench sweep configs/cifar10_bn.yaml --grid model.norm=batch,layer,none --grid seed=0,1,2

Every member is prepared up front (validated, folder created, config.yaml written),
then trained by an executor in its own process through the same path as
`normbench run --resume FOLDER`. So a sweep started again skips members whose
summary.json says completed and continues the others from their last finished epoch.

Executors are small: `submit(member, threads) -> handle`, and handles are polled. `local`
runs subprocesses on this machine; `ray` sends each member to a Ray cluster.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from normbench import NormbenchError, one_line, runfolder
from normbench.config import Config, dump_yaml, flatten, from_dict, parse_override, read_yaml, with_values

ABBREV = {"model.norm": "norm", "train.batch_size": "bs", "seed": "seed"}


@dataclass
class Member:
    run_id: str
    config: Config
    run_dir: Path

    def status(self) -> str | None:
        """Status in summary.json, or None when the member has not finished."""
        return runfolder.status(self.run_dir)


def parse_grid(items: list[str] | tuple[str, ...]) -> dict[str, list]:
    """`--grid key=a,b,c` strings -> {key: [a, b, c]} with YAML-typed values."""
    grid = {}
    for text in items:
        key, value = parse_override(text)
        raw = text.partition("=")[2]
        values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()] if isinstance(value, (str, int, float)) else value
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise NormbenchError(f"--grid {text}: no values; write --grid {key}=a,b,c")
        grid[key] = values
    return grid


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def run_id_for(cfg: Config, grid_keys) -> str:
    """Readable, stable id: cifar10_cnn-norm=batch-bs=64-seed=0 (+ any other grid key)."""
    parts = [cfg.model.arch]
    keys = ["model.norm", "train.batch_size"] + [k for k in grid_keys if k not in ABBREV] + ["seed"]
    for k in keys:
        name = ABBREV.get(k, k.split(".")[-1])
        parts.append(f"{name}={_fmt(cfg.get(k))}")
    return "-".join(parts).replace("/", "_")


def expand(cfg: Config, grid: dict[str, list], source: str = "<sweep>") -> list[Config]:
    """The cartesian product of the config's `sweep:` section and `grid` (grid wins)."""
    full = {**cfg.sweep, **grid}
    keys = list(full)
    configs = []
    base = dataclasses.replace(cfg, sweep={})
    for combo in itertools.product(*(full[k] for k in keys)):
        configs.append(with_values(base, dict(zip(keys, combo)), source))
    return configs


def prepare_members(cfg: Config, grid: dict[str, list], output: str | None = None, source: str = "<sweep>") -> list[Member]:
    """Validate every member and create its folder (config.yaml) before any training."""
    if output:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=output))
    keys = list({**cfg.sweep, **grid})
    members, seen = [], set()
    for c in expand(cfg, grid, source):
        rid = run_id_for(c, keys)
        if rid in seen:
            continue
        seen.add(rid)
        run_dir = runfolder.run_path(c.output.dir, c.name, rid)
        cfg_path = run_dir / runfolder.CONFIG
        if cfg_path.exists():
            new = flatten(c.to_dict())
            was = flatten(from_dict(read_yaml(cfg_path), str(cfg_path)).to_dict())
            diff = [k for k in {**was, **new} if was.get(k) != new.get(k) and not k.startswith(("output.", "sweep"))]
            if diff:
                raise NormbenchError(
                    f"{run_dir}: made with a different config ({', '.join(diff[:3])} differ); "
                    "delete that folder or sweep into another --output"
                )
        else:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise NormbenchError(f"output.dir: cannot create {run_dir} ({e.strerror}); choose a writable folder") from None
            runfolder.write_config(run_dir, dump_yaml(c))
        members.append(Member(rid, c, run_dir))
    return members


# ----------------------------------------------------------------------------- executors


class LocalExecutor:
    """Each member in its own `python -m normbench run --resume` process; its output goes
    to <run_dir>/log.txt so parallel members do not interleave."""

    name = "local"

    def submit(self, member: Member, threads: int):
        log = open(member.run_dir / "log.txt", "ab")
        cmd = [sys.executable, "-m", "normbench", "run", "--resume", str(member.run_dir), "--threads", str(threads)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return proc

    def poll(self, handle) -> bool:
        return handle.poll() is not None

    def result(self, member: Member, handle) -> str | None:
        """None on success, else a one-line reason."""
        if handle.returncode == 0:
            return None
        return _last_error(member.run_dir / "log.txt") or f"exit status {handle.returncode}"

    def cancel(self, handle) -> None:
        if handle.poll() is None:
            handle.terminate()
            try:
                handle.wait(30)
            except subprocess.TimeoutExpired:
                handle.kill()


def _last_error(log: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    for ln in reversed(lines):
        if ln.startswith("Error:") or "Error" in ln.split(":")[0]:
            return one_line(ln, 300)
    return one_line(lines[-1], 300) if lines else None


class RayExecutor:
    """Each member is one Ray task. With shared storage (the default) the task writes the
    run folder itself; with `shared=False` it trains in a scratch folder on the worker
    and returns the files, which the driver writes into the run folder."""

    name = "ray"

    def __init__(self, address: str | None = None, shared: bool = True, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise NormbenchError("--executor ray needs Ray; install it with: pip install 'normbench[ray]'") from None
        self.ray = ray
        self.shared = shared
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False)
            except Exception as e:
                raise NormbenchError(f"--address {address}: cannot connect to Ray ({one_line(e, 120)}); check the address or start the cluster") from None
        self._task = ray.remote(_ray_member)

    def submit(self, member: Member, threads: int):
        return self._task.options(num_cpus=threads).remote(
            member.config.to_dict(), str(member.run_dir), threads, self.shared
        )

    def poll(self, handle) -> bool:
        ready, _ = self.ray.wait([handle], timeout=0)
        return bool(ready)

    def result(self, member: Member, handle) -> str | None:
        try:
            out = self.ray.get(handle)
        except Exception as e:
            return one_line(e, 200, kind=True)
        if out.get("files"):
            runfolder.write_files(member.run_dir, out["files"])
        return out.get("error")

    def cancel(self, handle) -> None:
        self.ray.cancel(handle)


def _ray_member(config: dict, run_dir: str, threads: int, shared: bool) -> dict:
    """Runs on a Ray worker."""
    import tempfile

    from normbench import train

    cfg = from_dict(config, run_dir)
    target = Path(run_dir)
    if not shared:
        target = Path(tempfile.mkdtemp(prefix="normbench-")) / target.name
        target.mkdir(parents=True)
        runfolder.write_config(target, dump_yaml(cfg))
    try:
        train.run(cfg, run_dir=target, resume=True, verbose=0, threads=threads)
        error = None
    except Exception as e:  # reported to the driver as one line
        error = one_line(e, 200, kind=True)
    files = runfolder.read_files(target) if not shared else {}
    return {"error": error, "files": files}


def _local(address: str | None = None):
    """subprocesses on this machine"""
    return LocalExecutor()


def _ray(address: str | None = None):
    """one Ray task per member (a local Ray, or the cluster at --address)"""
    return RayExecutor(address)


# name -> factory(address) -> executor; the CLI's --executor choices, the docstring its help
EXECUTORS = {
    "local": _local,
    "ray": _ray,
}


def make_executor(name: str, address: str | None = None):
    if name not in EXECUTORS:
        raise NormbenchError(f"--executor {name}: unknown executor; choose one of: {', '.join(EXECUTORS)}")
    return EXECUTORS[name](address)


# ----------------------------------------------------------------------------- driver


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def run_sweep(members: list[Member], *, jobs: int = 1, executor=None, fail_fast: bool = False, echo=print) -> list[tuple[Member, str]]:
    """Train every unfinished member, `jobs` at a time. Returns [(member, error)] failures."""
    executor = executor or LocalExecutor()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // jobs)
    todo = [m for m in members if m.status() != "completed"]
    skipped = len(members) - len(todo)
    echo(f"sweep: {len(members)} members, {skipped} already completed, {len(todo)} to run, "
         f"{jobs} at a time ({threads} threads each, {executor.name})")
    running: dict = {}
    failures: list[tuple[Member, str]] = []
    done, durations, t0 = 0, [], time.time()
    try:
        while todo or running:
            while todo and len(running) < jobs and not (fail_fast and failures):
                m = todo.pop(0)
                running[m.run_id] = (m, executor.submit(m, threads), time.time())
            if not running:
                break
            time.sleep(0.2)
            for rid, (m, handle, started) in list(running.items()):
                if not executor.poll(handle):
                    continue
                del running[rid]
                done += 1
                durations.append(time.time() - started)
                error = executor.result(m, handle)
                status = m.status()
                if error is None and status != "completed":
                    error = f"finished with status {status}"
                left = len(todo)
                eta = sum(durations) / len(durations) * (left + len(running)) / jobs
                progress = f"[{done}/{len(members) - skipped} done, {len(running)} running, {left} left, ETA {_duration(eta)}]"
                if error:
                    failures.append((m, error))
                    echo(f"{progress} FAILED {m.run_id}: {error} ({m.run_dir})")
                    if fail_fast:
                        for _, (_, h, _) in running.items():
                            executor.cancel(h)
                        running.clear()
                        todo.clear()
                        break
                else:
                    acc = (runfolder.read_summary(m.run_dir) or {}).get("test_accuracy")
                    echo(f"{progress} completed {m.run_id}: test_accuracy {acc:.4f} in {_duration(durations[-1])}"
                         if acc is not None else f"{progress} completed {m.run_id}")
    except KeyboardInterrupt:
        for _, (_, h, _) in running.items():
            executor.cancel(h)
        raise
    echo(f"sweep: finished in {_duration(time.time() - t0)}; {len(failures)} failed")
    return failures


def load_sweep(config_path: str, overrides=(), grid_items=(), smoke: bool = False, output: str | None = None) -> list[Member]:
    from normbench.config import load_config

    cfg = load_config(config_path, overrides, smoke)
    grid = parse_grid(grid_items)
    if not cfg.sweep and not grid:
        raise NormbenchError(f"{config_path}: nothing to sweep; add --grid key=a,b or a sweep: section")
    return prepare_members(cfg, grid, output, source=f"{config_path} (sweep)")
