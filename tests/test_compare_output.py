"""compare's output: the formats (table, CSV, markdown, JSON) and --output, --plot,
the results commands' help and light imports, and an end-to-end check on a few tiny
real trainings (conftest.real_runs; tests named test_e2e_*, deselect with -k "not e2e")."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from conftest import cli, group_stats


# ----------------------------------------------------------------------------- formats


def test_compare_formats_and_output_file(two_groups, tmp_path):
    md = cli("compare", two_groups, "--format", "markdown").stdout
    assert "| # | model.norm | n | test acc | 95% CI |" in md
    js = json.loads(cli("compare", two_groups, "--format", "json").stdout)
    assert js["metric"] == "test_accuracy" and js["std"] == "sample std, ddof=1"
    n, mean, std = group_stats(two_groups, "test_accuracy")["batch"]
    assert js["groups"][0]["test_accuracy_mean"] == pytest.approx(mean)
    assert js["groups"][0]["runs"] and js["groups"][0]["test_accuracy_p_welch"] is None
    out = tmp_path / "cmp.md"
    r = cli("compare", two_groups, "--format", "markdown", "--output", out)
    assert r.exit_code == 0 and r.stdout == ""
    assert out.read_text() == md


def test_compare_plot_option(two_groups, tmp_path):
    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    out = tmp_path / "c.png"
    r = cli("compare", two_groups, "--plot", out, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert "wrote" not in r.stdout  # stdout stays pure CSV
    plots.plot_curves(load_runs([two_groups]), tmp_path / "lib.png")
    assert out.read_bytes() == (tmp_path / "lib.png").read_bytes()  # the curves, as the test above checks them


# ----------------------------------------------------------------------------- CLI hygiene


@pytest.mark.parametrize("command", ["compare", "plot", "explain"])
def test_help(command):
    r = cli(command, "--help")
    assert r.exit_code == 0 and f"Usage: main {command}" in r.output


def test_cli_import_stays_light():
    code = (
        "import sys, normbench.cli; "
        "heavy = [m for m in ('tensorflow', 'keras', 'pandas', 'matplotlib', 'scipy', 'numpy') if m in sys.modules]; "
        "print(heavy); sys.exit(bool(heavy))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_compare_and_plot_never_import_tensorflow_or_keras(two_groups, tmp_path):
    """Reading results needs neither (explain is the only results command that does)."""
    code = (
        "import sys; from click.testing import CliRunner; from normbench.cli import main; "
        f"root = {str(two_groups)!r}; out = {str(tmp_path)!r}; "
        "runs = [['compare', root], *(['compare', root, '--format', f] for f in ('csv', 'markdown', 'json')), "
        "        ['compare', root, '--plot', out + '/c.png'], ['plot', root, '-o', out + '/p.png'], "
        "        ['plot', root, '--vs', 'model.norm', '-o', out + '/v.png']]; "
        "codes = [CliRunner().invoke(main, a).exit_code for a in runs]; "
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "print(codes, heavy); sys.exit(1 if heavy or any(codes) else 0)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "p.png").exists() and (tmp_path / "v.png").exists()


# ----------------------------------------------------------------------------- end to end (real trainings)


def test_e2e_compare_real_runs(real_runs):
    import pandas as pd

    r = cli("compare", real_runs, "--format", "csv")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout)).set_index("model.norm")
    assert sorted(df.index) == ["batch", "layer"]
    for norm, (n, mean, std) in group_stats(real_runs, "test_accuracy").items():
        assert df.loc[norm, "n"] == n == 2
        assert df.loc[norm, "test_accuracy_mean"] == pytest.approx(mean)
        assert df.loc[norm, "test_accuracy_std"] == pytest.approx(std)
    assert "not averaged" not in cli("compare", real_runs).stdout
