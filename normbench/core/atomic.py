"""Files that readers see whole or not at all: written to a temporary file beside the
target, flushed to disk (fsync), then renamed over it (os.replace, atomic on POSIX). The
one writer for run folders (runfolder), the data cache's memos and the best weights."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path, mode: str = "w"):
    """Open a temporary file beside `path` ("w" text in UTF-8, or "wb"); when the block
    ends it is synced to disk and renamed to `path`. If the block fails (e.g. a full
    disk) nothing is renamed and no temporary file is left behind. The temporary name
    (`.<name>.tmp<pid>-<random>`) is unique per process and call, so concurrent writers
    of one path never share it: the last rename wins."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path, data: str | bytes) -> None:
    """Write `data` (text or bytes) to `path` so that readers see the old file or the whole new one."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
