"""Every `normbench compare` / `normbench plot` command that results/README.md gives for
regenerating a committed table or figure runs on the committed run folders (the
batch-size figure's own command crashed for weeks unnoticed), and the compare commands
that write a committed file (-o results/*.md) reproduce it byte for byte. Figures are
checked for being written, not byte-equal: their pixels depend on matplotlib's version."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from conftest import cli

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[list[str]]:
    """The compare/plot lines of results/README.md's bash blocks, continuations joined."""
    out, block, lines = [], False, []
    for line in (ROOT / "results" / "README.md").read_text().splitlines():
        if line.startswith("```"):
            block = line.startswith("```bash")
            continue
        if block:
            lines.append(line)
    joined = "\n".join(lines).replace("\\\n", " ")
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] in (["normbench", "compare"], ["normbench", "plot"]):
            out.append(words[1:])
    return out


COMMANDS = _commands()


def test_the_readme_lists_the_commands():
    assert len(COMMANDS) >= 15
    assert any(c[0] == "plot" and "--vs" in c for c in COMMANDS)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c)[:80] for c in COMMANDS])
def test_each_committed_output_command_runs(args, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = list(args)
    committed = None
    if "-o" in args:
        i = args.index("-o") + 1
        committed = ROOT / args[i]
        args[i] = str(tmp_path / Path(args[i]).name)
    r = cli(*args)
    assert r.exit_code == 0, r.output
    if committed is not None:
        written = Path(args[args.index("-o") + 1])
        assert written.stat().st_size > 0
        if committed.suffix == ".md":
            assert written.read_bytes() == committed.read_bytes(), f"{committed} no longer regenerates byte-identical"
