"""Every package under normbench/ is installed: pyproject's package list names them all
(a subpackage left out installs without it, and a non-editable install fails on import)."""

from __future__ import annotations

import tomllib

from conftest import REPO


def test_every_subpackage_is_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "normbench").rglob("__init__.py")}
    assert found == listed
