"""normbench plot: the curves (each group's per-epoch mean and its band, checked against
the history.csv files read here), plot --vs (each point's mean and interval, single
seeds hollow, diverged runs as a share), the bands, and plot's errors."""

from __future__ import annotations

import json
import csv
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from conftest import cli, error_line, write_run
from normbench.store import runfolder


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


def per_seed_values(root: Path, col: str) -> dict:
    """norm -> [each completed run's history column, by epoch], read here with csv."""
    by = {}
    for p in sorted(root.rglob("summary.json")):
        s = json.loads(p.read_text())
        if s["status"] != "completed":
            continue
        with open(p.parent / "history.csv") as f:
            by.setdefault(s["norm"], []).append([float(row[col]) for row in csv.DictReader(f)])
    return by


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
        drawn, bands = ax.get_lines(), ax.collections
        lines = [ln for ln in drawn if ln.get_linewidth() > 1]  # the means
        thin = [ln for ln in drawn if ln.get_linewidth() <= 1]  # each seed's validation curve
        assert len(lines) == len(bands) == 2 * len(norms)
        seeds = per_seed_values(root, cols[1])
        assert sorted(tuple(ln.get_ydata()) for ln in thin) == sorted(
            tuple(v) for norm in norms for v in seeds[norm] if len(seeds[norm]) > 1)
        assert all(ln.get_linestyle() == "-" for ln in thin)
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


@pytest.fixture
def batch_sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    for norm, base in (("batch", 0.8), ("layer", 0.7)):
        for bs in (16, 64, 256):
            for seed in (1, 2):
                write_run(root, seed=seed, norm=norm, batch_size=bs, test_accuracy=base - bs / 1000 + seed / 100)
    return root


# ----------------------------------------------------------------------------- curves


def test_plot_curves_draws_the_groups_mean_curves(two_groups, tmp_path):
    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    out = tmp_path / "plots" / "curves.png"
    write_run(two_groups, seed=9, norm="batch", status="diverged")  # one epoch: in a mean it would move epoch 1
    r = cli("plot", two_groups, "-o", out)
    assert r.exit_code == 0, r.output
    assert f"wrote {out} (2 groups, 6 runs)" in r.stdout
    assert "not averaged: diverged" in r.stderr
    res = plots.plot_curves(load_runs([two_groups]), tmp_path / "lib.png")
    assert (res.lines, res.runs, [x.status for x in res.excluded]) == (2, 6, ["diverged"])
    assert_curves_drawn(res.figure, two_groups, ["batch", "layer"])
    assert out.read_bytes() == (tmp_path / "lib.png").read_bytes()  # the CLI drew this same figure


def test_band_is_the_t_interval_or_the_std_and_accuracy_is_clipped():
    from normbench.core.metrics import bounds_of
    from normbench.present.plots import _band

    x = [0.91, 0.97, 0.99]
    ref = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    m, lo, hi, n = _band(x, "ci")
    assert (m, lo, hi, n) == pytest.approx((np.mean(x), ref.low, ref.high, 3))
    assert hi > 1  # so clipping matters here
    assert _band(x, "ci", bounds_of("val_accuracy"))[1:3] == pytest.approx((ref.low, 1.0))
    s = np.std(x, ddof=1)
    assert _band(x, "std")[1:3] == pytest.approx((np.mean(x) - s, np.mean(x) + s))
    assert all(math.isnan(v) for v in _band([0.5], "ci", (0, 1))[1:3])
    losses = [0.1, 0.2, 1.5]  # a t-interval far below 0: a loss cannot be negative
    assert sps.ttest_1samp(losses, 0).confidence_interval(0.95).low < 0
    assert _band(losses, "ci", bounds_of("val_loss"))[1] == 0.0


def test_e2e_plot_real_runs(real_runs, tmp_path):
    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    out = tmp_path / "curves.png"
    r = cli("plot", real_runs, "-o", out)
    assert r.exit_code == 0, r.output
    res = plots.plot_curves(load_runs([real_runs]), tmp_path / "lib.png")
    assert_curves_drawn(res.figure, real_runs, ["batch", "layer"])
    assert out.read_bytes() == (tmp_path / "lib.png").read_bytes()


# ----------------------------------------------------------------------------- --vs


def test_plot_vs_draws_each_points_mean_and_interval(batch_sweep, tmp_path):
    import numpy as np

    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    out = tmp_path / "bs.png"
    r = cli("plot", batch_sweep, "--vs", "train.batch_size", "-o", out)
    assert r.exit_code == 0, r.output
    assert "(2 lines, 12 runs)" in r.stdout
    res = plots.plot_vs(load_runs([batch_sweep]), "train.batch_size", tmp_path / "lib.png")
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
    res = plots.plot_vs(load_runs([batch_sweep]), "train.batch_size", tmp_path / "bs2.png", "test_loss")
    assert res.log_x and res.lines == 2 and res.single == 0
    # a numeric key spanning less than 8x gets a linear axis; a text key a categorical one
    for bs, lr, opt in ((16, 0.001, "adam"), (16, 0.002, "sgd")):
        for seed in (1, 2):
            d = write_run(batch_sweep, seed=seed, norm="batch", batch_size=bs, name=f"lr{lr}", test_accuracy=0.7 + seed / 100)
            cfg = yaml.safe_load((d / "config.yaml").read_text())
            cfg["train"]["learning_rate"], cfg["train"]["optimizer"] = lr, opt
            (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = plots.plot_vs(load_runs([batch_sweep]), "train.learning_rate", tmp_path / "lr.png")
    assert not res.log_x
    res = plots.plot_vs(load_runs([batch_sweep]), "train.optimizer", tmp_path / "opt.svg")
    assert not res.log_x and (tmp_path / "opt.svg").stat().st_size > 0


def test_plot_bands_and_single_seed_points(tmp_path):
    root = tmp_path / "r"
    for bs in (16, 64):
        for seed in (0, 1, 2):
            write_run(root, seed=seed, norm="batch", batch_size=bs, test_accuracy=0.7 + seed / 50)
    write_run(root, seed=0, norm="layer", batch_size=16, test_accuracy=0.65)  # one seed: hollow, no bar
    write_run(root, seed=0, norm="layer", batch_size=64, test_accuracy=0.66)
    r = cli("plot", root, "--vs", "train.batch_size", "-o", tmp_path / "ci.png")
    assert r.exit_code == 0, r.output
    assert "2 lines, 2 points with n = 1 (hollow, no error bar), 8 runs" in r.stdout
    r = cli("plot", root, "--vs", "train.batch_size", "--band", "std", "-o", tmp_path / "std.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ci.png").read_bytes() != (tmp_path / "std.png").read_bytes()
    for band in ("ci", "std"):
        assert cli("plot", root, "--band", band, "-o", tmp_path / f"curves-{band}.png").exit_code == 0
    assert (tmp_path / "curves-ci.png").read_bytes() != (tmp_path / "curves-std.png").read_bytes()
    error_line(cli("plot", root, "--band", "iqr", "-o", tmp_path / "x.png"), "--band", code=2)


def test_plot_vs_shows_diverged_runs_as_a_share_of_seeds(tmp_path):
    root = tmp_path / "r"
    for bs in (16, 64):
        for seed in (0, 1, 2):
            bn_diverged = bs == 64 and seed > 0  # batch norm breaks at 64 on 2 of 3 seeds
            write_run(root, seed=seed, norm="batch", batch_size=bs, test_accuracy=0.7,
                      status="diverged" if bn_diverged else "completed")
            write_run(root, seed=seed, norm="layer", batch_size=bs, test_accuracy=0.6)
            write_run(root, seed=seed, norm="none", batch_size=bs, status="diverged")  # every run diverged
    r = cli("plot", root, "--vs", "train.batch_size", "-o", tmp_path / "d.png")
    assert r.exit_code == 0, r.output
    assert "3 lines, 1 point with n = 1 (hollow, no error bar), 8 diverged runs (lower panel), 10 runs" in r.stdout

    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    res = plots.plot_vs(load_runs([root]), "train.batch_size", tmp_path / "lib.png")
    assert (tmp_path / "d.png").read_bytes() == (tmp_path / "lib.png").read_bytes()  # the CLI drew this figure
    top, lower = res.figure.axes
    assert lower.get_ylabel() == "diverged\n(share of seeds)"
    # the lower panel: per line (batch, layer, none), the share of its seeds that diverged at 16 and 64
    assert [list(line.get_ydata()) for line in lower.get_lines()] == [[0, 2 / 3], [0, 0], [1, 1]]
    assert [list(line.get_xdata()) for line in lower.get_lines()] == [pytest.approx([16, 64], rel=0.05)] * 3  # dodged
    # the upper panel: batch at 64 is its one completed seed (0.70), drawn hollow; none has no point
    assert [b.get_label().split(" (")[0] for b in top.containers] == ["norm=batch", "norm=layer"]
    assert list(top.containers[0].lines[0].get_ydata()) == pytest.approx([statistics.mean([0.7] * 3), 0.7])
    runs = [x for x in load_runs([root]) if x.status == "completed"]
    res = plots.plot_vs(runs, "train.batch_size", tmp_path / "plain.png")
    assert (res.diverged, res.lines) == (0, 2)
    assert len(res.figure.axes) == 1  # no diverged runs: no lower panel
    shares = {}
    for (line, x), (_, seeds) in plots._diverged_seeds(load_runs([root]), "train.batch_size",
                                                       lambda r: r.config["model.norm"]).items():
        shares[(line, x)] = len(seeds)
    assert shares == {("batch", "64"): 2, ("none", "16"): 3, ("none", "64"): 3}


def test_plot_vs_mixes_runs_with_and_without_a_data_fingerprint(tmp_path):
    """Runs from before data fingerprints beside newer ones (the committed batch-size figure
    mixes study_cifar10_bs with study_cifar10): each point is drawn, none is lost to the
    missing fingerprint (it crashed: the frame's empty cell is NaN, not None)."""
    root = tmp_path / "r"
    for seed in (0, 1):
        for norm in ("batch", "layer"):
            write_run(root, seed=seed, norm=norm, batch_size=16, test_accuracy=0.6, fingerprint=None, data="cifar10")
            write_run(root, seed=seed, norm=norm, batch_size=64, test_accuracy=0.7, data="cifar10")
    r = cli("plot", root, "--vs", "train.batch_size", "-o", tmp_path / "m.png")
    assert r.exit_code == 0, r.output
    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    res = plots.plot_vs(load_runs([root]), "train.batch_size", tmp_path / "lib.png")
    (top,) = res.figure.axes
    assert [list(c.lines[0].get_ydata()) for c in top.containers] == [pytest.approx([0.6, 0.7])] * 2


# ----------------------------------------------------------------------------- errors


def test_plot_vs_a_key_that_does_not_vary_says_so(tmp_path):
    root = tmp_path / "r"
    for norm in ("batch", "layer"):
        write_run(root, seed=0, norm=norm)
    r = cli("plot", root, "--vs", "train.optimizer", "-o", tmp_path / "x.png")
    error_line(r, "--vs train.optimizer: every run has train.optimizer=adam, so there is nothing to plot "
                          "against; pick one that varies: model.norm")
    assert not (tmp_path / "x.png").exists()


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
    from normbench.analysis.runs import HISTORY_NEEDED

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
    from normbench.analysis.runs import HISTORY_NEEDED

    files = sorted((Path(__file__).resolve().parents[1] / "results").rglob(runfolder.HISTORY))
    assert len(files) > 100
    for h in files:
        want = [tuple(r) for r in runfolder.history_frame(h.parent, HISTORY_NEEDED).itertuples(index=False)]
        assert runfolder.history_rows(h.parent, HISTORY_NEEDED) == want, h



def test_plot_vs_seed_says_seed_is_the_replicate_key(two_groups, tmp_path):
    r = cli("plot", two_groups, "--vs", "seed", "-o", tmp_path / "s.png")
    assert error_line(r) == ("Error: --vs seed: seed is the replicate key: runs that differ only in seed are one group, "
                             "and their spread is the error bar; plot against a key that varies: model.norm")


def test_log_loss_puts_the_loss_panel_on_a_log_scale(two_groups, tmp_path):
    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    res = plots.plot_curves(load_runs([two_groups]), tmp_path / "c.png", log_loss=True)
    ax_acc, ax_loss = res.figure.axes
    assert (ax_acc.get_yscale(), ax_loss.get_yscale()) == ("linear", "log")
    assert ax_loss.get_ylabel() == "loss (log scale)"
    r = cli("plot", two_groups, "-o", tmp_path / "d.png", "--log-loss")
    assert r.exit_code == 0 and (tmp_path / "d.png").stat().st_size > 0


def test_tune_plot_stars_the_tied_point_the_tune_confirmed(tmp_path):
    """Two rates tie on validation: the tune keeps the first in the grid's order as typed
    (0.01 before 0.001) and confirms there. The plot stars that point, with its
    confirmation diamond, not the tied point first in numeric order."""
    import tunefake
    from conftest import write_config
    from normbench.present import plots
    from normbench.analysis.runs import load_runs
    from normbench.orchestrate import tune

    old = dict(tunefake.VAL)
    tunefake.VAL[("batch", 0.01)] = tunefake.VAL[("batch", 0.001)] = 0.8
    try:
        spec = tune.load_spec(str(write_config(tmp_path / "c.yaml")), "model.norm=batch,layer",
                              ["train.learning_rate=0.01,0.001"], output=str(tmp_path / "r"), confirm_seeds="5")
        res = tune.run_tune(spec, executor=tunefake.FakeTrainer(), jobs=2, echo=lambda s: None)
        assert res.failures == []
    finally:
        tunefake.VAL.clear()
        tunefake.VAL.update(old)
    batch, layer = tune.selection_of(spec).choices
    assert batch.cell.point["train.learning_rate"] == 0.01 and len(batch.ties) == 1
    out = plots.plot_vs(load_runs([tmp_path / "r"]), "train.learning_rate", tmp_path / "lr.png")
    assert (out.selected, out.confirmed) == (2, 2)  # a star and a confirmation diamond per norm
    ax = out.figure.axes[0]
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    diamonds = [ln for ln in ax.get_lines() if ln.get_marker() == "D"]
    # batch's (the first line: its x is dodged by 2 ** -0.0125) at 0.01, where it was confirmed
    assert stars[0].get_xdata()[0] == pytest.approx(0.01, rel=0.02)
    assert diamonds[0].get_xdata()[0] == pytest.approx(0.01, rel=0.06)
