"""normbench.analysis.stats' bounded intervals, equivalence (TOST), verdict calls, families and the
probability of improvement, against independent references: scipy's logit, expit and t
quantile, statsmodels' ttost_ind, scipy's Mann-Whitney U, and hand-built cases. How often
they are right on simulated studies: tests/test_stats_simulation.py."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special as spf
from scipy import stats as sps

from normbench.analysis import stats as S

statsmodels = pytest.importorskip("statsmodels.stats.weightstats")


# ----------------------------------------------------------------------------- bounded intervals


def logit_reference(x, level=0.95):
    m, se = np.mean(x), np.std(x, ddof=1) / math.sqrt(len(x))
    h = sps.t.ppf((1 + level) / 2, len(x) - 1) * se / (m * (1 - m))
    return spf.expit(spf.logit(m) - h), spf.expit(spf.logit(m) + h)


@pytest.mark.parametrize("x", [[0.746, 0.801, 0.688, 0.772, 0.715], [0.98, 0.99, 0.97], [0.11, 0.09, 0.14, 0.1],
                               [0.5, 0.51]])
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_bounded_mean_ci_is_the_logit_scale_t_interval(x, level):
    ci = S.bounded_mean_ci(x, (0.0, 1.0), level)
    assert (ci.low, ci.high) == pytest.approx(logit_reference(x, level), rel=1e-12)
    assert ci.mean == pytest.approx(np.mean(x)) and ci.n == len(x) and ci.sd == pytest.approx(np.std(x, ddof=1))
    assert 0 < ci.low < ci.mean < ci.high < 1


def test_bounded_mean_ci_on_another_range_rescales():
    # a metric in [0, 100] (percent): the same interval times 100
    x = [74.6, 80.1, 68.8, 77.2]
    ci = S.bounded_mean_ci(x, (0.0, 100.0))
    low, high = logit_reference(np.array(x) / 100)
    assert (ci.low, ci.high) == pytest.approx((100 * low, 100 * high), rel=1e-12)


@pytest.mark.parametrize("x", [[1.0, 1.0, 0.996], [0.0, 0.0, 0.01], [0.1, 0.95], [0.98, 0.99, 1.0]])
def test_where_the_t_interval_leaves_0_1_the_bounded_one_stays_inside(x):
    t = S.mean_ci(x)
    assert t.low < 0 or t.high > 1  # the problem: compare printed such intervals
    ci = S.bounded_mean_ci(x, (0.0, 1.0))
    assert 0 <= ci.low <= ci.mean <= ci.high <= 1


def test_bounded_mean_ci_degenerate_cases_follow_mean_ci():
    assert (S.bounded_mean_ci([1.0, 1.0, 1.0], (0, 1)).low, S.bounded_mean_ci([1.0, 1.0, 1.0], (0, 1)).high) == (1, 1)
    one = S.bounded_mean_ci([0.7], (0, 1))
    assert one.mean == 0.7 and math.isnan(one.low) and math.isnan(one.high)
    assert S.bounded_mean_ci([0.7, 0.8], None) == S.mean_ci([0.7, 0.8])  # unbounded metrics: the t interval
    # values outside the range (not a bounded metric after all): the t interval, intersected
    out = S.bounded_mean_ci([1.2, 1.4], (0, 1))
    assert out.high == 1 and out.low == S.mean_ci([1.2, 1.4]).low


def test_difference_intervals_are_welchs_intersected_with_minus_1_1():
    a, b = [0.95, 0.10], [0.05, 0.9]  # n = 2: t_1 = 12.7, Welch's interval runs far outside [-1, 1]
    w = S.welch_diff(a, b)
    d = S.bounded(w, S.diff_bounds((0, 1)))
    assert w.low < -1 and w.high > 1 and (d.low, d.high) == (-1, 1)
    assert (d.diff, d.p, d.hedges_g) == (w.diff, w.p, w.hedges_g)  # only the bounds change
    ordinary = S.welch_diff([0.8, 0.82, 0.85], [0.7, 0.74, 0.71])
    assert S.bounded(ordinary, (-1, 1)) == ordinary
    assert S.diff_bounds((0, 1)) == (-1, 1) and S.diff_bounds(None) is None


# ----------------------------------------------------------------------------- TOST


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("margin", [0.01, 0.05])
def test_tost_p_matches_statsmodels_ttost_ind_unequal_variances(seed, margin):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.78, 0.02, size=int(rng.integers(3, 11)))
    b = rng.normal(0.78 + rng.uniform(-0.03, 0.03), 0.03, size=int(rng.integers(3, 11)))
    p_ref = statsmodels.ttost_ind(a, b, -margin, margin, usevar="unequal")[0]
    assert S.tost_p(S.welch_diff(a, b), margin) == pytest.approx(p_ref, rel=1e-10)


def test_tost_is_the_90_percent_interval_inside_the_margin():
    a, b = [0.781, 0.779, 0.784, 0.776, 0.780], [0.778, 0.783, 0.779, 0.781, 0.777]
    d = S.welch_diff(a, b)
    d90 = S.welch_diff(a, b, 0.90)
    inside = max(abs(d90.low), abs(d90.high))
    assert S.tost_p(d, inside * 1.001) < 0.05 <= S.tost_p(d, inside * 0.999)


def test_tost_edge_cases():
    same = S.welch_diff([0.5, 0.5], [0.5, 0.5])
    assert S.tost_p(same, 0.01) == 0.0
    assert S.tost_p(S.welch_diff([0.5, 0.5], [0.6, 0.6]), 0.05) == 1.0
    assert math.isnan(S.tost_p(S.welch_diff([0.5], [0.6, 0.7]), 0.05))
    with pytest.raises(ValueError, match="margin must be a positive finite number"):
        S.tost_p(same, 0)


# ----------------------------------------------------------------------------- calls and words


def test_each_call_is_exactly_one_of_four():
    higher = S.welch_diff([0.80, 0.82, 0.85], [0.70, 0.74, 0.71])
    equal = S.welch_diff([0.781, 0.779, 0.784, 0.776, 0.780], [0.778, 0.783, 0.779, 0.781, 0.777])
    wide = S.welch_diff([0.7, 0.8, 0.9], [0.75, 0.85, 0.65])
    assert S.call(higher) == "higher" and S.call(higher.swapped()) == "lower"
    assert S.call(higher, p_adjusted=0.2) == "not resolved"  # Holm decides
    assert S.call(equal) == "not resolved"  # without a margin never "equivalent"
    assert S.call(equal, None, S.tost_p(equal, 0.01)) == "equivalent"
    assert S.call(wide, None, S.tost_p(wide, 0.01)) == "not resolved"
    # resolved and inside a wide margin: the difference is what is reported
    assert S.call(higher, None, S.tost_p(higher, 0.5)) == "higher"
    assert set(S.CALLS) == {"higher", "lower", "equivalent", "not resolved"}


def _samples():
    rng = np.random.default_rng(5)
    yield [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]  # equal means up to float noise
    yield [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]  # no spread, no difference
    yield [0.5, 0.5, 0.5], [0.6, 0.6, 0.6]  # no spread, a difference
    yield [0.7], [0.8, 0.9]
    for _ in range(40):
        n, m = rng.integers(2, 8, size=2)
        yield list(rng.normal(0.78, 0.02, n)), list(rng.normal(0.78 + rng.normal(0, 0.02), 0.02, m))


def test_without_a_margin_no_verdict_says_no_difference_or_equivalent():
    for a, b in _samples():
        for paired in (None, S.paired_diff(dict(enumerate(a)), dict(enumerate(b)))):
            for p_adj in (None, 0.5, 0.001):
                text = S.verdict("batch", "layer", S.welch_diff(a, b), paired, p_adjusted=p_adj)
                assert "no difference" not in text and "equivalent" not in text, text


def test_with_a_margin_each_verdict_names_its_call_and_the_margin():
    for a, b in _samples():
        d = S.welch_diff(a, b)
        if d.n_a < 2 or d.n_b < 2:
            continue
        c = S.call(d, None, S.tost_p(d, 0.02))
        text = S.verdict("batch", "layer", d, margin=0.02)
        assert "no difference" not in text
        if c == "equivalent":
            assert "equivalent within ±2.0 pp" in text and "not resolved" not in text, text
        elif c == "not resolved":
            assert "not resolved" in text and "nor equivalent within ±2.0 pp" in text or "no spread" in text, text
        else:
            assert "resolved: " in text and "higher than" in text, text


def test_an_equivalent_verdict_reads_in_full():
    a, b = [0.781, 0.779, 0.784, 0.776, 0.780], [0.778, 0.783, 0.779, 0.781, 0.777]
    d = S.welch_diff(a, b)
    d90 = S.welch_diff(a, b, 0.90)
    text = S.verdict("batch", "layer", d, margin=0.01)
    want = (f"batch vs layer: +0.04 pp [{d.low * 100:+.2f}, {d.high * 100:+.2f}], p = {d.p:.2f} (n = 5 each): "
            f"equivalent within ±1.00 pp: the 90 % interval [{d90.low * 100:+.2f}, {d90.high * 100:+.2f}] lies inside "
            f"it (TOST p < 0.001), so a difference larger than the margin is ruled out.")
    assert text == want


# ----------------------------------------------------------------------------- families


def test_family_tests_vs_best_and_all_pairs_hold_holm_over_their_members():
    vals = [[0.80, 0.83, 0.79, 0.86], [0.74, 0.80, 0.73, 0.78], [0.70, 0.77, 0.72]]
    vs = S.family_tests(vals, "vs-best")
    allp = S.family_tests(vals, "all-pairs")
    assert [(t.i, t.j) for t in vs] == [(0, 1), (0, 2)]
    assert [(t.i, t.j) for t in allp] == [(0, 1), (0, 2), (1, 2)]
    ps = [sps.ttest_ind(vals[i], vals[j], equal_var=False).pvalue for i, j in itertools.combinations(range(3), 2)]
    # Holm by hand over three p-values: sorted ascending, times 3, 2, 1, kept monotone
    order = np.argsort(ps)
    adj, run = [0.0] * 3, 0.0
    for rank, idx in enumerate(order):
        run = max(run, min(1, (3 - rank) * ps[idx]))
        adj[idx] = run
    assert [t.p_holm for t in allp] == pytest.approx(adj, rel=1e-10)
    assert all(math.isnan(t.p_tost) for t in allp)
    with pytest.raises(ValueError):
        S.family_tests(vals, "pairs")


# ----------------------------------------------------------------------------- probability of improvement


def test_probability_of_improvement_is_the_mean_over_tasks_of_mann_whitney_u_over_nm():
    rng = np.random.default_rng(0)
    xs = [rng.normal(0.8, 0.02, 5), rng.normal(0.6, 0.05, 3), np.array([0.5, 0.5, 0.6])]
    ys = [rng.normal(0.79, 0.02, 4), rng.normal(0.62, 0.05, 6), np.array([0.5, 0.4])]
    ref = np.mean([sps.mannwhitneyu(x, y).statistic / (len(x) * len(y)) for x, y in zip(xs, ys)])
    assert S.probability_of_improvement(xs, ys) == pytest.approx(ref, rel=1e-12)
    assert S.probability_of_improvement(xs, ys) + S.probability_of_improvement(ys, xs) == pytest.approx(1.0)
    assert math.isnan(S.probability_of_improvement([[]], [[0.5]]))


def test_improvement_interval_is_rliables_stratified_bootstrap():
    """The same resampling written out plainly: per replicate, per task, runs of X and of
    Y drawn with replacement (X's first, then Y's, task by task), as the function draws them."""
    xs = [[0.80, 0.83, 0.79], [0.61, 0.66, 0.58, 0.64], [0.90, 0.91]]
    ys = [[0.78, 0.80, 0.81], [0.60, 0.59, 0.63], [0.90, 0.89, 0.92]]
    p, low, high = S.improvement_interval(xs, ys, reps=500, seed=3)
    rng = np.random.default_rng(3)
    draws = [(rng.integers(0, len(x), size=(500, len(x))), rng.integers(0, len(y), size=(500, len(y))))
             for x, y in zip(xs, ys)]
    boot = []
    for r in range(500):
        per_task = []
        for (ix, iy), x, y in zip(draws, xs, ys):
            xr, yr = np.array(x)[ix[r]], np.array(y)[iy[r]]
            per_task.append(np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in xr for b in yr]))
        boot.append(np.mean(per_task))
    assert p == pytest.approx(S.probability_of_improvement(xs, ys))
    assert (low, high) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])), rel=1e-12)
    assert S.improvement_interval(xs, ys, reps=500, seed=3) == (p, low, high)  # seeded: the same every call


def test_improvement_interval_when_one_side_always_wins():
    assert S.improvement_interval([[0.9, 0.91], [0.8, 0.85]], [[0.5, 0.6], [0.7, 0.75]]) == (1.0, 1.0, 1.0)
    assert all(math.isnan(v) for v in S.improvement_interval([[]], [[0.5]]))


def test_the_metric_table_says_which_intervals_are_bounded():
    from normbench.core import metrics

    assert metrics.interval_bounds("test_accuracy") == metrics.interval_bounds("best_val_accuracy") == (0.0, 1.0)
    for name in ("test_loss", "final_train_loss", "ms_per_step", "best_epoch", "no_such_metric"):
        assert metrics.interval_bounds(name) is None, name
