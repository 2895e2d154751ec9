"""Import Keras (and so TensorFlow) without TensorFlow's start-up chatter.

TensorFlow 2.21 prints "WARNING: All log messages before absl::InitializeLog() ..." and
the oneDNN notice twice (once per shared library) before absl's logging exists, so
TF_CPP_MIN_LOG_LEVEL cannot hide them. `import_keras()` imports Keras with file
descriptor 2 sent to a temporary file, then writes back every line except those known
notices, so real warnings and errors still reach the user. NORMBENCH_DEBUG=1 shows all.
"""

from __future__ import annotations

import os
import sys

NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)


def import_keras():
    """`import keras`, with TensorFlow's start-up notices filtered from stderr."""
    if "keras" in sys.modules or os.environ.get("NORMBENCH_DEBUG"):
        import keras

        return keras
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            import keras
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            kept = [ln for ln in text.splitlines(keepends=True) if not any(n in ln for n in NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    return keras
