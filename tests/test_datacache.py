"""The data cache (normbench/build/datacache.py): same arrays and fingerprint on a hit as on a
miss, invalidated by every setting and source change that changes the arrays, damaged
entries rebuilt, racing processes safe, off when asked, never fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, cli
from normbench.build import data as nbdata
from normbench.build import datacache
from normbench.schema.config import DataConfig, Subset
from normbench.build.data import fingerprint, load_data


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv(datacache.ENV, str(d))
    return d


@pytest.fixture
def builds(monkeypatch) -> list:
    """Names of the data sets actually read from their source (cache misses)."""
    seen = []
    for name in ("imdb", "cifar10"):
        spec = nbdata.DATASETS[name]

        def counting(cfg, seed, _load=spec.load):
            seen.append(cfg.name)
            return _load(cfg, seed)

        monkeypatch.setitem(nbdata.DATASETS, name, spec.__class__(**{**spec.__dict__, "load": counting}))
    return seen


def _imdb_file(path: Path, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 400, size=(30, 24))
    y = np.array([0, 1] * 15)
    np.savez(path, x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    return path


def _cifar_file(path: Path, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40) % 10
    np.savez(path, x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    return path


def _imdb(path, **kw) -> DataConfig:
    return DataConfig(**{"name": "imdb", "path": str(path), "num_words": 200, "maxlen": 16, **kw})


def _same(a, b):
    for k in ("x_train", "y_train", "x_test", "y_test"):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k
    assert a.fingerprint == b.fingerprint and a.source == b.source


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith((".", "sources")))


def test_hit_gives_the_arrays_and_fingerprint_of_a_fresh_load(tmp_path, cache, builds, monkeypatch):
    imdb, cifar = _imdb_file(tmp_path / "imdb.npz"), _cifar_file(tmp_path / "c.npz")
    for cfg in (_imdb(imdb), DataConfig(name="cifar10", path=str(cifar), subset=Subset(20, 10))):
        monkeypatch.setenv(datacache.ENV, "off")
        fresh = load_data(cfg)
        monkeypatch.setenv(datacache.ENV, str(cache))
        cold, warm = load_data(cfg), load_data(cfg)
        _same(fresh, cold)
        _same(fresh, warm)
        # the fingerprint is the arrays' own (images: the uint8 pixels), not a stored label
        assert warm.fingerprint == fingerprint(warm.x_train, warm.y_train, warm.x_test, warm.y_test)
    assert builds == ["imdb", "imdb", "cifar10", "cifar10"]  # off, cold; the warm loads read nothing
    assert len(_entries(cache)) == 2
    # a hit's integer arrays, CIFAR's uint8 images included (the model scales them per
    # batch), are the memory map itself (shared between processes), read-only
    for cfg in (_imdb(imdb), DataConfig(name="cifar10", path=str(cifar), subset=Subset(20, 10))):
        hit = load_data(cfg)
        assert isinstance(hit.x_train.base, np.memmap) and not hit.x_train.flags.writeable


def test_every_setting_that_changes_the_arrays_is_a_miss(tmp_path, cache, builds):
    src = _imdb_file(tmp_path / "imdb.npz")
    variants = [_imdb(src), _imdb(src, num_words=100), _imdb(src, maxlen=12), _imdb(src, subset=Subset(10, 10)),
                _imdb(src, subset=Subset(12, 10))]
    fps = [load_data(cfg).fingerprint for cfg in variants]
    assert len(builds) == 5 and len(set(fps)) == 5 and len(_entries(cache)) == 5
    for cfg in variants:  # the same settings again: all hits
        load_data(cfg)
    assert len(builds) == 5
    # cifar10 ignores num_words/maxlen: they do not split its entries
    c = _cifar_file(tmp_path / "c.npz")
    load_data(DataConfig(name="cifar10", path=str(c)))
    load_data(DataConfig(name="cifar10", path=str(c), num_words=5, maxlen=7))
    assert builds[5:] == ["cifar10"]


def test_a_changed_source_file_is_a_miss_a_touched_one_rehashed(tmp_path, cache, builds, monkeypatch):
    src = _imdb_file(tmp_path / "imdb.npz")
    first = load_data(_imdb(src))
    hashed = []
    monkeypatch.setattr(datacache, "_hash_content", lambda p, _h=datacache._hash_content: hashed.append(p) or _h(p))
    load_data(_imdb(src))
    assert hashed == [] and builds == ["imdb"]  # digest remembered against size/mtime/inode
    os.utime(src, ns=(1, 1))  # touched: same content, so the same entry after one re-hash
    _same(first, load_data(_imdb(src)))
    assert len(hashed) == 1 and builds == ["imdb"]
    _imdb_file(src, seed=1)  # replaced: other content, same path
    changed = load_data(_imdb(src))
    assert builds == ["imdb", "imdb"] and changed.fingerprint != first.fingerprint
    # the same content at another path shares the entry
    other = tmp_path / "copy.npz"
    other.write_bytes(src.read_bytes())
    load_data(_imdb(other))
    assert builds == ["imdb", "imdb"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_meta", "bad_meta", "missing_array"])
def test_a_damaged_entry_is_rebuilt(tmp_path, cache, builds, capsys, damage):
    src = _imdb_file(tmp_path / "imdb.npz")
    good = load_data(_imdb(src))
    # a private copy: `good` maps the entry's files, which this test damages in place
    # (normbench never writes into an entry; it only renames whole folders)
    good.x_train, good.x_test = np.array(good.x_train), np.array(good.x_test)
    (entry,) = _entries(cache)
    x = entry / "x_train.npy"
    if damage == "truncate":
        x.write_bytes(x.read_bytes()[:-100])
    elif damage == "flip":  # same size, one token id changed: only the fingerprint shows it
        b = bytearray(x.read_bytes())
        b[-1] ^= 1
        x.write_bytes(bytes(b))
    elif damage == "no_meta":
        (entry / "meta.json").unlink()
    elif damage == "bad_meta":
        (entry / "meta.json").write_text("{")
    else:
        (entry / "y_test.npy").unlink()
    again = load_data(_imdb(src))
    _same(good, again)
    assert builds == ["imdb", "imdb"]
    assert "is damaged" in capsys.readouterr().err
    load_data(_imdb(src))  # the rebuilt entry is sound
    assert builds == ["imdb", "imdb"] and [p.name for p in _entries(cache)] == [entry.name]


def test_racing_fills_keep_one_entry_and_the_first_rename_wins(tmp_path, cache):
    src = _imdb_file(tmp_path / "imdb.npz")
    cfg = _imdb(src)
    entry = datacache.entry_for(cfg, src, nbdata._cache_settings(cfg, nbdata.DATASETS["imdb"]))
    a = {k: np.full((3, 2), i, np.int32) for i, k in enumerate(datacache.KEYS)}
    b = {k: v + 1 for k, v in a.items()}
    assert entry.store(a, fingerprint(*a.values()), "a") and entry.store(b, fingerprint(*b.values()), "b")
    arrays, digest = entry.load(fingerprint)
    assert digest == fingerprint(*a.values()) and np.array_equal(arrays["x_train"], a["x_train"])
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp")] == []


def test_a_killed_fill_leaves_no_orphan_behind(tmp_path, cache):
    src = _imdb_file(tmp_path / "imdb.npz")
    cfg = _imdb(src)
    entry = datacache.entry_for(cfg, src, nbdata._cache_settings(cfg, nbdata.DATASETS["imdb"]))
    orphan = cache / f".tmp-{entry.dir.name}-0123456789ab"  # what a fill killed mid-write leaves
    orphan.mkdir()
    (orphan / "x_train.npy").write_bytes(b"half")
    load_data(cfg)
    assert not orphan.exists() and (entry.dir / "meta.json").exists()


def test_concurrent_processes_build_once(tmp_path, cache):
    src = _imdb_file(tmp_path / "imdb.npz")
    code = f"""
import sys, time
from normbench.build import data as d
from normbench.schema.config import DataConfig
spec = d.DATASETS["imdb"]
def slow(cfg, seed, _l=spec.load):
    open(sys.argv[1], "a").write("built\\n"); time.sleep(1.0); return _l(cfg, seed)
d.DATASETS["imdb"] = spec.__class__(**{{**spec.__dict__, "load": slow}})
print(d.load_data(DataConfig(name="imdb", path={str(src)!r}, num_words=200, maxlen=16)).fingerprint)
"""
    log = tmp_path / "builds.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(log)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] == load_data(_imdb(src)).fingerprint
    assert log.read_text().count("built") == 1  # the second waited for the first's entry


def test_off_writes_nothing_and_an_unwritable_cache_is_not_fatal(tmp_path, monkeypatch, capsys):
    src = _imdb_file(tmp_path / "imdb.npz")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for off in ("off", "OFF", "0", ""):
        monkeypatch.setenv(datacache.ENV, off)
        assert load_data(_imdb(src)).x_train.flags.writeable
    # (Keras and matplotlib may write their own files under $HOME on a first import)
    assert not (tmp_path / "home" / ".cache" / "normbench").exists()
    monkeypatch.delenv(datacache.ENV)
    assert datacache.cache_dir() == tmp_path / "home" / ".cache" / "normbench"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(datacache.ENV, str(blocker / "cache"))
    d = load_data(_imdb(src))
    assert d.x_train.shape == (30, 16)
    err = capsys.readouterr().err
    # (the memo of the source's sha256 is only a shortcut: the failure shows when the entry is written)
    assert f"cannot write the data cache in {blocker / 'cache'}" in err and "loading without it" in err


def test_summary_fingerprint_is_the_same_on_a_miss_and_a_hit(tmp_path, cache):
    src = _cifar_file(tmp_path / "c.npz")
    sets = ["--set", "data.name=cifar10", "--set", f"data.path={src}", "--set", "data.subset={train: 40, test: 20}",
            "--set", "train.epochs=1", "--set", f"output.dir={tmp_path / 'runs'}"]
    for _ in range(2):  # cold (fills the cache), warm (reads it)
        r = cli("run", REPO / "configs/smoke/cifar10_bn.yaml", "-q", *sets)
        assert r.exit_code == 0, r.output
        assert len(_entries(cache)) == 1
    fps = [json.loads(f.read_text())["data_fingerprint"] for f in (tmp_path / "runs").glob("*/*/summary.json")]
    a = np.load(src)
    sub_tr = nbdata.balanced_subset(a["y_train"], 40, "t")
    sub_te = nbdata.balanced_subset(a["y_test"], 20, "t")
    want = fingerprint(a["x_train"][sub_tr], a["y_train"][sub_tr], a["x_test"][sub_te], a["y_test"][sub_te])
    assert fps == [want, want]


def test_a_source_replaced_right_after_its_hash_is_not_cached_under_the_old_key(tmp_path, cache, builds, monkeypatch, capsys):
    """The key and the arrays come from the same bytes: the file is replaced (an ordinary
    `mv`) right after it was hashed, before build() reads it. Before the fix the new
    file's arrays were stored under the old content's sha256, so every later run on the
    old bytes, from any path, got the new file's arrays (and the fingerprint check passed)."""
    old_copy = _imdb_file(tmp_path / "old.npz", seed=0)
    new_copy = _imdb_file(tmp_path / "new.npz", seed=1)
    src = tmp_path / "imdb.npz"
    src.write_bytes(old_copy.read_bytes())
    monkeypatch.setenv(datacache.ENV, "off")
    want_old, want_new = load_data(_imdb(old_copy)), load_data(_imdb(new_copy))
    monkeypatch.setenv(datacache.ENV, str(cache))
    real, replaced = datacache._hash_content, []

    def hash_then_replace(p):
        digest = real(p)
        if not replaced:  # the hook: right after the hash, the file is swapped for another
            replaced.append(p)
            os.replace(tmp_path / "swap.npz", src)
        return digest

    (tmp_path / "swap.npz").write_bytes(new_copy.read_bytes())
    monkeypatch.setattr(datacache, "_hash_content", hash_then_replace)
    got = load_data(_imdb(src))
    assert replaced and got.fingerprint == want_new.fingerprint  # this run read (and records) the new file
    assert "changed while it was read; these arrays are used but not cached" in capsys.readouterr().err
    assert _entries(cache) == []  # nothing filed under the old content's key
    # the old bytes at another path: their own arrays, not the new file's
    assert load_data(_imdb(old_copy)).fingerprint == want_old.fingerprint
    assert load_data(_imdb(src)).fingerprint == want_new.fingerprint  # and the new file gets its own entry
    assert len(_entries(cache)) == 2


def test_a_read_only_cache_still_serves_an_entry_whose_source_was_touched(tmp_path, cache, builds, monkeypatch):
    src = _imdb_file(tmp_path / "imdb.npz")
    first = load_data(_imdb(src))
    os.utime(src, ns=(5, 5))  # same content, new mtime: the memo must be rewritten, and cannot be

    def read_only(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(datacache, "write_atomic", read_only)
    again = load_data(_imdb(src))
    _same(first, again)
    assert builds == ["imdb"]  # a hit (before: the cache was given up and the data rebuilt)


def test_discarding_an_entry_that_is_a_plain_file_leaves_no_trash(tmp_path, cache, builds, capsys):
    src = _imdb_file(tmp_path / "imdb.npz")
    cfg = _imdb(src)
    entry = datacache.entry_for(cfg, src, nbdata._cache_settings(cfg, nbdata.DATASETS["imdb"]))
    entry.dir.write_text("not an entry")
    load_data(cfg)
    assert "is damaged" in capsys.readouterr().err
    assert [p.name for p in cache.iterdir() if p.name.startswith(".trash")] == []
    assert (entry.dir / "meta.json").exists()
