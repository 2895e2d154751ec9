"""The user-fixable error and the one-line reason of any error: the bottom of the package
(imports nothing of normbench)."""

import functools
import re


class NormbenchError(Exception):
    """A failure the user can fix: the message is one line naming the file and the fix."""


class WordedError(NormbenchError):
    """A library error whose text names parameters as `{name}` (literal braces doubled),
    each worded by the front end that shows it: `str()` names each as the function does
    ("... sweep into another {output}" reads "... another output"), the CLI as the option
    typed ("... another --output") through `render`. Values go in as keywords, inserted as
    they are (braces and all): WordedError("{path}: nothing to sweep; add {grid_items}",
    path=config_path); a keyword shadows the parameter of its name."""

    def __init__(self, text: str, /, **values):
        self.text, self.values = text, values
        super().__init__(self.render(lambda name: name))

    def render(self, name_of) -> str:
        """The message with every parameter named by `name_of(param)`."""
        return self.text.format_map(_Names(name_of, self.values))

    def __reduce__(self):  # pickled whole (a worker process, Ray), so the CLI can still render it
        return functools.partial(type(self), **self.values), (self.text,)


class ParamError(WordedError):
    """A bad value of one of a library function's own parameters, in the library's words:
    `str()` names the parameter as the function does ("band 'x': unknown band; ..."), and
    a front end renders it in its own (the CLI's `--band x: ...`) through `render`. The
    reason may name other parameters as `{name}` and take values as keywords, as
    WordedError's text does, so advice such as "pass {force}" reads "pass force" from
    Python and "pass --force" on the command line. Text that is not the library's own (a
    path, a value, an exception's message) goes into a reason through `literal` or a keyword.

    `shown=False` leaves the value out ("matrix: expected a 2-D matrix"); `param=None` is a
    failure of no one parameter (a store, a file) whose reason, the whole message, still
    names parameters ("mlflow URI: ...; check {tracking_uri}")."""

    def __init__(self, param: str | None, value, reason: str, /, *, shown: bool = True, **values):
        self.param, self.value, self.reason, self.shown = param, value, reason, shown
        super().__init__(reason, **values)

    def render(self, name_of) -> str:
        """The message with every parameter named by `name_of(param)`."""
        reason = super().render(name_of)
        if self.param is None:
            return reason
        return f"{name_of(self.param)}{f' {self.value}' if self.shown else ''}: {reason}"

    def __reduce__(self):
        return functools.partial(type(self), shown=self.shown, **self.values), (self.param, self.value, self.reason)


def literal(text) -> str:
    """`text` as it should read inside a reason (its braces doubled, so a path or value
    holding "{x}" is never taken for a parameter)."""
    return str(text).replace("{", "{{").replace("}", "}}")


class _Names(dict):
    """Parameter names for str.format_map: a given value, else the name as `name_of` words it."""

    def __init__(self, name_of, values=()):
        super().__init__(values)
        self.name_of = name_of

    def __missing__(self, key):
        return self.name_of(key)


# lines of an error text that are decoration, not the reason (TensorFlow's "Graph
# execution error:", its node and op text, stack frames)
_NOISE = re.compile(r"^(Graph execution error:?|Detected at node .*|File \".*|\[\[.*|\[Op:.*|Traceback .*)$")
_TAIL = re.compile(r"\s*(\[\[\{\{.*|\[Op:[^\]]*\])\s*$")  # "[[{{node x}}]] [Op:__inference_...]" at a line's end


def one_line(error, limit: int = 200, *, kind: bool = False) -> str:
    """The line of an exception's message (or of a text) that says what went wrong, for a
    one-line error report: the first non-blank line that is not TensorFlow decoration
    (so "Graph execution error:" gives way to the reason after it). Longer than `limit`
    characters, it is cut at the last sentence end that fits, else at a word boundary
    ending in "...", so a cut is never mistaken for the whole reason. `kind=True` keeps
    the exception's class name in front ("ValueError: ..."); an exception without a
    message gives its class name alone."""
    name = error.__class__.__name__ if isinstance(error, BaseException) else None
    text = ""
    for line in str(error).splitlines():
        line = _TAIL.sub("", line.strip())
        if line and not _NOISE.match(line):
            text = " ".join(line.split())
            break
    if not text:
        return name or ""
    if kind and name:
        text = f"{name}: {text}"
    if len(text) > limit:
        head = text[:limit]
        ends = [m.end() for m in re.finditer(r"[.;](?=\s)", head)]
        if ends:  # whole sentences: no mark needed
            return head[: ends[-1]].rstrip(";")
        cut = text[: max(limit - 3, 1)]
        space = cut.rfind(" ")
        if not text[len(cut)].isspace() and space > limit // 2:  # mid-word: back to the last space
            cut = cut[:space]
        text = cut.rstrip(" ,;:") + "..."
    return text
