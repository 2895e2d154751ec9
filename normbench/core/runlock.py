"""One owner per run folder: an exclusive, non-blocking lock on `<run_dir>/.lock`.

The process that trains a run holds the lock for the whole run (`train.run`); the OS
releases it when that process ends, however it ends (SIGKILL included), so a stale lock
never needs cleaning up. A held lock means "running": `normbench run --resume` refuses
the folder with one line, and a sweep skips the member and waits for its owner.

`fcntl.flock` locks belong to the open file, so a second open of the same folder in the
same process is refused as well, and a child process does not inherit the lock (Python
opens files non-inheritable). The file keeps the holder's pid for the messages; it is
never deleted (deleting a lock file races with the next process that opens it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from normbench.core.errors import NormbenchError

LOCK_NAME = ".lock"
BUSY_EXIT = 75  # `normbench run --resume` on a busy folder (EX_TEMPFAIL): sweeps read it as "running elsewhere"


class Busy(NormbenchError):
    """The run folder is locked by another owner."""

    def __init__(self, run_dir, pid: int | None):
        self.run_dir, self.pid = Path(run_dir), pid
        super().__init__(f"{run_dir}: already running (pid {pid if pid else 'unknown'}); wait for it or stop it")


def _flock():
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking, as before
        return None
    return fcntl


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class RunLock:
    """Take the lock of `run_dir` or raise Busy. Release with `release()` (idempotent),
    as a context manager, or by ending the process."""

    def __init__(self, run_dir, attempts: int = 3):
        self.run_dir = Path(run_dir)
        self.fd: int | None = None
        fcntl = _flock()
        try:
            fd = os.open(self.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise NormbenchError(f"{run_dir}: cannot create its lock file ({e.strerror}); choose a writable folder") from None
        if fcntl is None:
            self.fd = fd
            return
        for i in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # `holder()` probes take the lock for microseconds: look again before refusing
                if i == attempts - 1:
                    pid = _read_pid(fd)
                    os.close(fd)
                    raise Busy(run_dir, pid) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # closing the file releases the lock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        self.release()


def holder(run_dir) -> int | None:
    """The pid holding `run_dir`'s lock (0 when it cannot be read), or None when the folder
    is free. Probing takes a shared lock for a moment; RunLock retries past such probes."""
    fcntl = _flock()
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
