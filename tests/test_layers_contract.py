"""The import rule of docs/layers.md, on every module of normbench/: each import (at module
level, inside functions, under TYPE_CHECKING) goes to the module's own layer or a layer
listed before it, nothing imports the package root, and the import graph has no cycle."""

from __future__ import annotations

import ast
import re

from conftest import REPO

PKG = REPO / "normbench"


def _layers() -> list[str]:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", (REPO / "docs/layers.md").read_text(encoding="utf-8"), re.M)
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1)), rows
    return [folder for _, folder in rows]


def _modules() -> dict[str, object]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path, modules) -> set[str]:
    """The normbench modules `name` imports anywhere in its file."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name if is_pkg else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    here = here.rpartition(".")[0]
                base = f"{here}.{base}" if base else here
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for t in targets:
            while t and t not in modules and "." in t:
                t = t.rpartition(".")[0]
            if t in modules and t != name:
                found.add(t)
    return found


def _graph():
    modules = _modules()
    return modules, {m: _imports(m, p, modules) for m, p in modules.items()}


def _rank(module: str, layers: list[str]) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in layers:
        return layers.index(parts[1])
    return len(layers)  # the package root: cli, __init__, __main__


def test_every_module_sits_in_a_layer_folder():
    layers = _layers()
    stray = [m for m in _modules() if _rank(m, layers) == len(layers) and m not in ("normbench", "normbench.cli", "normbench.__main__")]
    assert not stray, f"modules outside the layer folders of docs/layers.md: {stray}"
    assert {p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("__")} == set(layers)


def test_no_module_imports_a_layer_below_its_own():
    layers = _layers()
    modules, edges = _graph()
    wrong = sorted(f"{a} -> {b}" for a, bs in edges.items() for b in bs if _rank(b, layers) > _rank(a, layers))
    assert not wrong, "imports against docs/layers.md: " + "; ".join(wrong)


def test_nothing_inside_the_package_imports_its_root():
    modules, edges = _graph()
    assert not sorted(a for a, bs in edges.items() if "normbench" in bs and a not in ("normbench.cli", "normbench.__main__"))


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    modules, edges = _graph()
    assert len(modules) >= 30  # the walk found the package
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_docs_layers_lists_every_module_and_only_those():
    text = (REPO / "docs/layers.md").read_text(encoding="utf-8")
    block = text[text.index("```\nnormbench/") + 4: text.rindex("```")]
    listed, folder = set(), None
    for line in block.splitlines()[1:]:
        indent, name = len(line) - len(line.lstrip()), line.split()[0]
        if indent == 2 and name.endswith("/"):
            folder = name
        elif indent == 2:
            folder = None
            listed.add(name)
        elif name.endswith("/"):
            listed |= {str(p.relative_to(PKG)) for p in (PKG / folder / name).glob("*.py") if not p.stem.startswith("_")}
        else:
            listed.add(folder + name)
    actual = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if not p.name.startswith("__")}
    assert (REPO / "normbench/orchestrate/executors/base.py").exists()
    assert listed == actual, (sorted(listed - actual), sorted(actual - listed))


def test_readmes_code_layout_names_the_layers_in_docs_order():
    """The README's code map names every layer folder, in docs/layers.md's order, then cli.py."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    para = text[text.index("### Code layout"):]
    para = para[:para.index("\n\n", para.index("`normbench/`"))]
    named = re.findall(r"`(\w+)`\s+\(", para) + re.findall(r"→\s*`(cli\.py)`", para)
    assert named == [*_layers(), "cli.py"], named
