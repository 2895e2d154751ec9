"""`--executor local`: each member a subprocess on this machine."""

from __future__ import annotations

import os
import subprocess
import sys

from normbench.store import runfolder
from normbench.orchestrate.executors.base import die_with_parent, exit_result, member_command, register


class LocalExecutor:
    """Each member in its own `python -m normbench run --resume` process; its output goes
    to <run_dir>/log.txt (runfolder.LOG) so parallel members do not interleave."""

    name = "local"

    def submit(self, member, threads: int):
        log = open(member.run_dir / runfolder.LOG, "ab")
        parent = os.getpid()
        preexec = (lambda: die_with_parent(parent)) if sys.platform.startswith("linux") else None
        proc = subprocess.Popen(member_command(member, threads), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=preexec)
        log.close()
        return proc

    def poll(self, handle) -> bool:
        return handle.poll() is not None

    def result(self, member, handle) -> str | None:
        return exit_result(handle.returncode, member.run_dir / runfolder.LOG)

    def cancel(self, handle) -> None:
        if handle.poll() is None:
            handle.terminate()

    def wait(self, handle) -> None:
        """After cancel: wait for the member to save its state and end."""
        try:
            handle.wait(30)
        except subprocess.TimeoutExpired:
            handle.kill()
            handle.wait()


@register("local")
def _local():
    """subprocesses on this machine"""
    return LocalExecutor()
