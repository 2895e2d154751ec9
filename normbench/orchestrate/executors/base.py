"""The executor contract (`Executor`), the registry (`EXECUTORS`, `register`, `make_executor`) and
what executors reuse; the package's __init__ imports every executor module, so the registry is full
once any module of the package is imported."""


from __future__ import annotations

import inspect
import os
import re
import signal
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from normbench.core.errors import ParamError, one_line
from normbench.store import runfolder
from normbench.core.runlock import BUSY_EXIT, Busy

# a member without shared storage trains in a scratch folder named so (then removed)
SCRATCH_PREFIX = "normbench-member-scratch-"

@runtime_checkable
class Executor(Protocol):
    """What run_sweep needs. A handle is whatever `submit` returns (a process, a Ray
    object ref, a future); the driver only passes it back."""

    name: str  # shown in the sweep's start line

    def submit(self, member: Member, threads: int) -> Any:
        """Start training `member` (its folder and config.yaml exist) with `threads` CPU
        threads; return at once with a handle. May raise runlock.Busy: another process
        owns the folder."""

    def poll(self, handle: Any) -> bool:
        """Whether the member has ended (never blocks)."""

    def result(self, member: Member, handle: Any) -> str | None:
        """After poll is true, once: None when the member's process ended normally (its
        status is then read from summary.json), an `Elsewhere` when another process owns
        the folder, else a one-line reason it failed."""

    def cancel(self, handle: Any) -> None:
        """Ask a running member to stop (it saves its state and marks itself interrupted)."""

    def wait(self, handle: Any) -> None:
        """After cancel: return once the member has stopped (or give up and kill it)."""


class Elsewhere(str):
    """An executor's result meaning: another process owns this member's folder (the text
    says which, e.g. "pid 123")."""


# ----------------------------------------------------------------------------- a member as a process


def member_command(member: Member, threads: int) -> list[str]:
    """The command that trains a member in a process of its own: `normbench run --resume`."""
    return [sys.executable, "-m", "normbench", "run", "--resume", str(member.run_dir), "--threads", str(threads)]


def die_with_parent(parent: int) -> None:
    """preexec_fn for members: SIGTERM when the driver dies, even by SIGKILL (Linux
    prctl PR_SET_PDEATHSIG; elsewhere nothing). SIGTERM makes a member save its state and
    mark itself interrupted, so the next sweep resumes it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the driver died before prctl: no signal would come
        os.kill(os.getpid(), signal.SIGTERM)


def last_error(log: Path) -> str | None:
    """The last `Error: ...` line of a member's log (else its last line), one line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    for ln in reversed(lines):
        if ln.startswith("Error:") or "Error" in ln.split(":")[0]:
            return one_line(ln, 300)
    return one_line(lines[-1], 300) if lines else None


def exit_result(returncode: int, log: Path) -> str | None:
    """An Executor.result from a `member_command` process's exit status and its log:
    None on 0, Elsewhere on BUSY_EXIT (`Error: DIR: already running (pid N); ...`), else
    the log's last error line (or the exit status)."""
    if returncode == 0:
        return None
    if returncode == BUSY_EXIT:
        found = re.search(r"already running \((pid \w+)\)", last_error(log) or "")
        return Elsewhere(found.group(1) if found else "pid unknown")
    return last_error(log) or f"exit status {returncode}"


# ----------------------------------------------------------------------------- a member in this process


def train_member(config: dict, run_dir: str, threads: int, shared: bool = True) -> dict:
    """Train one member in this process, for an executor whose workers run Python (Ray,
    Dask, ...): {"error": None or one line, "files": {...}} or {"busy": pid or 0}.
    With `shared` the run folder is trained where it is; without, in a scratch copy
    `<tmp>/<name>/<run-id>` (so its runs.csv stays in the scratch folder too) whose
    result files are returned (for `collect` on the driver), and which is removed."""
    import shutil
    import tempfile

    from normbench.training import train
    from normbench.schema.config import dump_yaml, from_dict

    target, scratch = Path(run_dir), None
    if not shared:
        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        target = scratch / target.parent.name / target.name
        target.mkdir(parents=True)
        runfolder.write_config(target, dump_yaml(from_dict(config, run_dir)))
    try:
        try:
            train.resume_run(target, verbose=0, threads=threads)
            error = None
        except Busy as e:
            return {"busy": e.pid or 0, "files": {}}
        except Exception as e:  # reported to the driver as one line
            error = one_line(e, 200, kind=True)
        files = runfolder.read_files(target) if not shared else {}
        return {"error": error, "files": files}
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def collect(member: Member, out: dict) -> str | None:
    """On the driver: an Executor.result from what `train_member` returned; returned files
    are written into the member's folder, with its runs.csv line."""
    if out.get("busy") is not None:
        return Elsewhere(f"pid {out['busy'] or 'unknown'}")
    if out.get("files"):
        runfolder.write_files(member.run_dir, out["files"])
        summary = runfolder.read_summary(member.run_dir) or {}
        if summary.get("status") not in (None, "interrupted"):  # the index line for the real folder
            runfolder.append_index(member.run_dir.parent.parent, summary, member.run_dir)
    return out.get("error")


# ----------------------------------------------------------------------------- registry

# name -> factory(**options) -> Executor; the CLI's --executor choices, each docstring its help
EXECUTORS: dict[str, Callable[..., Executor]] = {}


def register(name: str):
    """Decorator: register an executor factory under `name` (its keyword arguments are
    its --executor-option keys)."""

    def add(factory):
        EXECUTORS[name] = factory
        return factory

    return add


def parse_options(items) -> dict[str, str]:
    """`KEY=VALUE` strings (make_executor's executor_options) -> {KEY: VALUE} (the values still text)."""
    out = {}
    for text in items or ():
        key, eq, value = str(text).partition("=")
        if not eq or not key.strip():
            raise ParamError("executor_options", text, "expected KEY=VALUE, e.g. {executor_options} address=auto")
        out[key.strip()] = value.strip()
    return out


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _convert(name: str, key: str, value, hint) -> Any:
    if not isinstance(value, str):
        return value
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if len(args) == 1 else hint
    if kind is bool:
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ParamError("executor_options", f"{key}={value}", "expected true or false (option of {executor} {name})",
                         name=name)
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ParamError("executor_options", f"{key}={value}", "expected {what} (option of {executor} {name})",
                             what=what, name=name) from None
    return value


def options_of(name: str) -> list[str]:
    """The option keys an executor's factory takes."""
    return list(inspect.signature(EXECUTORS[name]).parameters)


def make_executor(executor: str, address: str | None = None, executor_options=None) -> Executor:
    """The executor named `executor`, its factory given `executor_options` ({key: value} or
    KEY=VALUE strings). `address` is passed as the `address` option to an executor that
    takes one (Ray), ignored by the others."""
    if executor not in EXECUTORS:
        raise ParamError("executor", executor, f"unknown executor; choose one of: {', '.join(EXECUTORS)}")
    name, factory = executor, EXECUTORS[executor]
    opts = dict(executor_options) if isinstance(executor_options, dict) else parse_options(executor_options)
    keys = options_of(name)
    if address is not None and "address" in keys:
        opts.setdefault("address", address)
    hints = typing.get_type_hints(factory)
    for key in opts:
        if key not in keys:
            which = f"choose one of: {', '.join(keys)}" if keys else "it takes none"
            raise ParamError("executor_options", key, "not an option of {executor} {name}; {which}", name=name, which=which)
    return factory(**{k: _convert(name, k, v, hints.get(k, str)) for k, v in opts.items()})
