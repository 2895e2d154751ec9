"""normbench run end to end on the synthetic smoke configs: learning happens, and the run
folder has the right files, columns and rows."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY, cli

HISTORY = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds",
           "grad_norm_mean", "grad_norm_max", "nonfinite_steps"]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """The two smoke configs named in the docs, run as shipped (about 25 s together)."""
    out = tmp_path_factory.mktemp("smoke")
    runs = {}
    for name in ("imdb_ln", "cifar10_bn"):
        r = cli("run", REPO / f"configs/smoke/{name}.yaml", "--set", f"output.dir={out}", "-q")
        assert r.exit_code == 0, r.output
        runs[name] = (r, out)
    return runs


def _run_dir(result):
    line = result.output.strip().splitlines()[-1]
    from pathlib import Path

    return Path(line.rsplit(" -> ", 1)[1])


@pytest.mark.parametrize("name", ["imdb_ln", "cifar10_bn"])
def test_smoke_config_learns(smoke_runs, name):
    """Chance is 0.5 (IMDB, 2 balanced classes) and 0.1 (CIFAR, 10 classes). The synthetic
    rules are simple enough that these models reach > 0.95 in a few epochs (measured:
    ~1.0 for both); 0.8 leaves room for seed and platform noise while still failing
    loudly if training, the labels or the inference path (e.g. BN moving averages) break."""
    result, _ = smoke_runs[name]
    run_dir = _run_dir(result)
    h = pd.read_csv(run_dir / "history.csv")
    s = json.loads((run_dir / "summary.json").read_text())
    assert h["val_accuracy"].iloc[-1] > 0.8
    assert s["test_accuracy"] > 0.8
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]  # training loss went down


@pytest.mark.parametrize("name", ["imdb_ln", "cifar10_bn"])
def test_run_folder_layout(smoke_runs, name):
    result, out = smoke_runs[name]
    run_dir = _run_dir(result)
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "config.json", "config.yaml", "history.csv", "summary.json"]
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    shipped = yaml.safe_load((REPO / f"configs/smoke/{name}.yaml").read_text())
    assert cfg["model"] == {**cfg["model"], **shipped["model"]}
    assert cfg["output"]["dir"] == str(out)
    assert cfg["train"]["jit_compile"] == "auto"  # defaults are resolved into the file

    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == HISTORY
    assert [int(r["epoch"]) for r in rows] == list(range(1, shipped["train"]["epochs"] + 1))
    assert all(float(r["learning_rate"]) == pytest.approx(0.001) for r in rows)
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)
    assert all(0 < float(r["grad_norm_mean"]) <= float(r["grad_norm_max"]) and r["nonfinite_steps"] == "0" for r in rows)

    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "completed"
    assert s["epochs_completed"] == shipped["train"]["epochs"]
    for key in ("test_loss", "test_accuracy", "test_loss_last", "test_accuracy_last", "test_loss_best",
                "test_accuracy_best", "best_val_accuracy", "best_epoch", "params", "wall_seconds", "ms_per_step",
                "jit_compile", "seed", "versions", "host", "data_fingerprint", "op_determinism"):
        assert s[key] is not None, key
    assert s["best_val_accuracy"] == pytest.approx(max(float(r["val_accuracy"]) for r in rows))
    assert s["eval"] == "last"  # the default: the headline figures are the last epoch's
    assert (s["test_accuracy"], s["test_loss"]) == (s["test_accuracy_last"], s["test_loss_last"])
    if s["best_epoch"] == s["epochs"]:  # the best epoch is the last: one set of weights, one figure
        assert (s["test_accuracy_best"], s["test_loss_best"]) == (s["test_accuracy"], s["test_loss"])
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", s["data_fingerprint"])
    assert set(s["versions"]) >= {"python", "tensorflow", "keras", "normbench"}
    assert isinstance(s["jit_compile"], bool)
    if not s["host"]["gpus"]:
        assert s["jit_compile"] is False  # "auto" resolves to off on a CPU-only machine
    assert s["deterministic"] is False  # op determinism itself: test_resume.py (this process may have it on)
    # imdb: Embedding 1,280,000 + RNNs 5,152 + 2,080 + LN 2 x 64 + Dense 33
    # cifar: convs 896 + 18,496 + 73,856 + Dense 65,664 + 1,290 + BN 4 x (32/64/128/128)
    #        (gamma, beta, moving mean and variance count)
    assert s["params"] == (1_287_393 if name == "imdb_ln" else 161_610)
    assert f"completed: test_accuracy {s['test_accuracy']:.4f}" in result.output


@pytest.mark.parametrize("name", ["imdb_ln", "cifar10_bn"])
def test_summary_keys_are_the_documented_ones(smoke_runs, name):
    """train writes every key runfolder.SUMMARY_KEYS documents (and write_summary refuses
    any other), so the test fixtures that build summaries from that list stay true."""
    from normbench.store import runfolder

    s = runfolder.read_summary(_run_dir(smoke_runs[name][0]))
    assert set(s) == set(runfolder.SUMMARY_KEYS) - set(runfolder.OPTIONAL_SUMMARY_KEYS)
    # what compare's "did not learn" reads: the majority-class rate (at least 1 / classes) and the first epoch's loss
    assert 1 / (2 if name == "imdb_ln" else 10) <= s["chance_accuracy"] < 1
    assert s["first_train_loss"] == pytest.approx(float(runfolder.read_history(_run_dir(smoke_runs[name][0]))[0]["loss"]))


def test_results_index(smoke_runs):
    _, out = smoke_runs["imdb_ln"]
    index = pd.read_csv(out / "runs.csv")
    assert list(index.columns) == ["run_id", "name", "model", "norm", "seed", "batch_size", "status", "test_accuracy", "test_loss", "path"]
    assert sorted(index["name"]) == ["smoke_cifar10_bn", "smoke_imdb_ln"]
    for _, row in index.iterrows():
        assert (out / row["path"] / "summary.json").exists()


def test_two_runs_of_one_config_never_clobber(tmp_path, out):
    args = ["run", REPO / "configs/smoke/imdb_none.yaml", "--set", f"output.dir={out}", "-q", *sum((["--set", t] for t in TINY), [])]
    a, b = cli(*args), cli(*args)
    assert a.exit_code == 0 and b.exit_code == 0
    assert _run_dir(a) != _run_dir(b)
    assert len(list((out / "smoke_imdb_none").iterdir())) == 2


def test_smoke_flag_shrinks_any_config(tmp_path, out):
    """--smoke goes through the same path: subset and 1 epoch, separate name."""
    r = cli("validate", REPO / "configs/cifar10_bn.yaml", "--smoke", "--no-model")
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load(r.output.split("# data:")[0])
    assert cfg["train"]["epochs"] == 1
    assert cfg["data"]["subset"] == {"train": 512, "test": 256}
    assert cfg["name"] == "cifar10_bn-smoke"
    assert cfg["model"]["norm"] == "batch"


def test_set_overrides_are_typed(tmp_path):
    r = cli("validate", REPO / "configs/imdb_ln.yaml", "--no-model",
            "--set", "train.learning_rate=3e-4", "--set", "model.norm=none", "--set", "data.subset={train: 100, test: 20}",
            "--set", "train.deterministic=true")
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load(r.output.split("# data:")[0])
    assert cfg["train"]["learning_rate"] == 3e-4 and cfg["model"]["norm"] == "none"
    assert cfg["data"]["subset"] == {"train": 100, "test": 20} and cfg["train"]["deterministic"] is True


def test_validate_prints_model_summary(monkeypatch):
    monkeypatch.delenv("NORMBENCH_DATA_DIR", raising=False)  # else the data line names that folder's file
    r = cli("validate", REPO / "configs/imdb_ln.yaml")
    assert r.exit_code == 0, r.output
    assert "norm_1 (LayerNormalization)" in r.output and "Total params: 1,287,393" in r.output
    assert "# data: download through keras.datasets.imdb" in r.output
    assert r.output.strip().endswith("configs/imdb_ln.yaml: OK")


def test_divergence_is_reported(tmp_path, out):
    """A learning rate that blows up: status diverged, exit 2, the epochs kept."""
    r = cli("run", REPO / "configs/smoke/cifar10_none.yaml", "-q", "--set", f"output.dir={out}",
            "--set", "train.optimizer=sgd", "--set", "train.learning_rate=1e12", *sum((["--set", t] for t in TINY), []))
    assert r.exit_code == 2, r.output
    run_dir = _run_dir(r)
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "diverged"
    assert r.output.strip().splitlines()[-1].startswith("diverged: ")


def test_every_command_has_help():
    from normbench.cli import main

    for name, cmd in main.commands.items():
        r = cli(name, "--help")
        assert r.exit_code == 0 and "Usage: main " + name in r.output.replace("normbench", "main"), name
        assert cmd.help, f"{name} has no help text"


def test_help_states_the_confidence_level_that_metrics_level_sets():
    """The level is one edit: with metrics.py's `LEVEL = 0.95` edited to 0.9, every
    command's help that states a level states 90 %, none 95 %."""
    code = (
        "import sys, types, pathlib\n"
        "import normbench\n"
        "src = (pathlib.Path(normbench.__file__).parent / 'core' / 'metrics.py').read_text()\n"
        "assert src.count('\\nLEVEL = 0.95 ') == 1\n"
        "m = sys.modules['normbench.core.metrics'] = types.ModuleType('normbench.core.metrics')\n"
        "exec(compile(src.replace('\\nLEVEL = 0.95 ', '\\nLEVEL = ' + sys.argv[1] + ' '), 'metrics.py', 'exec'), m.__dict__)\n"
        "import normbench.core\n"
        "normbench.core.metrics = m\n"
        "from click.testing import CliRunner\n"
        "from normbench.cli import main\n"
        "texts = [CliRunner().invoke(main, [c, '--help'], terminal_width=400).output for c in main.commands]\n"
        "print(sum(t.count('95 %') for t in texts), sum(t.count('90 %') for t in texts))\n"
    )
    counts = {level: subprocess.run([sys.executable, "-c", code, level], capture_output=True, text=True, check=True).stdout.split()
              for level in ("0.95", "0.9")}
    n = int(counts["0.95"][0])
    assert n >= 6 and counts["0.95"][1] == "0"  # compare (2), plot (2), sweep, tune
    assert counts["0.9"] == ["0", str(n)]


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from normbench.cli import main\n"
        "for args in (['--help'], ['run', '--help'], ['sweep', '--help'], ['validate', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "normbench", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "normbench, version" in r.stdout


def test_one_epoch_has_no_ms_per_step(out):
    """A process's first epoch includes tracing and compiling (the IMDB smoke config with
    --smoke spent 20 s there and reported 2408 ms/step): ms/step never times it, so a
    1-epoch run reports none rather than a figure that is mostly compile time."""
    r = cli("run", REPO / "configs/smoke/imdb_none.yaml", "-q", "--set", f"output.dir={out}", *sum((["--set", t] for t in TINY), []))
    assert r.exit_code == 0, r.output
    s = json.loads((_run_dir(r) / "summary.json").read_text())
    assert s["epochs_completed"] == 1 and s["ms_per_step"] is None and s["first_epoch_seconds"] > 0
    assert ", n/a ms/step -> " in r.output


def test_the_recorded_identity_is_the_one_computed_from_the_folder(smoke_runs, tmp_path):
    """summary.json's identity is what normbench.store.identity computes from the run folder's
    config.yaml and summary.json (as for runs from before the key), so a trained run and
    an old run folder of the same training match; a copy elsewhere keeps it."""
    import shutil

    from normbench.store import identity
    from normbench.analysis import runs

    d = _run_dir(smoke_runs["imdb_ln"][0])
    run = runs.load_run(d)
    assert run.summary["identity"].startswith("sha256:")
    assert run.summary["identity"] == identity.identity(run.config, run.summary)
    copy = shutil.copytree(d, tmp_path / "elsewhere" / "imdb" / d.name)
    assert runs.load_run(copy).identity == run.identity
