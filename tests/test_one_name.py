"""One name per thing (issue 30): a name is used from the module that defines it, never
through a module that merely imports it (a re-export gives one thing two names, and the
second one drifts)."""

from __future__ import annotations

import ast
import functools
import types

from conftest import REPO

PKG = REPO / "normbench"


def _module_of(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files() -> dict[str, object]:
    return {_module_of(p): p for p in PKG.rglob("*.py")}


@functools.cache
def _imported(path) -> frozenset[str]:
    """The names a module binds at its top level by importing them from normbench."""
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("normbench"):
            out.update(a.asname or a.name for a in node.names)
    return frozenset(out)


def reexport_uses(path, files) -> list[str]:
    """Where the file at `path` takes a name from a normbench module that only imports it:
    `from normbench.a import x` or `a.x`, x being imported into a (a package's __init__.py,
    the public API, is exempt)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {m: _imported(p) for m, p in files.items() if p.name != "__init__.py"}
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in files:
            for a in node.names:
                if f"{node.module}.{a.name}" in files:  # a module: its attributes are checked below
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif a.name in imported.get(node.module, ()):
                    found.append(f"{path.name}:{node.lineno}: {a.name} from {node.module}")
        elif isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname and a.name in files})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr in imported.get(aliases[node.value.id], ()):
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_package_uses_every_name_from_its_home():
    files = _files()
    found = [use for p in files.values() for use in reexport_uses(p, files)]
    assert found == []


def test_the_check_finds_a_reexport(tmp_path):
    files = _files()
    user = tmp_path / "user.py"
    user.write_text("from normbench.analysis import results\n"
                    "from normbench.analysis.results import Run\n"
                    "def f(paths):\n    return results.completed(paths), results.compare\n")
    assert reexport_uses(user, files) == ["user.py:2: Run from normbench.analysis.results",
                                          "user.py:4: results.completed"]


def test_results_keeps_no_name_of_runs_it_does_not_use():
    """results imports from runs only what it uses itself, so `results.load_runs` and the
    like are gone: reading run folders has one home, normbench.analysis.runs."""
    from normbench.analysis import results, runs

    tree = ast.parse((PKG / "analysis/results.py").read_text(encoding="utf-8"))
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    from_runs = [name for name, obj in vars(results).items()
                 if not name.startswith("__") and not isinstance(obj, types.ModuleType) and vars(runs).get(name) is obj
                 and getattr(obj, "__module__", runs.__name__) == runs.__name__]
    assert from_runs and all(name in used for name in from_runs), from_runs
    for name in ("load_runs", "load_run", "find_run_dirs", "with_role", "HISTORY_NEEDED", "ROLE_KEY"):
        assert not hasattr(results, name), name
