"""SIGTERM handled like Ctrl-C, and blocks that a signal must not cut in half.

A training run (train.run) and a sweep driver (sweep.run_sweep) both turn SIGTERM into a
KeyboardInterrupt (`Terminated`), so one `except KeyboardInterrupt` path saves state
and stops; writes that must land whole (a backup, the best weights, a member's start)
run inside `signals_deferred()`. Outside the main thread, where Python cannot set
handlers (e.g. inside a Ray worker's thread), both do nothing.
"""

from __future__ import annotations

import contextlib
import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def on_sigterm(signum, frame):
    raise Terminated()


def sigterm_raises():
    """Make SIGTERM raise Terminated from now on; returns the function that puts the old
    handler back (a no-op outside the main thread)."""
    try:
        old = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: no SIGTERM handling
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM that arrive inside the block take effect when it ends (they are
    re-raised then, to whatever handler was installed). Outside the main thread, where
    handlers cannot be set, the block runs unprotected."""
    pending = []
    try:
        old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])
