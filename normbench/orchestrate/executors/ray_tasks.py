"""`--executor ray`: each member one Ray task (pip install 'normbench[ray]')."""

from __future__ import annotations

import os

from normbench.core.errors import ParamError, WordedError, one_line
from normbench.orchestrate.executors.base import collect, register, train_member
from normbench.core.runlock import RunLock


class RayExecutor:
    """Each member is one Ray task. With shared storage (the default) the task writes the
    run folder itself; with `shared=False` it trains in a scratch folder on the worker
    (removed afterwards) and returns the files, which the driver writes into the run
    folder, with its runs.csv line; the driver holds the folder's lock meanwhile.
    `nodes` records the Ray node id that ran each member."""

    name = "ray"

    def __init__(self, address: str | None = None, shared: bool = True, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise WordedError("{executor} ray needs Ray; install it with: pip install 'normbench[ray]'") from None
        self.ray = ray
        self.shared = shared
        self.nodes: dict[str, str] = {}
        self._locks: dict[str, RunLock] = {}
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:  # "local": a new instance, never a RAY_ADDRESS or the last cluster this machine started
                    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                             log_to_driver=False)
            except Exception as e:
                if not address:
                    raise ParamError("executor", "ray", "cannot start a local Ray ({why}); pass {address} for a running "
                                                        "cluster", why=one_line(e, 120)) from None
                raise ParamError("address", address, "cannot connect to Ray ({why}); check the address or start the "
                                                     "cluster", why=one_line(e, 120)) from None
        self._task = ray.remote(ray_member)

    def submit(self, member, threads: int):
        if not self.shared:  # the folder is written here: this process owns it (or Busy)
            self._locks[member.run_id] = RunLock(member.run_dir)
        return self._task.options(num_cpus=threads).remote(
            member.config.to_dict(), str(member.run_dir), threads, self.shared
        )

    def poll(self, handle) -> bool:
        ready, _ = self.ray.wait([handle], timeout=0)
        return bool(ready)

    def result(self, member, handle) -> str | None:
        try:
            try:
                out = self.ray.get(handle)
            except Exception as e:
                return one_line(e, 200, kind=True)
            self.nodes[member.run_id] = out.get("node")
            return collect(member, out)
        finally:
            lock = self._locks.pop(member.run_id, None)
            if lock:
                lock.release()

    def cancel(self, handle) -> None:
        self.ray.cancel(handle)

    def wait(self, handle) -> None:
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()


def ray_member(config: dict, run_dir: str, threads: int, shared: bool) -> dict:
    """The Ray task: train_member, plus the id of the node that ran it."""
    import ray

    return {**train_member(config, run_dir, threads, shared), "node": ray.get_runtime_context().get_node_id()}


@register("ray")
def _ray(address: str | None = None, shared: bool = True, num_cpus: int | None = None):
    """one Ray task per member (a local Ray, or the cluster at --address)

    Options: address (as --address), shared=false (no shared storage: workers return the
    files for the driver to write), num_cpus (of a local Ray; default all cores)."""
    return RayExecutor(address, shared, num_cpus)
