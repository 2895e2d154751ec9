"""normbench: how does the normalization layer change how a Keras model trains?

Importing this package must stay cheap: nothing here imports TensorFlow or Keras.
The modules that need them (models, train, data loaders) import them inside functions.
"""

__version__ = "0.1.0"


class NormbenchError(Exception):
    """A failure the user can fix: the message is one line naming the file and the fix."""


def one_line(error, limit: int = 200, *, kind: bool = False) -> str:
    """The first non-blank line of an exception's message (or of a text), for a one-line
    error report. Longer than `limit` characters, it is cut at a word boundary and ends
    in "...", so a cut is never mistaken for the whole reason. `kind=True` keeps the
    exception's class name in front ("ValueError: ..."); an exception without a message
    gives its class name alone."""
    name = error.__class__.__name__ if isinstance(error, BaseException) else None
    text = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), "")
    if not text:
        return name or ""
    if kind and name:
        text = f"{name}: {text}"
    if len(text) > limit:
        cut = text[: max(limit - 3, 1)]
        space = cut.rfind(" ")
        if not text[len(cut)].isspace() and space > limit // 2:  # mid-word: back to the last space
            cut = cut[:space]
        text = cut.rstrip(" ,;:") + "..."
    return text
