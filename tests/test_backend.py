"""train.backend: the JAX backend trains the same models through the same run path, and
asking for a backend this process cannot give fails with one line and no run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, TINY, cli, write_config
from normbench.training import train

needs_jax = pytest.mark.skipif(not train._installed("jax"), reason="jax not installed (pip install '.[jax]')")


def test_jax_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "_installed", lambda module: False)
    cfg = write_config(tmp_path / "c.yaml", output__dir=str(tmp_path / "out"))
    for args in (["validate", cfg], ["run", cfg, *[a for t in TINY for a in ("--set", t)]]):
        r = cli(*args, "--set", "train.backend=jax")
        assert r.exit_code == 1
        assert r.output.strip().splitlines()[-1] == (
            f"Error: {cfg}: train.backend: jax is not installed; install it with "
            "`pip install 'normbench[jax]'` or set train.backend: tensorflow"
        )
        assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


@needs_jax
def test_switching_backend_in_process_is_refused():
    import keras  # this test process runs Keras on TensorFlow

    assert keras.backend.backend() == "tensorflow"
    with pytest.raises(train.NormbenchError, match=r"^train.backend: Keras is already running on tensorflow in this "
                       r"process and cannot switch to jax; run the config with `normbench run`"):
        train.use_backend("jax")


@needs_jax
def test_jax_run_learns(tmp_path):
    """The IMDB smoke config on JAX, in its own process as `normbench run` is used."""
    out = tmp_path / "out"
    env = dict(os.environ, KERAS_BACKEND="tensorflow")  # the config, not the environment, decides
    r = subprocess.run(
        [sys.executable, "-m", "normbench", "run", str(REPO / "configs/smoke/imdb_ln.yaml"),
         "--set", "train.backend=jax", "--set", f"output.dir={out}"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (summary_path,) = out.glob("*/*/summary.json")
    s = json.loads(summary_path.read_text())
    assert s["status"] == "completed"
    assert s["versions"]["backend"] == "jax" and s["versions"]["jax"]
    assert s["test_accuracy"] > 0.8  # chance is 0.5
    rows = (summary_path.parent / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header + 3 epochs


def test_unroll_on_jax_warns(monkeypatch):
    """Unrolling is the fast choice on TensorFlow and a slow one on JAX: say so."""
    from normbench.schema.config import load_config

    monkeypatch.setattr(train, "use_backend", lambda name: None)  # keep this process on TF
    cfg = load_config(REPO / "configs/smoke/imdb_ln.yaml", [*TINY, "train.backend=jax", "model.unroll=true"])
    with pytest.warns(UserWarning, match=r"^model.unroll: true on the jax backend trains ~7x slower per step"):
        train.prepare(cfg)
