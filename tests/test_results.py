"""normbench compare / plot (normbench.results + the CLI commands).

Numbers are checked on hand-written run folders (exact, fast) against values computed
independently from their summary.json files with `statistics`; one module-scoped
fixture trains a few tiny real runs for an end-to-end check (tests named test_e2e_*,
deselect with -k "not e2e").
"""

from __future__ import annotations

import io
import json
import csv
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import cli, error_line, parse_table, write_run
from normbench import NormbenchError, runfolder

# ----------------------------------------------------------------------------- helpers


ACC = {"batch": [0.80, 0.82, 0.85], "layer": [0.70, 0.74, 0.71]}
LOSS = {"batch": [0.60, 0.55, 0.50], "layer": [0.80, 0.75, 0.79]}


@pytest.fixture
def two_groups(tmp_path) -> Path:
    """Two configs (norm batch / layer) x three seeds, all completed."""
    root = tmp_path / "results"
    for norm in ("batch", "layer"):
        for i, seed in enumerate((1, 2, 3)):
            write_run(root, seed=seed, norm=norm, test_accuracy=ACC[norm][i], test_loss=LOSS[norm][i],
                      curve_shift=0.1 if norm == "batch" else 0.0)
    return root


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def expected(root: Path, key: str) -> dict:
    """norm -> (n, mean, sample std) of a summary key over completed runs, independently."""
    by = {}
    for s in summaries(root):
        if s["status"] == "completed":
            by.setdefault(s["norm"], []).append(s[key])
    return {k: (len(v), statistics.mean(v), statistics.stdev(v) if len(v) > 1 else None) for k, v in by.items()}


def epoch_values(root: Path) -> dict:
    """norm -> history column -> per epoch, the completed runs' values, read here from the
    history.csv files with csv (the plot's own code not used)."""
    by = {}
    for p in sorted(root.rglob("summary.json")):
        s = json.loads(p.read_text())
        if s["status"] != "completed":
            continue
        with open(p.parent / "history.csv") as f:
            for row in csv.DictReader(f):
                for col in ("accuracy", "val_accuracy", "loss", "val_loss"):
                    by.setdefault(s["norm"], {}).setdefault(col, {}).setdefault(int(row["epoch"]), []).append(float(row[col]))
    return {norm: {col: [v for _, v in sorted(eps.items())] for col, eps in cols.items()} for norm, cols in by.items()}


def t_interval(values, clip=None):
    """The 95 % t-interval of the mean, from scipy, clipped to what the quantity can reach
    (accuracies [0, 1], losses [0, inf): a t-interval of two seeds can pass either)."""
    from scipy import stats as sps

    mean, sd = statistics.mean(values), statistics.stdev(values)
    lo, hi = (mean, mean) if sd == 0 else sps.t.interval(0.95, len(values) - 1, loc=mean, scale=sd / math.sqrt(len(values)))
    return (max(clip[0], lo), min(clip[1], hi)) if clip else (lo, hi)


def assert_curves_drawn(fig, root: Path, norms: list[str]):
    """What plot_curves drew: per group (in `norms` order, one colour each), train accuracy
    dashed and validation accuracy solid on the left panel, the two losses on the right,
    each the per-epoch mean of the group's completed runs, in a band that spans the
    95 % t-interval of that mean at each epoch."""
    import numpy as np

    want = epoch_values(root)
    assert sorted(want) == sorted(norms)
    ax_acc, ax_loss = fig.axes
    assert (ax_acc.get_title(), ax_loss.get_title()) == ("Accuracy", "Loss")
    colors = []
    for ax, cols in ((ax_acc, ("accuracy", "val_accuracy")), (ax_loss, ("loss", "val_loss"))):
        lines, bands = ax.get_lines(), ax.collections
        assert len(lines) == len(bands) == 2 * len(norms)
        for i, norm in enumerate(norms):
            for j, col in enumerate(cols):
                line, band, per_epoch = lines[2 * i + j], bands[2 * i + j], want[norm][col]
                assert line.get_linestyle() == ("--" if j == 0 else "-")
                assert list(line.get_xdata()) == list(range(1, len(per_epoch) + 1))
                assert list(line.get_ydata()) == pytest.approx([statistics.mean(v) for v in per_epoch], abs=1e-12), (norm, col)
                edge = np.asarray(band.get_paths()[0].vertices)
                for e, v in enumerate(per_epoch, start=1):
                    ys = edge[np.isclose(edge[:, 0], e), 1]
                    want_lo, want_hi = t_interval(v, (0, 1) if "accuracy" in col else (0, math.inf))
                    assert (ys.min(), ys.max()) == pytest.approx((want_lo, want_hi), abs=1e-9), (norm, col, e)
            assert lines[2 * i].get_color() == lines[2 * i + 1].get_color()
            colors.append(lines[2 * i].get_color())
    assert len(set(map(str, colors[:len(norms)]))) == len(norms)  # one colour per group
    assert colors[:len(norms)] == colors[len(norms):]  # the same on both panels


# ----------------------------------------------------------------------------- compare: numbers


def test_compare_table_n_mean_std(two_groups):
    r = cli("compare", two_groups)
    assert r.exit_code == 0, r.output
    exp_acc = expected(two_groups, "test_accuracy")
    exp_last = expected(two_groups, "last_val_accuracy")
    exp_loss = expected(two_groups, "final_train_loss")
    rows = parse_table(r.stdout)
    assert [row["model.norm"] for row in rows] == ["batch", "layer"]  # best (higher mean test accuracy) first
    for row in rows:
        norm = row["model.norm"]
        n, mean, std = exp_acc[norm]
        assert row["n"] == str(n) == "3"
        assert row["test acc"] == f"{mean:.4f} ± {std:.4f}"
        assert row["last val acc"] == f"{exp_last[norm][1]:.4f} ± {exp_last[norm][2]:.4f}"
        assert row["final train loss"] == f"{exp_loss[norm][1]:.4f} ± {exp_loss[norm][2]:.4f}"
    assert rows[0]["vs best [95% CI]"] == "best"
    assert rows[1]["vs best [95% CI]"].startswith(f"{exp_acc['layer'][1] - exp_acc['batch'][1]:+.4f} [")
    assert "sample std (ddof=1)" in r.stdout and "Welch" in r.stdout


def test_compare_csv_reads_back(two_groups):
    import pandas as pd
    from scipy import stats

    r = cli("compare", two_groups, "--format", "csv")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout)).set_index("model.norm")
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "last_val_accuracy", "final_train_loss", "ms_per_step"):
        for norm, (n, mean, std) in expected(two_groups, key).items():
            assert df.loc[norm, "n"] == n
            assert df.loc[norm, f"{key}_mean"] == pytest.approx(mean, rel=1e-12)
            assert df.loc[norm, f"{key}_std"] == pytest.approx(std, rel=1e-12)
    assert list(df["rank"]) == [1, 2]
    diff = statistics.mean(ACC["layer"]) - statistics.mean(ACC["batch"])
    assert df.loc["layer", "test_accuracy_diff"] == pytest.approx(diff)
    p = stats.ttest_ind(ACC["layer"], ACC["batch"], equal_var=False).pvalue
    assert df.loc["layer", "test_accuracy_p_welch"] == pytest.approx(p)
    assert math.isnan(df.loc["batch", "test_accuracy_p_welch"])


def test_compare_metric_lower_is_better(two_groups):
    r = cli("compare", two_groups, "--metric", "test_loss", "--format", "csv")
    assert r.exit_code == 0, r.output
    import pandas as pd

    df = pd.read_csv(io.StringIO(r.stdout))
    assert list(df["model.norm"]) == ["batch", "layer"]  # batch has the lower test loss
    r = cli("compare", two_groups, "--metric", "final_train_loss")
    assert "ranked by final_train_loss (lower is better)" in r.stdout
    r = cli("compare", two_groups, "--metric", "wall_seconds")  # not a default column: added
    assert r.exit_code == 0
    rows = parse_table(r.stdout)
    assert rows[0]["wall seconds"] == f"{statistics.mean([6.0, 7.0, 8.0]):.4f} ± 1.0000"
    assert "vs best [95% CI]" in rows[0]


def test_compare_single_run_group_gives_na(two_groups):
    write_run(two_groups, seed=1, norm="none", test_accuracy=0.95)
    r = cli("compare", two_groups, "--format", "csv")
    import pandas as pd

    df = pd.read_csv(io.StringIO(r.stdout)).set_index("model.norm")
    assert df.index[0] == "none" and df.loc["none", "n"] == 1
    assert math.isnan(df.loc["none", "test_accuracy_std"])
    assert df.loc[["batch", "layer"], "test_accuracy_p_welch"].isna().all()  # the best group has one run
    rows = {row["model.norm"]: row for row in parse_table(cli("compare", two_groups).stdout)}
    assert rows["batch"]["p"] == "n/a"
    assert rows["batch"]["vs best [95% CI]"] == f"{statistics.mean(ACC['batch']) - 0.95:+.4f}"
    assert rows["none"]["test acc"] == "0.9500 ± n/a"


def test_compare_excludes_unfinished_runs(two_groups):
    before = cli("compare", two_groups, "--format", "csv").stdout
    diverged = write_run(two_groups, seed=4, norm="batch", status="diverged")
    interrupted = write_run(two_groups, seed=5, norm="layer", status="interrupted")
    unfinished = write_run(two_groups, seed=6, norm="layer", summary=False)  # running, or killed
    queued = write_run(two_groups, seed=7, norm="layer", summary=False)  # a sweep member not started yet
    (queued / "history.csv").unlink()
    r = cli("compare", two_groups, "--format", "csv")
    assert r.stdout == before  # never averaged in
    assert str(diverged) in r.stderr and "diverged" in r.stderr
    table = cli("compare", two_groups).stdout
    assert "not averaged: 4 runs" in table
    for d, status, epochs in ((diverged, "diverged", "1/3"), (interrupted, "interrupted", "1/3"),
                              (unfinished, "unfinished", "3/3"), (queued, "not started", "0/3")):
        line = next(l for l in table.splitlines() if str(d) in l)
        assert line.startswith(status) and f" {epochs} " in line
    assert "normbench run --resume" in table
    js = json.loads(cli("compare", two_groups, "--format", "json").stdout)
    assert sorted(x["status"] for x in js["excluded"]) == ["diverged", "interrupted", "not started", "unfinished"]
    assert [g["n"] for g in js["groups"]] == [3, 3]


def test_compare_groups_ignore_seed_name_output_sweep(tmp_path):
    root = tmp_path / "r"
    # same training config under different names, output dirs and sweep recipes: one group
    write_run(root, seed=1, name="a", out="x", test_accuracy=0.5)
    write_run(root, seed=2, name="b", out="y", test_accuracy=0.6, sweep={"train.batch_size": [64, 128]})
    write_run(root, seed=1, name="c", batch_size=128, test_accuracy=0.7)
    write_run(root, seed=2, name="c", batch_size=128, test_accuracy=0.9)
    import pandas as pd

    r = cli("compare", root, "--format", "csv")
    df = pd.read_csv(io.StringIO(r.stdout))
    assert list(df["train.batch_size"]) == [128, 64]
    assert list(df["n"]) == [2, 2]
    assert list(df["label"]) == ["batch_size=128", "batch_size=64"]
    assert df["test_accuracy_mean"].tolist() == pytest.approx([0.8, 0.55])
    table = cli("compare", root).stdout
    assert "train.batch_size" in table and "model.norm" in table


def test_compare_formats_and_output_file(two_groups, tmp_path):
    md = cli("compare", two_groups, "--format", "markdown").stdout
    assert "| # | model.norm | n | test acc | 95% CI |" in md
    js = json.loads(cli("compare", two_groups, "--format", "json").stdout)
    assert js["metric"] == "test_accuracy" and js["std"] == "sample std, ddof=1"
    n, mean, std = expected(two_groups, "test_accuracy")["batch"]
    assert js["groups"][0]["test_accuracy_mean"] == pytest.approx(mean)
    assert js["groups"][0]["runs"] and js["groups"][0]["test_accuracy_p_welch"] is None
    out = tmp_path / "cmp.md"
    r = cli("compare", two_groups, "--format", "markdown", "--output", out)
    assert r.exit_code == 0 and r.stdout == ""
    assert out.read_text() == md


def test_compare_accepts_run_folders_and_dedupes(two_groups):
    dirs = sorted(p.parent for p in two_groups.rglob("summary.json"))
    r = cli("compare", dirs[0], dirs[1], dirs[0] / "summary.json", two_groups / "exp_batch", "--format", "csv")
    import pandas as pd

    df = pd.read_csv(io.StringIO(r.stdout))
    assert df["n"].tolist() == [3]


# ----------------------------------------------------------------------------- compare: errors


def test_compare_unknown_metric(two_groups):
    r = cli("compare", two_groups, "--metric", "accuracyy")
    error_line(r, "--metric accuracyy: unknown metric; choose one of: test_accuracy, test_loss")


def test_compare_missing_path(tmp_path):
    error_line(cli("compare", tmp_path / "nope"), str(tmp_path / "nope"), "no such file or folder")


def test_compare_path_without_runs(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    error_line(cli("compare", tmp_path / "empty"), "no runs found", "output.dir")
    f = tmp_path / "notes.txt"
    f.write_text("x")
    error_line(cli("compare", f), "is a file, not a run folder")


@pytest.mark.parametrize("file, text, reason", [
    ("summary.json", '{"status": "completed", "test_acc', "corrupt summary.json (Unterminated string"),
    ("summary.json", '{"status": "completed", "test_accuracy": "high"}', "test_accuracy is 'high', not a number"),
    ("summary.json", "[]", 'corrupt summary.json (no "status" field)'),
    ("config.yaml", "model: [unclosed", "corrupt config.yaml"),
    ("config.yaml", None, "run folder without config.yaml"),
])
def test_compare_lists_a_corrupt_run_apart(two_groups, file, text, reason):
    """One unreadable run folder is listed apart (status corrupt, the reason); the others
    are compared as if it were not there."""
    import pandas as pd

    d = sorted(p.parent for p in two_groups.rglob("summary.json"))[0]  # exp_batch, seed 1
    if text is None:
        (d / file).unlink()
    else:
        (d / file).write_text(text)
    r = cli("compare", two_groups)
    assert r.exit_code == 0, r.output
    line = next(l for l in r.stdout.splitlines() if l.startswith("corrupt"))
    assert str(d) in line and reason in line, line
    assert "not averaged: 1 run" in r.stdout
    df = pd.read_csv(io.StringIO(cli("compare", two_groups, "--format", "csv").stdout)).set_index("model.norm")
    assert df.loc["batch", "n"] == 2 and df.loc["batch", "test_accuracy_mean"] == pytest.approx(statistics.mean(ACC["batch"][1:]))
    js = json.loads(cli("compare", two_groups, "--format", "json").stdout)
    assert [(x["status"], x["path"]) for x in js["excluded"]] == [("corrupt", str(d))] and reason in js["excluded"][0]["note"]
    r = cli("compare", two_groups, "--format", "csv")
    assert f"note: not averaged: corrupt run {d}" in r.stderr and reason in r.stderr


def test_compare_only_corrupt_runs(tmp_path):
    d = write_run(tmp_path, seed=1)
    (d / "summary.json").write_text("{")
    error_line(cli("compare", tmp_path), "no completed runs to compare (1 corrupt)")


def test_compare_no_completed_runs(tmp_path):
    write_run(tmp_path, seed=1, status="diverged")
    r = cli("compare", tmp_path)
    error_line(r, "no completed runs to compare (1 diverged)", "normbench run --resume")


def test_library_errors_are_normbench_errors(tmp_path):
    from normbench import results

    with pytest.raises(NormbenchError, match="no such file"):
        results.load_runs([tmp_path / "missing"])
    with pytest.raises(NormbenchError, match="unknown metric"):
        results.compare([], "nope")
    with pytest.raises(NormbenchError, match="no completed runs to compare"):
        results.compare([])


# ----------------------------------------------------------------------------- plot


def test_plot_curves_draws_the_groups_mean_curves(two_groups, tmp_path):
    from normbench import plots, results

    out = tmp_path / "plots" / "curves.png"
    write_run(two_groups, seed=9, norm="batch", status="diverged")  # one epoch: in a mean it would move epoch 1
    r = cli("plot", two_groups, "-o", out)
    assert r.exit_code == 0, r.output
    assert f"wrote {out} (2 groups, 6 runs)" in r.stdout
    assert "not averaged: diverged" in r.stderr
    res = plots.plot_curves(results.load_runs([two_groups]), tmp_path / "lib.png")
    assert (res.lines, res.runs, [x.status for x in res.excluded]) == (2, 6, ["diverged"])
    assert_curves_drawn(res.figure, two_groups, ["batch", "layer"])
    assert out.read_bytes() == (tmp_path / "lib.png").read_bytes()  # the CLI drew this same figure


def test_compare_plot_option(two_groups, tmp_path):
    from normbench import plots, results

    out = tmp_path / "c.png"
    r = cli("compare", two_groups, "--plot", out, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert "wrote" not in r.stdout  # stdout stays pure CSV
    plots.plot_curves(results.load_runs([two_groups]), tmp_path / "lib.png")
    assert out.read_bytes() == (tmp_path / "lib.png").read_bytes()  # the curves, as the test above checks them


@pytest.fixture
def batch_sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    for norm, base in (("batch", 0.8), ("layer", 0.7)):
        for bs in (16, 64, 256):
            for seed in (1, 2):
                write_run(root, seed=seed, norm=norm, batch_size=bs, test_accuracy=base - bs / 1000 + seed / 100)
    return root


def test_plot_vs_draws_each_points_mean_and_interval(batch_sweep, tmp_path):
    import numpy as np

    from normbench import plots, results

    out = tmp_path / "bs.png"
    r = cli("plot", batch_sweep, "--vs", "train.batch_size", "-o", out)
    assert r.exit_code == 0, r.output
    assert "(2 lines, 12 runs)" in r.stdout
    res = plots.plot_vs(results.load_runs([batch_sweep]), "train.batch_size", tmp_path / "lib.png")
    assert out.read_bytes() == (tmp_path / "lib.png").read_bytes()  # the CLI drew this same figure
    (ax,) = res.figure.axes
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["16", "64", "256"]
    acc = {}
    for s in (json.loads(p.read_text()) for p in sorted(batch_sweep.rglob("summary.json"))):
        acc.setdefault(s["norm"], {}).setdefault(s["batch_size"], []).append(s["test_accuracy"])
    bars = ax.containers
    assert [b.get_label() for b in bars] == ["norm=batch (n=2 per point)", "norm=layer (n=2 per point)"]
    for bar, norm in zip(bars, ("batch", "layer")):
        line, _, (segments,) = bar.lines
        vals = [acc[norm][bs] for bs in (16, 64, 256)]
        assert list(line.get_ydata()) == pytest.approx([statistics.mean(v) for v in vals], abs=1e-12)
        assert list(line.get_xdata()) == pytest.approx([16, 64, 256], rel=0.05)  # dodged sideways a little
        for (lo, hi), v in zip(np.asarray(segments.get_segments())[:, :, 1], vals):  # the 95 % t-interval
            assert (lo, hi) == pytest.approx(t_interval(v, (0, 1)), abs=1e-9)
    res = plots.plot_vs(results.load_runs([batch_sweep]), "train.batch_size", tmp_path / "bs2.png", "test_loss")
    assert res.log_x and res.lines == 2 and res.single == 0
    # a numeric key spanning less than 8x gets a linear axis; a text key a categorical one
    for bs, lr, opt in ((16, 0.001, "adam"), (16, 0.002, "sgd")):
        for seed in (1, 2):
            d = write_run(batch_sweep, seed=seed, norm="batch", batch_size=bs, name=f"lr{lr}", test_accuracy=0.7 + seed / 100)
            cfg = yaml.safe_load((d / "config.yaml").read_text())
            cfg["train"]["learning_rate"], cfg["train"]["optimizer"] = lr, opt
            (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = plots.plot_vs(results.load_runs([batch_sweep]), "train.learning_rate", tmp_path / "lr.png")
    assert not res.log_x
    res = plots.plot_vs(results.load_runs([batch_sweep]), "train.optimizer", tmp_path / "opt.svg")
    assert not res.log_x and (tmp_path / "opt.svg").stat().st_size > 0


def test_plot_errors(batch_sweep, tmp_path):
    r = cli("plot", batch_sweep, "--vs", "train.batchsize", "-o", tmp_path / "x.png")
    error_line(r, "--vs train.batchsize: no such config key", "train.batch_size")
    r = cli("plot", batch_sweep, "--vs", "train.batch_size", "--metric", "acc", "-o", tmp_path / "x.png")
    error_line(r, "unknown metric")
    error_line(cli("plot", batch_sweep, "-o", tmp_path / "x.bmpx"), "end the name in .png")
    error_line(cli("plot", batch_sweep, "--metric", "test_loss", "-o", tmp_path / "x.png"), "--metric applies to --vs", code=2)
    error_line(cli("plot", tmp_path / "nope", "-o", tmp_path / "x.png"), "no such file or folder")
    error_line(cli("plot", batch_sweep), "Missing option '--output'", code=2)
    h = next(batch_sweep.rglob("history.csv"))
    h.write_text("epoch,loss\n1,0.5\n")
    error_line(cli("plot", batch_sweep, "-o", tmp_path / "x.png"), str(h), "corrupt history.csv")
    assert not (tmp_path / "x.png").exists()


HEADER = "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,epoch_seconds\n"


@pytest.mark.parametrize("text", [
    HEADER + "1,0.5,0.6,0.7,0.55,0.001,1.2\n2,.4,6e-1,0.6,+0.6,1E-3,1\n",
    HEADER + "1,0.5,,0.7,0.55,0.001,1.2\n2,nan,0.6,inf,0.6,0.001,1.0\n",  # empty, nan, inf
    HEADER + "1,0.5,0.6,0.7,0.55,0.001,1.2\n2,0.4,0.6\n",  # a short row
    HEADER + "1,0.5,0.6,0.7,0.55,0.001,1.2\n\n2,0.4,0.6,0.7,0.55,0.001,1.2\n",  # a blank line
    HEADER + "1,0.5,0.6,0.7,0.55,0.001,1.2,9\n",  # a long row
    HEADER + "1,1_0,0.6,0.7,0.55,0.001,1.2\n",  # float() would take it, pandas does not
    HEADER + "1, 0.5,0.6,0.7,0.55,0.001,1.2\n",
    HEADER + '1,"0.5",0.6,0.7,x,0.001,1.2\n',
    "epoch,loss\n1,0.5\n",  # columns missing
    HEADER,
    "",
    "\ufeff" + HEADER + "1,0.5,0.6,0.7,0.55,0.001,1.2\n",
    HEADER.replace("loss,", "loss,loss,", 1) + "1,0.5,0.5,0.6,0.7,0.55,0.001,1.2\n",
])
def test_history_rows_gives_history_frames_numbers_or_its_error(tmp_path, text):
    """plot reads history.csv with the csv module, and anything unusual through pandas'
    history_frame: the same numbers, or the same one-line error."""
    from normbench import NormbenchError
    from normbench.runs import HISTORY_NEEDED

    (tmp_path / runfolder.HISTORY).write_text(text, encoding="utf-8")
    try:
        want = [tuple(r) for r in runfolder.history_frame(tmp_path, HISTORY_NEEDED).itertuples(index=False)]
    except NormbenchError as e:
        with pytest.raises(NormbenchError) as got:
            runfolder.history_rows(tmp_path, HISTORY_NEEDED)
        assert str(got.value) == str(e)
        return
    got = runfolder.history_rows(tmp_path, HISTORY_NEEDED)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(g, w)), (g, w)


def test_history_rows_of_every_committed_run_are_history_frames():
    from normbench.runs import HISTORY_NEEDED

    files = sorted((Path(__file__).resolve().parents[1] / "results").rglob(runfolder.HISTORY))
    assert len(files) > 100
    for h in files:
        want = [tuple(r) for r in runfolder.history_frame(h.parent, HISTORY_NEEDED).itertuples(index=False)]
        assert runfolder.history_rows(h.parent, HISTORY_NEEDED) == want, h


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


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory) -> Path:
    """Two configs (BN, LN CNN on synthetic CIFAR-10) x two seeds, one epoch on tiny subsets."""
    from normbench import train
    from normbench.config import load_config

    out = tmp_path_factory.mktemp("real")
    root = Path(__file__).resolve().parents[1] / "configs" / "smoke"
    for name in ("cifar10_bn", "cifar10_ln"):
        for seed in (1, 2):
            sets = [f"output.dir={out}", f"seed={seed}", "train.epochs=2", "data.subset.train=160", "data.subset.test=32"]
            train.run(load_config(root / f"{name}.yaml", sets), verbose=0)
    return out


def test_e2e_compare_real_runs(real_runs):
    import pandas as pd

    r = cli("compare", real_runs, "--format", "csv")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout)).set_index("model.norm")
    assert sorted(df.index) == ["batch", "layer"]
    for norm, (n, mean, std) in expected(real_runs, "test_accuracy").items():
        assert df.loc[norm, "n"] == n == 2
        assert df.loc[norm, "test_accuracy_mean"] == pytest.approx(mean)
        assert df.loc[norm, "test_accuracy_std"] == pytest.approx(std)
    assert "not averaged" not in cli("compare", real_runs).stdout


def test_e2e_plot_real_runs(real_runs, tmp_path):
    from normbench import plots, results

    out = tmp_path / "curves.png"
    r = cli("plot", real_runs, "-o", out)
    assert r.exit_code == 0, r.output
    res = plots.plot_curves(results.load_runs([real_runs]), tmp_path / "lib.png")
    assert_curves_drawn(res.figure, real_runs, ["batch", "layer"])
    assert out.read_bytes() == (tmp_path / "lib.png").read_bytes()


def test_runs_from_before_a_config_key_existed_group_with_its_default(tmp_path):
    """A run folder written before `train.backend` existed compares as the default
    (tensorflow), in one group with new runs; a jax run is a group of its own."""
    from normbench import results

    root = tmp_path / "results"
    write_run(root, seed=1, test_accuracy=0.80)  # config.yaml without train.backend
    for seed, backend in ((2, "tensorflow"), (3, "jax")):
        d = write_run(root, seed=seed, test_accuracy=0.82, name=f"exp_{backend}")
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["train"]["backend"] = backend
        (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmp = results.compare(results.load_runs([root]))
    assert cmp.varying == ["train.backend"]
    sizes = {row["train.backend"]: row["n"] for _, row in cmp.groups.iterrows()}
    assert sizes == {"tensorflow": 2, "jax": 1}


def test_an_old_config_that_no_longer_validates_still_gets_its_defaults(tmp_path):
    """results fills keys added since a run was made by parsing alone: a config that a
    later rule refuses (3 groups do not divide the CNN's 32 channels) still gets them."""
    from normbench import results

    d = write_run(tmp_path, seed=0, norm="group")
    raw = yaml.safe_load((d / runfolder.CONFIG).read_text())
    raw["model"]["norm_groups"] = 3
    assert "eval" not in raw["train"]
    runfolder.write_config(d, yaml.safe_dump(raw, sort_keys=False))
    run = results.load_run(d)
    assert run.config["train.eval"] == "last" and run.config["train.schedule"] == "constant"
    assert run.config["model.norm_groups"] == 3  # as written
