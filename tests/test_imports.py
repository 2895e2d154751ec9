"""Every module imports alone in a fresh process, the modules of an old cycle (config ->
models -> optim -> config) import in every order, and config.py imports no registry at
module level. (The layer rule and the absence of cycles: test_layers_contract.py.)"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys

import pytest

from conftest import REPO

MODULES = sorted(".".join(p.relative_to(REPO / "normbench").with_suffix("").parts)
                 for p in (REPO / "normbench").rglob("*.py") if not p.stem.startswith("__"))
REGISTRIES = {"models", "norms", "optim", "data", "datacache", "layers", "sweep", "train", "usermodels", "tables"}
HEAVY = {"build.layers"}  # defines Keras layers, so it imports Keras (10 s): imported in the order test's process


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_every_module_imports_alone_in_a_fresh_process():
    # one process per module: a module that only imports because another one ran first fails here
    light = [m for m in MODULES if m not in HEAVY]
    failed = {}
    for m in light:
        r = _fresh(f"import normbench.{m}")
        if r.returncode:
            failed[m] = r.stderr.strip().splitlines()[-1]
    assert not failed, failed
    assert len(light) >= 20  # the glob found the package


@pytest.mark.parametrize("order", list(itertools.permutations(["schema.config", "build.models", "build.optim"])))
def test_the_old_cycle_imports_in_every_order(order):
    r = _fresh("; ".join(f"import normbench.{m}" for m in order) + "; import normbench.cli")
    assert r.returncode == 0, r.stderr


def test_config_imports_no_registry_at_module_level():
    tree = ast.parse((REPO / "normbench/schema/config.py").read_text(encoding="utf-8"))
    top = []
    for node in tree.body:  # module level only: imports inside functions are lazy, and allowed
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("normbench"):
            top += [node.module.split(".")[-1] if node.module != "normbench" else a.name for a in node.names]
        elif isinstance(node, ast.Import):
            top += [a.name.split(".")[-1] for a in node.names if a.name.startswith("normbench")]
    assert not set(top) & REGISTRIES, top
