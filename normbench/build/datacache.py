"""A cache of preprocessed data arrays, so that sweep members start fast and share memory.

An entry holds the arrays `load_data` would use (after Keras' steps, padding and the
subset; images still uint8) as .npy files, opened with `np.load(mmap_mode="r")`: every
process that maps them shares one page-cache copy. It is keyed by what determines the
arrays: the source's content (a sha256, computed once and remembered against the file's
path, size, mtime and inode), the data set's name, the settings that change its
preprocessing (IMDB: num_words, maxlen), the subset, DATA_FORMAT and the Keras version
(Keras' pad_sequences makes the IMDB arrays).

Where: $NORMBENCH_CACHE_DIR, else $XDG_CACHE_HOME/normbench, else ~/.cache/normbench.
`NORMBENCH_CACHE_DIR=off` turns it off. Synthetic sets (generated in well under a second
at their sizes) and Keras downloads (Keras keeps its own copy) are not cached.

Safety: an entry is written into a temporary folder and renamed into place (atomic; when
two processes race, the first rename wins and the other uses it); an exclusive lock per
entry makes concurrent members wait for one fill instead of each preprocessing the data.
Reading checks meta.json, every array's shape and dtype, and the sha256 fingerprint of
the arrays against the one stored (load_data needs that fingerprint anyway): an entry
that fails any check is moved aside and rebuilt. The key and the arrays come from the
same bytes: the source's stat (size, mtime, inode) is taken before it is hashed, and
after `build()` has read it again the stat must be unchanged, else the arrays are used
for this run but not stored (a file replaced during the hash would otherwise file the
new file's arrays under the old content's key). The cache never fails a run: when its
folder cannot be written, a one-line notice says so and the data load without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from normbench.core.atomic import write_atomic

ENV = "NORMBENCH_CACHE_DIR"
OFF = ("off", "0", "false", "no", "none")
DATA_FORMAT = 1  # bump when any step that makes the arrays changes (loaders, padding, subsets)
KEYS = ("x_train", "y_train", "x_test", "y_test")
META = "meta.json"


def cache_dir() -> Path | None:
    """The cache folder, or None when $NORMBENCH_CACHE_DIR turns the cache off."""
    env = os.environ.get(ENV)
    if env is not None and env.strip().lower() in OFF + ("",):
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "normbench"


def _notice(msg: str) -> None:
    print(f"normbench: {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------- sources


def _stat_id(path: Path) -> list:
    """What changes when a file is touched or replaced: size, mtime (ns), inode; for a
    folder (cifar-10-batches-py), those of each file in it."""
    if path.is_dir():
        return [[f.name, *_stat_id(f)] for f in sorted(path.iterdir()) if f.is_file()]
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _hash_content(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f"{f.name};".encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def source_digest(root: Path, path: Path) -> tuple[str, list]:
    """(sha256 of the source's content, the source's stat id before it was hashed). The
    sha256 is remembered in `root`/sources against its path and stat, so that it is
    computed once per version of the file. The stat id lets the caller check, after
    reading the source again to build the arrays, that it read the bytes that were
    hashed (`Entry.source_changed`)."""
    path = Path(path).resolve()
    memo = root / "sources" / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    ident = _stat_id(path)
    try:
        m = json.loads(memo.read_text())
        if m.get("path") == str(path) and m.get("stat") == ident:
            return m["sha256"], ident
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = _hash_content(path)
    if _stat_id(path) == ident:  # not changed while it was read: worth remembering
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(memo, json.dumps({"path": str(path), "stat": ident, "sha256": digest}))
        except OSError:  # a read-only cache: its entries still serve, the memo is only a shortcut
            pass
    return digest, ident


# ----------------------------------------------------------------------------- entries


class Entry:
    """One cache entry: the folder `root/<name>-<key>` and what identifies it."""

    def __init__(self, root: Path, name: str, key: dict, source: tuple[Path, list] | None = None):
        self.root = root
        self.key = key
        self.source = source  # (path, stat id before hashing): the bytes the key's sha256 is of
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        self.dir = root / f"{name}-{digest[:24]}"
        self.extra: dict = {}  # what `store` was given beside the arrays (meta.json's "extra"), after `load`

    def load(self, fingerprint) -> tuple[dict, str] | None:
        """(arrays memory-mapped read-only, fingerprint) when the entry is complete and
        sound; None when it is absent; a damaged entry is moved aside (None)."""
        import numpy as np

        meta_file = self.dir / META
        if not meta_file.exists():
            if self.dir.exists():  # a folder without meta.json is not one of ours: damaged
                self._discard("meta.json is missing")
            return None
        try:
            meta = json.loads(meta_file.read_text())
            if meta.get("key") != self.key:
                raise ValueError("meta.json belongs to other settings")
            arrays = {}
            for k in KEYS:
                a = np.load(self.dir / f"{k}.npy", mmap_mode="r", allow_pickle=False)
                if a.dtype.str != meta["dtypes"][k] or list(a.shape) != meta["shapes"][k]:
                    raise ValueError(f"{k}.npy is {a.dtype.str} {a.shape}, meta.json says {meta['dtypes'][k]} {meta['shapes'][k]}")
                arrays[k] = np.asarray(a)  # a plain ndarray view of the map
            digest = fingerprint(*(arrays[k] for k in KEYS))
            if digest != meta["fingerprint"]:
                raise ValueError("the arrays' sha256 differs from the one recorded")
            self.extra = dict(meta.get("extra") or {})
        except Exception as e:  # truncated .npy, bad JSON, missing key, wrong content...
            self._discard(str(e)[:160])
            return None
        return arrays, digest

    def store(self, arrays: dict, digest: str, source: str, extra: dict | None = None) -> bool:
        """Write the entry (atomically); False when the cache folder cannot be written."""
        import numpy as np

        tmp = self.root / f".tmp-{self.dir.name}-{uuid.uuid4().hex[:12]}"
        try:
            tmp.mkdir(parents=True)
            for k in KEYS:
                np.save(tmp / f"{k}.npy", np.ascontiguousarray(arrays[k]), allow_pickle=False)
            meta = {
                "key": self.key,
                "source": source,
                "fingerprint": digest,
                "dtypes": {k: np.asarray(arrays[k]).dtype.str for k in KEYS},
                "shapes": {k: list(np.shape(arrays[k])) for k in KEYS},
                "extra": extra or {},  # facts about the arrays a hit must give back (data.preprocess's fingerprints)
            }
            (tmp / META).write_text(json.dumps(meta, indent=1))  # written last: marks it complete
            try:
                os.rename(tmp, self.dir)
            except OSError:  # another process filled it first: theirs stays
                pass
            return True
        except OSError as e:
            _notice(f"cannot write the data cache in {self.root} ({e.strerror or e}); "
                    f"loading without it (set ${ENV} to a writable folder, or to off)")
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _discard(self, why: str) -> None:
        """Move a damaged entry aside (processes that map its files keep them) and delete it."""
        _notice(f"data cache entry {self.dir} is damaged ({why}); rebuilding it")
        trash = self.root / f".trash-{self.dir.name}-{uuid.uuid4().hex[:12]}"
        try:
            os.rename(self.dir, trash)
        except OSError:
            return  # already moved by another process
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash, ignore_errors=True)
        else:  # a plain file or a link where the entry's folder should be
            trash.unlink(missing_ok=True)

    def source_changed(self) -> bool:
        """Whether the source file differs from the one hashed for the key (replaced or
        touched since, or unreadable now): arrays built from it then belong to other bytes
        than the key names, and must not be stored under it."""
        if self.source is None:
            return False
        path, ident = self.source
        try:
            return _stat_id(path) != ident
        except OSError:
            return True

    def lock(self):
        return _Lock(self.root / f".{self.dir.name}.lock")


class _Lock:
    """An exclusive flock on a file (released by the OS if the process dies); no-op where
    fcntl is missing or the file cannot be made (then racing fills are still safe)."""

    def __init__(self, path: Path):
        self.path, self.fh = path, None

    @property
    def held(self) -> bool:
        return self.fh is not None

    def __enter__(self):
        try:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "a")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fh:
                self.fh.close()
            self.fh = None
        return self

    def __exit__(self, *exc):
        if self.fh:
            self.fh.close()  # closing releases the flock


def entry_for(cfg, source: Path, settings: dict) -> Entry | None:
    """The entry for data set `cfg.name` read from `source` with these preprocessing
    settings, or None when the cache is off or its folder cannot be used."""
    root = cache_dir()
    if root is None:
        return None
    try:
        digest, ident = source_digest(root, source)
    except OSError as e:
        _notice(f"cannot use the data cache in {root} ({e.strerror or e}); loading without it "
                f"(set ${ENV} to a writable folder, or to off)")
        return None
    from importlib.metadata import version

    key = {
        "format": DATA_FORMAT,
        "name": cfg.name,
        "source_sha256": digest,
        "subset": [cfg.subset.train, cfg.subset.test] if cfg.subset else None,
        "keras": version("keras"),
        **settings,
    }
    return Entry(root, cfg.name, key, (Path(source).resolve(), ident))


def cached(entry: Entry | None, build, fingerprint, source: str = "", extra: dict | None = None) -> tuple[dict, str, bool]:
    """(arrays, fingerprint, hit): from the entry when it is sound, else `build()` (which
    returns the arrays) stored into it and read back memory-mapped. One process builds
    while the others wait for it. `extra`: a dict that `build()` fills with facts about
    the arrays (JSON values); stored in the entry, and filled from it on a hit."""
    extra = {} if extra is None else extra
    if entry is None:
        arrays = build()
        return arrays, fingerprint(*(arrays[k] for k in KEYS)), False
    got = entry.load(fingerprint)
    if got:
        extra.update(entry.extra)
        return (*got, True)
    with entry.lock() as lock:
        got = entry.load(fingerprint)  # filled while this process waited
        if got:
            extra.update(entry.extra)
            return (*got, True)
        if lock.held:  # no one else writes this entry now: temporary folders are orphans
            for tmp in entry.root.glob(f".tmp-{entry.dir.name}-*"):
                shutil.rmtree(tmp, ignore_errors=True)
        arrays = build()
        digest = fingerprint(*(arrays[k] for k in KEYS))
        if entry.source_changed():  # the file changed since it was hashed: these arrays are not the key's
            _notice(f"{source} changed while it was read; these arrays are used but not cached")
            return arrays, digest, False
        if entry.store(arrays, digest, source, dict(extra)):
            got = entry.load(fingerprint)  # the mapped copy, shared with the other members
            if got and got[1] == digest:
                return (*got, False)
        return arrays, digest, False
