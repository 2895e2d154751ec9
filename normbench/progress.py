"""Live progress of a sweep (docs/bridges.md): on a terminal, one status line rewritten in
place (members done / running with their epoch / left, ETA, a --seeds-until round's
widest half-width) under the permanent per-member lines; elsewhere (CI, a log file) only
the permanent lines, which already carry done / running / left, ETA and half-widths.

Hand-written rather than rich or tqdm: what is shown is one line of counts, not a bar
over a known number of equal steps (tqdm's model), and rich's Live display would be a
new dependency for the same single line; neither changes what a log file gets.
"""

from __future__ import annotations

import shutil
import sys
import time


class Progress:
    """`line(text)` prints a permanent line; `update(text)` replaces the status line (on a
    terminal only, at most `every` seconds apart); `close()` clears it."""

    def __init__(self, stream=None, live: bool | None = None, every: float = 1.0):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.every, self._last, self._shown = every, 0.0, ""

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self._shown = ""

    def line(self, text: str) -> None:
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last = 0.0  # the status line comes back at the next update

    def update(self, text: str) -> None:
        if not self.live or time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text if len(text) <= width else text[: width - 3] + "..."
        self._clear()
        self.stream.write(text)
        self.stream.flush()
        self._shown = text

    def close(self) -> None:
        self._clear()
        self.stream.flush()
