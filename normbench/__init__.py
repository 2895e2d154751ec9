"""normbench: how does the normalization layer change how a Keras model trains?

Importing this package must stay cheap: nothing here imports TensorFlow or Keras.
The modules that need them (models, train, data loaders) import them inside functions.
"""

import re

__version__ = "0.2.0"


def load_runs(paths):
    """Run folders under `paths` as a pandas DataFrame, one row per run (the flattened
    config, summary.json's figures, status, path): `normbench.frames.load_runs`."""
    from normbench.frames import load_runs

    return load_runs(paths)


def load_history(paths):
    """Every run's history.csv under `paths` as one long pandas DataFrame (run, path,
    epoch, metric columns): `normbench.frames.load_history`."""
    from normbench.frames import load_history

    return load_history(paths)


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
