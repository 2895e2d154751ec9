"""The user-fixable error and the one-line reason of any error: the bottom of the package
(imports nothing of normbench)."""

import re


class NormbenchError(Exception):
    """A failure the user can fix: the message is one line naming the file and the fix."""


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
