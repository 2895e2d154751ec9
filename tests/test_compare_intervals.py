"""compare: the numbers and the verdicts. Every statistic (mean, sample std, t-interval,
Welch difference and interval, Hedges' g, p, Holm p, paired difference, seeds needed)
against values computed here with scipy or statistics; the verdict lines; the metric's
direction; test_*_last/_best. Run folders are hand-written; nothing trains."""

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

from conftest import ACC2, ACC3, SEEDS3, cli, compare_csv, error_line, group_stats, parse_table, write_run


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


def logit_interval(a, level=0.95):
    """An accuracy's interval: the t interval of the mean on the logit scale (delta method),
    mapped back, with scipy's logit, expit and t quantile."""
    m, se = np.mean(a), np.std(a, ddof=1) / math.sqrt(len(a))
    h = sps.t.ppf((1 + level) / 2, len(a) - 1) * se / (m * (1 - m))
    return spf.expit(spf.logit(m) - h), spf.expit(spf.logit(m) + h)


def reference(group, best="batch"):
    """Every number compare should give for `group` against `best`, from scipy."""
    a, b = ACC3[group], ACC3[best]
    welch = sps.ttest_ind(a, b, equal_var=False)
    ci = welch.confidence_interval(0.95)
    one = logit_interval(a)
    out = {"mean": np.mean(a), "std": np.std(a, ddof=1), "ci_low": one[0], "ci_high": one[1],
           "diff": np.mean(a) - np.mean(b), "diff_low": ci.low, "diff_high": ci.high, "p_welch": welch.pvalue,
           "hedges_g": hedges(a, b), "seeds_needed": needed(a, b)}
    if SEEDS3[group] == SEEDS3[best]:
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
    df = compare_csv(three).set_index("model.norm")
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
        assert df.loc[g, "n"] == js[g]["n"] == len(ACC3[g])
    # pairing only where both groups ran the same seeds (layer: 0-3; none: 0, 1, 5)
    assert "paired_diff" in ref["layer"] and math.isnan(df.loc["none", "test_accuracy_paired_diff"])
    assert js["none"]["test_accuracy_paired_low"] is None
    ci = logit_interval(ACC3["batch"])
    best = {"mean": np.mean(ACC3["batch"]), "std": np.std(ACC3["batch"], ddof=1), "ci_low": ci[0], "ci_high": ci[1]}
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
        want = {"n": str(len(ACC3[g])), "test acc": f"{x['mean']:.4f} ± {x['std']:.4f}",
                "95% CI": f"[{x['ci_low']:.4f}, {x['ci_high']:.4f}]",
                "vs best [95% CI]": f"{x['diff']:+.4f} [{x['diff_low']:+.4f}, {x['diff_high']:+.4f}]",
                "g": f"{x['hedges_g']:.2f}", "p": f"{x['p_welch']:.4f}", "Holm p": f"{holm[g]:.4f}"}
        assert {k: row[k] for k in want} == want
        assert "| " + " | ".join(["2" if g == "layer" else "3", g, *want.values()]) + " |" in md
    assert rows["batch"]["vs best [95% CI]"] == "best"
    assert "| # | model.norm | n | test acc | 95% CI | vs best [95% CI] | g | p | Holm p |" in md
    assert max(len(l) for l in r.stdout.split("\nnotes:")[0].splitlines()[3:]) <= 120  # tables and verdicts


def test_compare_table_n_mean_std(two_groups):
    r = cli("compare", two_groups)
    assert r.exit_code == 0, r.output
    exp_acc = group_stats(two_groups, "test_accuracy")
    exp_last = group_stats(two_groups, "last_val_accuracy")
    exp_loss = group_stats(two_groups, "final_train_loss")
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
        for norm, (n, mean, std) in group_stats(two_groups, key).items():
            assert df.loc[norm, "n"] == n
            assert df.loc[norm, f"{key}_mean"] == pytest.approx(mean, rel=1e-12)
            assert df.loc[norm, f"{key}_std"] == pytest.approx(std, rel=1e-12)
    assert list(df["rank"]) == [1, 2]
    diff = statistics.mean(ACC2["layer"]) - statistics.mean(ACC2["batch"])
    assert df.loc["layer", "test_accuracy_diff"] == pytest.approx(diff)
    p = stats.ttest_ind(ACC2["layer"], ACC2["batch"], equal_var=False).pvalue
    assert df.loc["layer", "test_accuracy_p_welch"] == pytest.approx(p)
    assert math.isnan(df.loc["batch", "test_accuracy_p_welch"])


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
    assert rows["batch"]["vs best [95% CI]"] == f"{statistics.mean(ACC2['batch']) - 0.95:+.4f}"
    assert rows["none"]["test acc"] == "0.9500 ± n/a"


# ----------------------------------------------------------------------------- verdicts


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


# ----------------------------------------------------------------------------- metrics


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


def test_equal_means_up_to_float_noise_do_not_crash_compare(tmp_path):
    """0.1, 0.2, 0.3 against 0.3, 0.2, 0.1: the means differ by ~1e-17 (summation order).
    The seeds-needed search then asked scipy for ~1e31 seeds and crashed with a traceback;
    now the verdict says no number of seeds would detect it, and the difference reads +0.0."""
    root = tmp_path / "r"
    for seed, (a, b) in enumerate([(0.1, 0.3), (0.2, 0.2), (0.3, 0.1)]):
        write_run(root, seed=seed, norm="batch", test_accuracy=a)
        write_run(root, seed=seed, norm="layer", test_accuracy=b)
    r = cli("compare", root)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "vs layer: +0.0 pp [-22.7, +22.7], p = 1.00 (n = 3 each): not resolved; the two means are equal" in text
    assert not re.search(r"-0\.0+\b", text), text  # no negative zero in the table (-0.0000, g -0.00) or verdicts
