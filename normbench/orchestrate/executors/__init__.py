"""Sweep executors: how a sweep member gets trained somewhere (this machine, a Ray
cluster, ...). The driver (normbench.orchestrate.sweep.run_sweep) only talks to the `Executor`
contract (normbench.orchestrate.executors.base); each executor is one module in this package that registers a factory:

    @register("name")
    def _factory(option: str | None = None, other: int = 4):
        '''first docstring line: its --executor help'''
        return MyExecutor(option, other)

Every module in this package is imported when the package is (local first, then the
others by name), so a new executor is one new file. Its factory's keyword arguments are
its options: `--executor-option KEY=VALUE` (repeatable) passes them, each value
converted to the parameter's annotated type (str, int, float or bool); an unknown key or
a bad value is a one-line error naming make_executor's parameter (the CLI: the option).
Modules here must import nothing heavy at top level (`normbench --help` imports them).

What a new executor reuses: `Elsewhere` (the result meaning "another process owns this
member's folder"), `member_command` and `exit_result` (run `normbench run --resume` as a
process, read its exit status and log.txt: BUSY_EXIT means running elsewhere),
`die_with_parent`, and `train_member` / `collect` (train a member where the process
runs, optionally in a scratch folder whose files the driver writes back).
"""

def _load_all() -> None:
    """Import every executor module of this package: local first (the default), then by name."""
    import importlib
    import pkgutil

    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "base")
    for mod in sorted(names, key=lambda n: n != "local"):
        importlib.import_module(f"{__name__}.{mod}")


_load_all()
