"""Every package under normbench/ is installed: pyproject's package list names them all
(a subpackage left out installs without it, and a non-editable install fails on import)."""

from __future__ import annotations

import tomllib

from conftest import REPO


def test_every_subpackage_is_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "normbench").rglob("__init__.py")}
    assert found == listed


def test_no_package_file_is_git_ignored():
    """A source file that .gitignore matches exists here but never reaches a clean clone
    (an unanchored `build/` once hid normbench/build/__init__.py from CI)."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(REPO)) for p in (REPO / "normbench").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    out = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO,
                         input="\n".join(files), capture_output=True, text=True)
    assert out.stdout.split() == []
