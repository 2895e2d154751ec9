"""Functions read in one screen (issue 30): none in the package is longer than 60 lines,
docstring included; a longer one names its steps as functions."""

from __future__ import annotations

import ast

from conftest import REPO

LIMIT = 60
FOLDERS = ("normbench",)


def long_functions(source: str, limit: int = LIMIT) -> list[tuple[str, int]]:
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_in_the_package_is_over_60_lines():
    found = {}
    for folder in FOLDERS:
        for p in sorted((REPO / folder).rglob("*.py")):
            found.update({f"{p.relative_to(REPO)}:{name}": n for name, n in long_functions(p.read_text(encoding="utf-8"))})
    assert found == {}


def test_the_count_includes_the_docstring_and_methods():
    body = "\n".join(f"    x{i} = {i}" for i in range(57))
    fits = f'def f():\n    """doc"""\n{body}\n'  # 59 lines
    assert long_functions(fits) == []
    too_long = fits + "    y = 1\n    return y\n"  # 61 lines
    assert long_functions(too_long) == [("f", 61)]
    method = "class C:\n" + "".join(f"    {line}\n" for line in too_long.splitlines())
    assert long_functions(method) == [("f", 61)]
