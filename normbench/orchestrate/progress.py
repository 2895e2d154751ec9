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
import textwrap
import time


def wrap(text: str, width: int, lines: int = 10) -> list[str]:
    """The status text in lines of at most `width` characters, broken after " | " and ", "
    (between running members), never inside a group name unless one is wider than the
    terminal; at most `lines` lines (the last says how many members it leaves out)."""
    parts = [p for p in text.replace(" | ", " |\0").replace(", ", ",\0").split("\0")]
    out, line = [], ""
    for part in parts:
        piece = part if not line else " " + part
        if line and len(line) + len(piece) > width:
            out.append(line)
            line = "  " + part  # a continuation line, indented
        else:
            line += piece
    out.append(line)
    out = [chunk for ln in out for chunk in (textwrap.wrap(ln, width, subsequent_indent="  ", drop_whitespace=False)
                                            if len(ln) > width else [ln])]
    if len(out) > lines:
        out = out[:lines - 1] + [f"  ... and {len(out) - lines + 1} more line(s)"]
    return out


class Progress:
    """`line(text)` prints a permanent line; `update(text)` replaces the status line (on a
    terminal only, at most `every` seconds apart; wrapped to the terminal's width, never
    cut); `close()` clears it."""

    def __init__(self, stream=None, live: bool | None = None, every: float = 1.0):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.every, self._last, self._shown = every, 0.0, ""

    def _clear(self) -> None:
        if self._shown:
            # the status may span lines: clear each, from the last one up
            self.stream.write("\r\x1b[2K" + "\x1b[1A\x1b[2K" * self._shown.count("\n"))
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
        size = shutil.get_terminal_size((100, 20))
        text = "\n".join(wrap(text, size.columns - 1, max(1, size.lines - 2)))
        self._clear()
        self.stream.write(text)
        self.stream.flush()
        self._shown = text

    def close(self) -> None:
        self._clear()
        self.stream.flush()
