"""Library errors speak the library's words: no error the package raises outside cli.py
names a command-line option; a parameter is a ParamError (or a WordedError's `{name}`),
which the CLI renders as the option typed (issue 30, "one name per thing")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from normbench.cli import _flag
from normbench.core import errors
from normbench.core.errors import ParamError, WordedError

PACKAGE = Path(__file__).resolve().parent.parent / "normbench"
# every layer's folder: only cli.py (the package root) speaks in options
CHECKED = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
FLAG = re.compile(r"--[A-Za-z]")
# the error classes of normbench.core.errors (NormbenchError and its subclasses)
ERRORS = {name for name, obj in vars(errors).items()
          if isinstance(obj, type) and issubclass(obj, errors.NormbenchError)}


def _no_command(text: str) -> str:
    """The text without a whole command it advises ("finish them with normbench run --resume
    RUN_DIR"): a command to type is not a parameter of the function that raised."""
    return re.sub(r"normbench [a-z]+[^;,]*", "", text)


def _flag_words(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string constant (f-string parts included) inside a
    `raise SomeNormbenchError(...)` that names a command-line option."""
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
            continue
        func = node.exc.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in ERRORS:
            continue
        for part in ast.walk(node.exc):
            if isinstance(part, ast.Constant) and isinstance(part.value, str) and FLAG.search(_no_command(part.value)):
                out.append((node.lineno, part.value))
    return out


def test_the_check_finds_a_flag_in_a_raise():
    """The check itself: it sees a flag in a plain string, in an f-string's text and in a
    keyword value, and passes the library's wording."""
    bad = ast.parse('raise NormbenchError(f"--grid {x}: no")\n'
                    'raise errors.ParamError("p", v, "r", hint="use --per")\n'
                    'raise WordedError("{x}: see --set-like", x=1)\n')
    assert [line for line, _ in _flag_words(bad)] == [1, 2, 3]
    good = ast.parse('raise ParamError("grid_items", v, "e.g. {grid_items} a=1,2")\n'
                     'raise ValueError("--not ours")\n'
                     'raise NormbenchError("x; finish it with normbench run --resume DIR, or not")\n'
                     'print(f"--set {x}")\n')
    assert _flag_words(good) == []


@pytest.mark.parametrize("folder", CHECKED)
def test_no_library_error_names_a_command_line_option(folder):
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
             for path in sorted((PACKAGE / folder).rglob("*.py"))
             for line, text in _flag_words(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, "library errors in CLI words (make each a ParamError or WordedError):\n" + "\n".join(found)


def test_a_worded_error_names_parameters_and_takes_values_as_they_are():
    e = WordedError("{path}: nothing to sweep; add {grid_items} key=a,b or a {{sweep}} section", path="a{b}.yaml")
    assert str(e) == "a{b}.yaml: nothing to sweep; add grid_items key=a,b or a {sweep} section"
    assert e.render(_flag) == "a{b}.yaml: nothing to sweep; add --grid key=a,b or a {sweep} section"
    p = ParamError("executor_options", "x=1", "not an option of {executor} {name}", name="local")
    assert isinstance(p, WordedError)
    assert str(p) == "executor_options x=1: not an option of executor local"
    assert p.render(_flag) == "--executor-option x=1: not an option of --executor local"
    # a value named "reason" (or "text") is a value, not the constructor's argument
    assert str(ParamError("grid", "k=v", "{reason}", reason="bad {x}")) == "grid k=v: bad {x}"


def _cli_options() -> set[str]:
    from normbench.cli import main

    options, stack = set(), [main]
    while stack:
        command = stack.pop()
        stack += getattr(command, "commands", {}).values()
        options |= {opt for p in command.params for opt in getattr(p, "opts", ()) if opt.startswith("-")}
    return options


def _named_parameters(tree: ast.AST) -> set[str]:
    """The parameters every ParamError / WordedError call names: a ParamError's first
    argument and the `{name}` fields of a plain-string text that no keyword fills."""
    import string

    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name not in ("ParamError", "WordedError"):
            continue
        args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
        text = args[2] if name == "ParamError" and len(args) > 2 else args[0] if name == "WordedError" else None
        if name == "ParamError" and args and args[0]:
            out.add(args[0])
        if text:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            out |= fields - {k.arg for k in node.keywords}
    return out


def test_every_parameter_the_library_names_is_an_option_of_the_cli():
    """A parameter named in an error renders (cli._flag) as an option the CLI has: a
    parameter spelled unlike its option is in cli._FLAGS."""
    named = {p for folder in CHECKED for path in (PACKAGE / folder).rglob("*.py")
             for p in _named_parameters(ast.parse(path.read_text(encoding="utf-8")))}
    assert {"grid_items", "ranges", "trials", "executor_options", "overrides", "output"} <= named  # the walk sees them
    options = _cli_options()
    assert {p: _flag(p) for p in named if _flag(p) not in options} == {}


def test_a_worded_error_survives_pickling_whole():
    """An error raised in a worker process (or a Ray task) reaches the driver pickled: it
    arrives with its parameter names, so the CLI still renders the options."""
    import pickle

    for e in (ParamError("grid_items", "a=1", "e.g. {grid_items} a=1,2 ({why})", why="x"),
              WordedError("{path}: add {grid_items}", path="c.yaml")):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e) and back.render(_flag) == e.render(_flag)
        assert "--grid" in back.render(_flag)
