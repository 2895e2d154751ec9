"""compare says how sure it is: every statistic in every format against values computed
here with scipy; groups count distinct seeds and never mix data; sections; the
test_*_last/_best metrics; plot bands. Run folders are written with runfolder's writers
(tests/conftest.write_run); nothing trains, the file runs in seconds."""

from __future__ import annotations

import io
import json
import math
import re
import statistics

import numpy as np
import pytest
from scipy import special as spf
from scipy import stats as sps

from conftest import FP, cli, error_line, parse_table, write_run

ACC = {"batch": [0.80, 0.83, 0.79, 0.86], "layer": [0.74, 0.80, 0.73, 0.78], "none": [0.70, 0.77, 0.72]}
SEEDS = {"batch": [0, 1, 2, 3], "layer": [0, 1, 2, 3], "none": [0, 1, 5]}  # none shares only some seeds


@pytest.fixture
def three(tmp_path):
    root = tmp_path / "r"
    for norm, accs in ACC.items():
        for seed, acc in zip(SEEDS[norm], accs):
            write_run(root, seed=seed, norm=norm, test_accuracy=acc)
    return root


def csv(root, *args):
    import pandas as pd

    r = cli("compare", root, "--format", "csv", *args)
    assert r.exit_code == 0, r.output
    return pd.read_csv(io.StringIO(r.stdout))


def hedges(a, b):
    na, nb = len(a), len(b)
    df = na + nb - 2
    sp = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / df)
    j = spf.gamma(df / 2) / (math.sqrt(df / 2) * spf.gamma((df - 1) / 2))
    return j * (np.mean(a) - np.mean(b)) / sp


def power(d, n):
    df, c = 2 * n - 2, sps.t.ppf(0.975, 2 * n - 2)
    delta = d * math.sqrt(n / 2)
    return sps.nct.sf(c, df, delta) + sps.nct.cdf(-c, df, delta)


def needed(a, b):
    d = abs(np.mean(a) - np.mean(b)) / math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    return next(n for n in range(2, 10_000) if power(d, n) >= 0.8)


def reference(group, best="batch"):
    """Every number compare should give for `group` against `best`, from scipy."""
    a, b = ACC[group], ACC[best]
    welch = sps.ttest_ind(a, b, equal_var=False)
    ci = welch.confidence_interval(0.95)
    one = sps.ttest_1samp(a, 0).confidence_interval(0.95)
    out = {"mean": np.mean(a), "std": np.std(a, ddof=1), "ci_low": one.low, "ci_high": one.high,
           "diff": np.mean(a) - np.mean(b), "diff_low": ci.low, "diff_high": ci.high, "p_welch": welch.pvalue,
           "hedges_g": hedges(a, b), "seeds_needed": needed(a, b)}
    if SEEDS[group] == SEEDS[best]:
        pr = sps.ttest_rel(a, b).confidence_interval(0.95)
        out |= {"paired_diff": np.mean(np.subtract(a, b)), "paired_low": pr.low, "paired_high": pr.high,
                "paired_width_ratio": (pr.high - pr.low) / (ci.high - ci.low)}
    return out


def holm_by_hand(ps):
    """Holm for two p-values: the smaller times 2, the larger times 1, kept monotone."""
    lo, hi = sorted(ps)
    adj = {lo: min(1, 2 * lo)}
    adj[hi] = max(adj[lo], min(1, hi))
    return [adj[p] for p in ps]


# ----------------------------------------------------------------------------- the numbers


def test_every_statistic_matches_scipy_in_csv_and_json(three):
    df = csv(three).set_index("model.norm")
    js = {g["model.norm"]: g for g in json.loads(cli("compare", three, "--format", "json").stdout)["groups"]}
    assert list(df.index) == ["batch", "layer", "none"] and list(df["rank"]) == [1, 2, 3]
    ref = {g: reference(g) for g in ("layer", "none")}
    holm = holm_by_hand([ref["layer"]["p_welch"], ref["none"]["p_welch"]])
    for (g, r), p_holm in zip(ref.items(), holm):
        r["p_holm"] = p_holm
        for key, want in r.items():
            col = f"test_accuracy_{key}"
            assert df.loc[g, col] == pytest.approx(want, rel=1e-9), (g, col)
            assert js[g][col] == pytest.approx(want, rel=1e-9), (g, col)
        assert df.loc[g, "n"] == js[g]["n"] == len(ACC[g])
    # pairing only where both groups ran the same seeds (layer: 0-3; none: 0, 1, 5)
    assert "paired_diff" in ref["layer"] and math.isnan(df.loc["none", "test_accuracy_paired_diff"])
    assert js["none"]["test_accuracy_paired_low"] is None
    ci = sps.ttest_1samp(ACC["batch"], 0).confidence_interval(0.95)
    best = {"mean": np.mean(ACC["batch"]), "std": np.std(ACC["batch"], ddof=1), "ci_low": ci.low, "ci_high": ci.high}
    for key in ("mean", "std", "ci_low", "ci_high"):
        assert df.loc["batch", f"test_accuracy_{key}"] == pytest.approx(best[key], rel=1e-9)
    assert df.loc["batch", ["test_accuracy_diff", "test_accuracy_p_welch", "test_accuracy_p_holm"]].isna().all()
    assert js["batch"]["verdict"] is None and js["batch"]["seeds"] == [0, 1, 2, 3]
    assert df.loc["layer", "test_accuracy_seeds_needed"] == js["layer"]["test_accuracy_seeds_needed"]
    assert isinstance(js["layer"]["test_accuracy_seeds_needed"], int)


def test_table_and_markdown_show_the_same_numbers(three):
    ref = {g: reference(g) for g in ("layer", "none")}
    holm = dict(zip(ref, holm_by_hand([ref["layer"]["p_welch"], ref["none"]["p_welch"]])))
    r = cli("compare", three)
    assert r.exit_code == 0, r.output
    rows = {row["model.norm"]: row for row in parse_table(r.stdout)}
    md = cli("compare", three, "--format", "markdown").stdout
    for g, x in ref.items():
        row = rows[g]
        want = {"n": str(len(ACC[g])), "test acc": f"{x['mean']:.4f} ± {x['std']:.4f}",
                "95% CI": f"[{x['ci_low']:.4f}, {x['ci_high']:.4f}]",
                "vs best [95% CI]": f"{x['diff']:+.4f} [{x['diff_low']:+.4f}, {x['diff_high']:+.4f}]",
                "g": f"{x['hedges_g']:.2f}", "p": f"{x['p_welch']:.4f}", "Holm p": f"{holm[g]:.4f}"}
        assert {k: row[k] for k in want} == want
        assert "| " + " | ".join(["2" if g == "layer" else "3", g, *want.values()]) + " |" in md
    assert rows["batch"]["vs best [95% CI]"] == "best"
    assert "| # | model.norm | n | test acc | 95% CI | vs best [95% CI] | g | p | Holm p |" in md
    assert max(len(l) for l in r.stdout.split("\nnotes:")[0].splitlines()[3:]) <= 120  # tables and verdicts


def _verdict_numbers(line):
    m = re.match(r"(\w+) vs (\w+): ([-+][\d.]+) pp \[([-+][\d.]+), ([-+][\d.]+)\], Holm p = ([\d.]+) \(n = (\d+)", line)
    assert m, line
    return m.group(1), m.group(2), *map(float, m.groups()[2:6]), int(m.group(7))


def test_verdict_lines_carry_the_interval_in_pp_and_holm_p(three):
    js = json.loads(cli("compare", three, "--format", "json").stdout)
    verdicts = {g["model.norm"]: g["verdict"] for g in js["groups"] if g["verdict"]}
    for g in ("layer", "none"):
        x = reference(g)
        best_name, other, diff, low, high, p, n = _verdict_numbers(verdicts[g])
        assert (best_name, other) == ("batch", g)
        # best minus group, in percentage points, to the precision shown
        tol = 0.051
        assert diff == pytest.approx(-100 * x["diff"], abs=tol)
        assert (low, high) == pytest.approx((-100 * x["diff_high"], -100 * x["diff_low"]), abs=tol)
    assert "Paired by seed (n = 4)" in verdicts["layer"] and "Paired" not in verdicts["none"]
    table = cli("compare", three).stdout
    assert "verdicts (95% intervals" in table
    flat = " ".join(table.split())  # the table format wraps verdicts at 118 columns
    assert " ".join(verdicts["layer"].split()) in flat


def test_verdict_for_a_loss_says_which_is_better(tmp_path):
    root = tmp_path / "r"
    for norm, losses in (("batch", [0.50, 0.52, 0.51, 0.53]), ("layer", [0.70, 0.72, 0.69, 0.71])):
        for seed, loss in enumerate(losses):
            write_run(root, seed=seed, norm=norm, test_loss=loss)
    js = json.loads(cli("compare", root, "--metric", "test_loss", "--format", "json").stdout)
    assert [g["model.norm"] for g in js["groups"]] == ["batch", "layer"]  # lower first
    v = js["groups"][1]["verdict"]
    assert v.startswith("batch vs layer: -0.19") and "resolved" in v and "not resolved" not in v
    assert v.endswith("Lower is better for test_loss, so batch is better."), v
    js = json.loads(cli("compare", root, "--metric", "wall_seconds", "--format", "json").stdout)
    assert " s [" in js["groups"][1]["verdict"]  # seconds in their own unit


# ----------------------------------------------------------------------------- what a group is


def test_repeated_seeds_are_collapsed_to_the_earliest_finished(three):
    import pandas as pd

    late = write_run(three, seed=1, norm="batch", test_accuracy=0.99, run_id="rerun-late",
                     finished_at="2026-02-01T00:00:00")
    early = write_run(three, seed=2, norm="batch", test_accuracy=0.60, run_id="rerun-early",
                      finished_at="2025-12-01T00:00:00")
    js = json.loads(cli("compare", three, "--format", "json").stdout)
    batch = next(g for g in js["groups"] if g["model.norm"] == "batch")
    kept = [ACC["batch"][0], ACC["batch"][1], 0.60, ACC["batch"][3]]  # seed 2: the rerun finished first
    assert batch["n"] == 4 and sorted(batch["seeds"]) == [0, 1, 2, 3]
    assert batch["test_accuracy_mean"] == pytest.approx(statistics.mean(kept))
    assert batch["test_accuracy_std"] == pytest.approx(statistics.stdev(kept))
    assert str(late) not in batch["runs"] and str(early) in batch["runs"]
    assert {c["path"]: c["seed"] for c in js["collapsed"]} == {str(late): 1, str(next(
        p.parent for p in three.rglob("summary.json") if "seed2" in p.parent.name and "exp_batch" in str(p))): 2}
    assert any("2 repeated runs of a seed collapsed" in n for n in js["notes"])
    table = cli("compare", three).stdout
    assert "2 repeated runs of a seed collapsed" in table and f"collapsed: {late}" in table
    r = cli("compare", three, "--format", "csv")
    assert pd.read_csv(io.StringIO(r.stdout)).set_index("model.norm").loc["batch", "n"] == 4
    assert f"note: collapsed: {late}" in r.stderr


def test_different_data_never_share_a_group(tmp_path):
    """The same config on two copies of CIFAR-10 (another NORMBENCH_DATA_DIR): two groups."""
    root = tmp_path / "r"
    other = "sha256:" + "cd" * 32
    for seed in (0, 1):
        write_run(root, seed=seed, test_accuracy=0.8 + seed / 100, data="cifar10")
        write_run(root, seed=seed, test_accuracy=0.6 + seed / 100, fingerprint=other, run_id=f"other-{seed}", data="cifar10")
    write_run(root, seed=2, test_accuracy=0.7, fingerprint=None, run_id="old", data="cifar10")  # data unknown
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    got = sorted((g["data_fingerprint"], g["n"], round(g["test_accuracy_mean"], 4)) for g in js["groups"]
                 if g["data_fingerprint"])
    assert got == [(FP, 2, 0.805), (other, 2, 0.605)]
    unknown = [g for g in js["groups"] if g["data_fingerprint"] is None]
    assert len(unknown) == 1 and unknown[0]["n"] == 1
    assert any("1 config ran on different data" in n for n in js["notes"])
    assert any("1 run predate data fingerprints and share a config that ran on several data sets" in n
               for n in js["notes"])
    rows = parse_table(cli("compare", root).stdout)
    assert sorted(row["data"] for row in rows) == sorted(["abababab", "cdcdcdcd", "unknown"])


def test_synthetic_data_differs_per_seed_by_design_and_is_not_split(tmp_path):
    """synthetic_* sets are generated from the run's seed: every seed has its own
    fingerprint, and the seeds still form one group (a real training showed this)."""
    root = tmp_path / "r"
    for seed in (0, 1, 2):
        write_run(root, seed=seed, fingerprint=f"sha256:{seed:064d}")
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    assert [g["n"] for g in js["groups"]] == [3] and js["notes"] == []


def test_runs_without_a_fingerprint_join_with_a_note(tmp_path):
    root = tmp_path / "r"
    write_run(root, seed=0, test_accuracy=0.80, data="cifar10")
    write_run(root, seed=1, test_accuracy=0.82, fingerprint=None, data="cifar10")
    write_run(root, seed=2, test_accuracy=0.84, fingerprint=None, data="cifar10")
    r = cli("compare", root)
    assert "2 runs predate data fingerprints; grouped by config alone" in r.stdout
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    assert [g["n"] for g in js["groups"]] == [3] and js["groups"][0]["data_fingerprint"] == FP
    assert "data" not in parse_table(r.stdout)[0]  # no data column when no config was split


def test_models_and_data_sets_are_ranked_in_their_own_sections(tmp_path):
    root = tmp_path / "r"
    for arch, base in (("cifar10_cnn", 0.60), ("imdb_rnn", 0.85)):
        for norm, shift in (("batch", 0.02), ("layer", 0.0)):
            for seed in (0, 1, 2):
                write_run(root, seed=seed, norm=norm, arch=arch, name=f"{arch}_{norm}",
                          test_accuracy=base + shift + seed / 100)
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    assert js["sections"] == ["cifar10_cnn on synthetic_cifar10", "imdb_rnn on synthetic_imdb"]
    got = [(g["section"], g["rank"], g["model.norm"]) for g in js["groups"]]
    assert got == [("cifar10_cnn on synthetic_cifar10", 1, "batch"), ("cifar10_cnn on synthetic_cifar10", 2, "layer"),
                   ("imdb_rnn on synthetic_imdb", 1, "batch"), ("imdb_rnn on synthetic_imdb", 2, "layer")]
    # each difference is within its section: -0.02, never imdb against cifar (-0.25 or more)
    diffs = [g["test_accuracy_diff"] for g in js["groups"] if g["rank"] == 2]
    assert diffs == pytest.approx([-0.02, -0.02])
    table = cli("compare", root).stdout
    assert "== cifar10_cnn on synthetic_cifar10: 6 runs in 2 groups" in table
    assert "== imdb_rnn on synthetic_imdb: 6 runs in 2 groups" in table
    assert [row["#"] for row in parse_table(table, 1)] == ["1", "2"]
    assert table.count("batch vs layer:") == 2
    md = cli("compare", root, "--format", "markdown").stdout
    assert "### cifar10_cnn on synthetic_cifar10" in md and "### imdb_rnn on synthetic_imdb" in md
    assert list(csv(root)["section"]) == [g[0] for g in got]


# ----------------------------------------------------------------------------- metrics


def test_last_and_best_test_metrics(tmp_path):
    root = tmp_path / "r"
    write_run(root, seed=0, test_accuracy=0.70, extra={"test_accuracy_last": 0.70, "test_accuracy_best": 0.75})
    write_run(root, seed=1, test_accuracy=0.72, extra={"test_accuracy_last": 0.72, "test_accuracy_best": 0.78})
    # older than train.eval: no eval, no *_last/*_best keys; its test_accuracy is the last epoch's
    write_run(root, seed=2, test_accuracy=0.60, extra={"eval": None, "test_accuracy_last": None,
                                                       "test_accuracy_best": None})
    # evaluated the best epoch but has no *_last key: its test_accuracy is not the last epoch's
    write_run(root, seed=3, test_accuracy=0.90, extra={"eval": "best", "test_accuracy_last": None,
                                                       "test_accuracy_best": None})
    js = json.loads(cli("compare", root, "--metric", "test_accuracy_last", "--format", "json").stdout)
    (g,) = js["groups"]
    assert g["n"] == 3 and g["test_accuracy_last_mean"] == pytest.approx(statistics.mean([0.70, 0.72, 0.60]))
    assert any("1 run predate test_accuracy_last: their test_accuracy is used" in n for n in js["notes"])
    assert any("1 completed run without a test_accuracy_last value left out" in n for n in js["notes"])
    assert len(js["left_out"]) == 1 and "seed3" in js["left_out"][0]
    js = json.loads(cli("compare", root, "--metric", "test_accuracy_best", "--format", "json").stdout)
    (g,) = js["groups"]
    assert g["n"] == 2 and g["test_accuracy_best_mean"] == pytest.approx(0.765)
    assert any("2 completed runs without a test_accuracy_best value left out of this comparison (they predate it"
               in n for n in js["notes"])
    for m in ("test_loss_last", "test_loss_best"):
        assert cli("compare", root, "--metric", m).exit_code == 0
    r = cli("compare", root, "--metric", "test_accurracy_best")
    error_line(r, "test_accuracy_last, test_accuracy_best, test_loss_last, test_loss_best")


def test_a_metric_no_run_has_is_one_line(tmp_path):
    write_run(tmp_path, seed=0, extra={"test_accuracy_best": None})
    error_line(cli("compare", tmp_path, "--metric", "test_accuracy_best"),
                       "--metric test_accuracy_best: no completed run has a value for it")


# ----------------------------------------------------------------------------- plots


def test_band_is_the_t_interval_or_the_std_and_accuracy_is_clipped():
    from normbench.plots import _band, _bounds

    x = [0.91, 0.97, 0.99]
    ref = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    m, lo, hi, n = _band(x, "ci")
    assert (m, lo, hi, n) == pytest.approx((np.mean(x), ref.low, ref.high, 3))
    assert hi > 1  # so clipping matters here
    assert _band(x, "ci", _bounds("val_accuracy"))[1:3] == pytest.approx((ref.low, 1.0))
    s = np.std(x, ddof=1)
    assert _band(x, "std")[1:3] == pytest.approx((np.mean(x) - s, np.mean(x) + s))
    assert all(math.isnan(v) for v in _band([0.5], "ci", (0, 1))[1:3])
    losses = [0.1, 0.2, 1.5]  # a t-interval far below 0: a loss cannot be negative
    assert sps.ttest_1samp(losses, 0).confidence_interval(0.95).low < 0
    assert _band(losses, "ci", _bounds("val_loss"))[1] == 0.0


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


def test_plot_vs_a_key_that_does_not_vary_says_so(tmp_path):
    root = tmp_path / "r"
    for norm in ("batch", "layer"):
        write_run(root, seed=0, norm=norm)
    r = cli("plot", root, "--vs", "train.optimizer", "-o", tmp_path / "x.png")
    error_line(r, "--vs train.optimizer: every run has train.optimizer=adam, so there is nothing to plot "
                          "against; pick one that varies: model.norm")
    assert not (tmp_path / "x.png").exists()


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

    from normbench import plots, results

    res = plots.plot_vs(results.load_runs([root]), "train.batch_size", tmp_path / "lib.png")
    assert (tmp_path / "d.png").read_bytes() == (tmp_path / "lib.png").read_bytes()  # the CLI drew this figure
    top, lower = res.figure.axes
    assert lower.get_ylabel() == "diverged\n(share of seeds)"
    # the lower panel: per line (batch, layer, none), the share of its seeds that diverged at 16 and 64
    assert [list(line.get_ydata()) for line in lower.get_lines()] == [[0, 2 / 3], [0, 0], [1, 1]]
    assert [list(line.get_xdata()) for line in lower.get_lines()] == [pytest.approx([16, 64], rel=0.05)] * 3  # dodged
    # the upper panel: batch at 64 is its one completed seed (0.70), drawn hollow; none has no point
    assert [b.get_label().split(" (")[0] for b in top.containers] == ["norm=batch", "norm=layer"]
    assert list(top.containers[0].lines[0].get_ydata()) == pytest.approx([statistics.mean([0.7] * 3), 0.7])
    runs = [x for x in results.load_runs([root]) if x.status == "completed"]
    res = plots.plot_vs(runs, "train.batch_size", tmp_path / "plain.png")
    assert (res.diverged, res.lines) == (0, 2)
    assert len(res.figure.axes) == 1  # no diverged runs: no lower panel
    shares = {}
    for (line, x), (_, seeds) in plots._diverged_seeds(results.load_runs([root]), "train.batch_size",
                                                       lambda r: r.config["model.norm"]).items():
        shares[(line, x)] = len(seeds)
    assert shares == {("batch", "64"): 2, ("none", "16"): 3, ("none", "64"): 3}


def test_runs_not_averaged_are_listed_with_the_keys_that_vary(tmp_path):
    root = tmp_path / "r"
    for bs in (16, 64):
        for seed in (0, 1):
            write_run(root, seed=seed, norm="batch", batch_size=bs)
    d = write_run(root, seed=2, norm="batch", batch_size=16, status="diverged")
    table = cli("compare", root).stdout
    header = next(l for l in table.splitlines() if l.startswith("status"))
    assert header.split()[:4] == ["status", "model.norm", "train.batch_size", "seed"]
    line = next(l for l in table.splitlines() if str(d) in l)
    assert line.split()[:4] == ["diverged", "batch", "16", "2"]


def test_within_ranks_each_value_of_a_key_on_its_own(tmp_path):
    root = tmp_path / "r"
    for bs, (bn, ln) in {2: (0.30, 0.60), 16: (0.70, 0.62), 64: (0.75, 0.61)}.items():
        for seed in (0, 1, 2):
            write_run(root, seed=seed, norm="batch", batch_size=bs, test_accuracy=bn + seed / 100)
            write_run(root, seed=seed, norm="layer", batch_size=bs, test_accuracy=ln + seed / 100)
    rows = csv(root, "--within", "train.batch_size").to_dict("records")
    # numeric order of the sections (2, 16, 64, not "16", "2", "64"), two groups ranked in each
    assert [r["section"] for r in rows] == [f"cifar10_cnn on synthetic_cifar10, train.batch_size={bs}"
                                            for bs in (2, 2, 16, 16, 64, 64)]
    assert [(r["model.norm"], r["rank"]) for r in rows] == [("layer", 1), ("batch", 2), ("batch", 1),
                                                            ("layer", 2), ("batch", 1), ("layer", 2)]
    # each difference is against its own section's best: batch - layer at batch size 2 is -30 pp
    assert float(rows[1]["test_accuracy_diff"]) == pytest.approx(-0.30)
    text = cli("compare", root, "--within", "train.batch_size").stdout
    assert "within each of 3 sections (model.arch on data.name, train.batch_size)" in text.replace("\n  ", " ")
    # without --within: one section, six groups ranked together
    assert csv(root)["section"].nunique() == 1


def test_within_errors_are_one_line(tmp_path):
    root = tmp_path / "r"
    for norm in ("batch", "layer"):
        write_run(root, seed=0, norm=norm)
    error_line(cli("compare", root, "--within", "train.batchsize"),
                       "--within train.batchsize: no such config key in these runs; keys that vary here: model.norm")
    error_line(cli("compare", root, "--within", "seed"), "--within seed: seed never separates groups")


def test_eval_setting_does_not_split_groups_for_last_and_best_metrics(tmp_path):
    import yaml

    root = tmp_path / "r"
    for seed in range(4):
        d = write_run(root, seed=seed, norm="batch", test_accuracy=0.6 + seed / 100)
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["train"]["eval"] = "last" if seed < 2 else "best"
        (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # test_accuracy follows train.eval, so the two settings are two groups ...
    assert sorted(csv(root)["n"]) == [2, 2]
    # ... but the last-epoch and best-epoch figures are the same quantity under either setting
    for metric in ("test_accuracy_last", "test_accuracy_best"):
        rows = csv(root, "--metric", metric)
        assert list(rows["n"]) == [4]
        assert rows[f"{metric}_mean"][0] == pytest.approx(0.615)
