"""The real reason behind a library exception, as one line.

TensorFlow's errors start with "Graph execution error:" and a Python stack of the graph
node; the reason ("Received a label value of 5 which is outside the valid range of
[0, 3).") comes after it. `describe(e)` finds that line, drops the node/op decoration,
and shortens long reasons at a sentence end, never mid-sentence. Resource exhaustion
(MemoryError, TensorFlow's ResourceExhaustedError, XLA's "OOM when allocating") becomes
"out of memory (...)" with what to shrink. No TensorFlow import: classes are recognised
by name.
"""

from __future__ import annotations

import re

LIMIT = 300  # characters of reason kept in the one line

# lines of TensorFlow's error text that are decoration, not the reason
_NOISE = re.compile(r"^(Graph execution error:?|Detected at node .*|File \".*|\[\[.*|\[Op:.*|Traceback .*)$")
_TAIL = re.compile(r"\s*(\[\[\{\{.*|\[Op:[^\]]*\])\s*$")  # "[[{{node x}}]] [Op:__inference_...]" at a line's end

RESOURCE_ERRORS = ("ResourceExhaustedError", "OutOfMemoryError", "XlaRuntimeError")
RESOURCE_FIX = "use a smaller train.batch_size, data.subset, data.maxlen or data.num_words, or free memory"


def shorten(text: str, limit: int = LIMIT) -> str:
    """`text` if short; else cut at the last sentence end (". " "; " ": ") before `limit`,
    or at the last space with " ..." when no sentence ends early enough."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in re.finditer(r"[.;:](?=\s)", head)]
    if ends:
        return head[: ends[-1]].rstrip(";:")
    return head.rsplit(" ", 1)[0] + " ..."


def reason(e: BaseException) -> str:
    """The first line of `e` that says what went wrong, shortened; the class name when
    the message is empty."""
    for line in str(e).splitlines():
        line = _TAIL.sub("", line.strip())
        if line and not _NOISE.match(line):
            return shorten(line)
    return e.__class__.__name__


def is_resource_error(e: BaseException) -> bool:
    name = type(e).__name__
    if isinstance(e, MemoryError) or name == "ResourceExhaustedError":
        return True
    return name in RESOURCE_ERRORS and ("OOM" in str(e) or "out of memory" in str(e).lower())


def describe(e: BaseException) -> str:
    """`Class: reason`, or `out of memory (reason); <fix>` for resource exhaustion."""
    if is_resource_error(e):
        detail = reason(e) if str(e) else e.__class__.__name__
        return f"out of memory ({detail}); {RESOURCE_FIX}"
    return f"{e.__class__.__name__}: {reason(e)}"
