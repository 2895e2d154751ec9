"""Commands that load TensorFlow do not print its start-up notices (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO
from normbench.core.quiet import NOISE


def test_validate_prints_no_tensorflow_startup_notices():
    env = {k: v for k, v in os.environ.items() if k != "NORMBENCH_DEBUG"}
    r = subprocess.run([sys.executable, "-m", "normbench", "validate", str(REPO / "configs/smoke/imdb_ln.yaml")],
                       capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "imdb_ln.yaml: OK" in r.stdout
    for notice in NOISE:
        assert notice not in r.stderr, r.stderr


def test_other_stderr_lines_still_reach_the_user(capfd, monkeypatch):
    """The filter drops only the known notices: anything else written while Keras loads
    is written back."""
    import normbench.core.quiet as quiet

    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.delenv("NORMBENCH_DEBUG", raising=False)
    real_import = __import__

    def noisy_import(name, *args, **kwargs):
        if name == "keras":
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
            os.write(2, b"a real warning\n")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", noisy_import)
    quiet.import_keras()
    err = capfd.readouterr().err
    assert "a real warning" in err and "absl::InitializeLog" not in err
