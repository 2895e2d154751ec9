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

from normbench.core.errors import one_line

LIMIT = 300  # characters of reason kept in the one line

RESOURCE_ERRORS = ("ResourceExhaustedError", "OutOfMemoryError", "XlaRuntimeError")
RESOURCE_FIX = "use a smaller train.batch_size, data.subset, data.maxlen or data.num_words, or free memory"


def reason(e: BaseException) -> str:
    """The line of `e` that says what went wrong (normbench.one_line), shortened at a
    sentence end; the class name when the message is empty."""
    return one_line(e, LIMIT)


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
