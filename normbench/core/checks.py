"""Small rule helpers every registry's `check(...)` shares (optim.check, models.check,
data.check). `where` is config's key namer: `where.error(key, problem)` returns the
NormbenchError that names the file (or the --set / --grid) and the key. Nothing here
imports another normbench module, so registries and config can all use it."""

from __future__ import annotations

AUTO_BOOL = ("auto", True, False)  # train.jit_compile, model.unroll


def installed(module: str) -> bool:
    """Whether an optional package can be imported (found, not imported)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # a module object without a spec
        return False


def choice(where, key, value, choices, what):
    if value not in choices:
        names = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
        raise where.error(key, f"unknown {what} {value!r}; choose one of: {names}")


def auto_bool(where, key, value):
    """A setting that is true, false or "auto"."""
    if value not in AUTO_BOOL or (isinstance(value, str) and value != "auto"):
        raise where.error(key, f"unknown setting {value!r}; choose one of: auto, true, false")


def at_least(where, key, value, low):
    if value < low:
        raise where.error(key, f"must be >= {low}, got {value}")


def at_most(where, key, value, high, why):
    if value > high:
        raise where.error(key, f"must be <= {high}, got {value}; {why}")
