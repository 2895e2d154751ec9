"""Shared helpers. Tests make their own small data; real-data tests skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NORMBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests that train in this process run Keras on TensorFlow (the configs' default
# backend); a KERAS_BACKEND=jax in the environment, or "backend" in ~/.keras/keras.json,
# must not change that. Subprocesses inherit it; the JAX tests ask for jax in the config.
os.environ["KERAS_BACKEND"] = "tensorflow"

# tests never read or fill the user's data cache (~/.cache/normbench): one per session
if "NORMBENCH_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["NORMBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="normbench-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NORMBENCH_CACHE_DIR"], True)

# a tiny, fast variant of a smoke config: 1 epoch on 160 examples
TINY = ["data.subset={train: 160, test: 64}", "train.epochs=1"]


def cli(*args, env=None):
    from normbench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def write_config(path: Path, **changes) -> Path:
    """A valid smoke config with dotted-key changes; value None deletes the key."""
    raw = yaml.safe_load((REPO / "configs/smoke/imdb_ln.yaml").read_text())
    for key, value in changes.items():
        parts = key.split("__")
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def out(tmp_path) -> Path:
    d = tmp_path / "results"
    return d


def shared_file(name: str) -> Path:
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real data {p} not present")
    return p
