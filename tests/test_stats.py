"""normbench.analysis.stats against independently computed values: scipy calls written out here,
published tables (Student t, Cohen's power tables), and worked examples derived by hand.
No TensorFlow; the whole file runs in a few seconds."""

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from normbench.analysis import stats as S

nan = math.nan


# ----------------------------------------------------------------------------- mean_ci


def test_mean_ci_hand_worked_with_the_t_table():
    # [1, 2, 3]: mean 2, s = 1, t_{0.975, 2} = 4.303 (any printed t table) -> 4.303 / sqrt(3)
    ci = S.mean_ci([1, 2, 3])
    assert ci.n == 3 and ci.mean == 2 and ci.sd == 1
    assert ci.half_width == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert (ci.low, ci.high) == pytest.approx((2 - ci.half_width, 2 + ci.half_width))


@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
def test_mean_ci_matches_scipy_one_sample_t_interval(level):
    x = [0.746, 0.801, 0.688, 0.772, 0.715]
    ci = S.mean_ci(x, level)
    ref = sps.ttest_1samp(x, 0.0).confidence_interval(confidence_level=level)
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert ci.mean == pytest.approx(np.mean(x))
    assert ci.sd == pytest.approx(np.std(x, ddof=1))


def test_mean_ci_one_value_has_no_interval_and_none_has_no_mean():
    ci = S.mean_ci([0.7])
    assert ci.n == 1 and ci.mean == 0.7
    assert all(math.isnan(v) for v in (ci.low, ci.high, ci.half_width, ci.sd))
    empty = S.mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_mean_ci_zero_spread_is_a_point_and_nan_values_are_dropped():
    ci = S.mean_ci([0.1, 0.1, 0.1])  # mean of 0.1s is not exactly 0.1; the spread is exactly 0
    assert ci.sd == 0 and ci.half_width == 0 and ci.low == ci.high == ci.mean
    assert S.mean_ci([1, 2, nan, 3]) == S.mean_ci([1, 2, 3])


def test_mean_ci_rejects_a_level_outside_0_1():
    with pytest.raises(ValueError, match="level"):
        S.mean_ci([1, 2], level=95)


def test_precise_enough_stops_on_the_half_width_only():
    x = [1, 2, 3]  # half-width 2.484
    assert S.precise_enough(x, 2.49) and not S.precise_enough(x, 2.48)
    assert not S.precise_enough([0.7], 10.0)  # one seed: no spread measured yet
    assert S.precise_enough([0.7, 0.7], 1e-9)  # zero spread is as precise as it gets
    with pytest.raises(ValueError, match="half_width"):
        S.precise_enough(x, 0)


# ----------------------------------------------------------------------------- welch_diff


A = [0.812, 0.795, 0.843, 0.779]
B = [0.746, 0.801, 0.688]


@pytest.mark.parametrize("level", [0.90, 0.95])
def test_welch_matches_scipy_interval_p_and_df(level):
    d = S.welch_diff(A, B, level)
    ref = sps.ttest_ind(A, B, equal_var=False)
    ci = ref.confidence_interval(confidence_level=level)
    assert d.diff == pytest.approx(np.mean(A) - np.mean(B))
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert d.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert d.df == pytest.approx(ref.df, rel=1e-12)
    assert (d.n_a, d.n_b) == (4, 3)


def test_welch_differs_from_the_student_pooled_interval():
    # guards against a pooled (equal-variance) interval sneaking in: unequal spreads and n
    a, b = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0], [0.0, 2.0, 1.5]
    d = S.welch_diff(a, b)
    pooled = sps.ttest_ind(a, b, equal_var=True).confidence_interval()
    welch = sps.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert (d.low, d.high) == pytest.approx((welch.low, welch.high))
    assert abs(d.low - pooled.low) > 0.1


def test_hedges_g_hand_worked():
    # [1,2,3] vs [4,5,6]: diff -3, both s = 1 -> pooled 1, Cohen's d = -3;
    # df = 4, exact J(4) = Gamma(2) / (sqrt(2) Gamma(1.5)) = 1 / (sqrt(2) sqrt(pi)/2) = sqrt(2/pi)
    d = S.welch_diff([1, 2, 3], [4, 5, 6])
    assert d.hedges_g == pytest.approx(-3 * math.sqrt(2 / math.pi), rel=1e-12)


def test_hedges_g_uses_the_pooled_sd_weighted_by_n():
    a, b = [1.0, 2.0, 4.0, 7.0], [0.0, 1.0]
    sa2, sb2 = np.var(a, ddof=1), np.var(b, ddof=1)
    pooled = math.sqrt((3 * sa2 + 1 * sb2) / 4)
    cohen = (np.mean(a) - np.mean(b)) / pooled
    assert S.welch_diff(a, b).hedges_g == pytest.approx(cohen * math.sqrt(2 / math.pi))


def test_hedges_j_closed_forms_and_the_usual_approximation():
    assert S.hedges_j(2) == pytest.approx(1 / math.sqrt(math.pi))  # Gamma(1)/(1 * Gamma(1/2))
    assert S.hedges_j(4) == pytest.approx(math.sqrt(2 / math.pi))
    for df in (4, 8, 18, 100):
        assert S.hedges_j(df) == pytest.approx(1 - 3 / (4 * df - 1), rel=3e-3)
    assert S.hedges_j(1) == 0 and math.isnan(S.hedges_j(0))


def test_welch_with_one_seed_gives_the_difference_but_no_interval():
    d = S.welch_diff([0.8], [0.7, 0.72])
    assert d.diff == pytest.approx(0.8 - 0.71) and (d.n_a, d.n_b) == (1, 2)
    assert all(math.isnan(v) for v in (d.low, d.high, d.p, d.df, d.hedges_g))
    assert not d.resolved


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on the constant data
def test_welch_zero_spread_limits():
    same = S.welch_diff([0.5] * 3, [0.5] * 3)
    assert same.diff == 0 and same.low == same.high == 0 and math.isnan(same.p) and math.isnan(same.hedges_g)
    apart = S.welch_diff([0.6] * 3, [0.5] * 3)
    assert apart.low == apart.high == apart.diff and apart.p == 0 and apart.hedges_g == math.inf
    assert apart.p == sps.ttest_ind([0.6] * 3, [0.5] * 3, equal_var=False).pvalue  # scipy's limit too


def test_welch_drops_nan_values():
    assert S.welch_diff(A + [nan], B) == S.welch_diff(A, B)


# ----------------------------------------------------------------------------- paired_diff


def test_paired_matches_scipy_ttest_rel():
    a = {1: 0.80, 2: 0.90, 3: 0.85, 4: 0.83}
    b = {4: 0.74, 3: 0.76, 2: 0.79, 1: 0.70}  # key order must not matter
    p = S.paired_diff(a, b)
    xa, xb = [a[s] for s in (1, 2, 3, 4)], [b[s] for s in (1, 2, 3, 4)]
    ref = sps.ttest_rel(xa, xb)
    ci = ref.confidence_interval()
    assert p.n == 4
    assert p.diff == pytest.approx(np.mean(np.subtract(xa, xb)))
    assert (p.low, p.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert p.p == pytest.approx(ref.pvalue, rel=1e-12)
    welch = sps.ttest_ind(xa, xb, equal_var=False).confidence_interval()
    assert p.width_welch == pytest.approx(welch.high - welch.low)
    assert p.width_ratio == pytest.approx((ci.high - ci.low) / (welch.high - welch.low))
    assert p.correlation == pytest.approx(sps.pearsonr(xa, xb).statistic)


def test_pairing_narrows_the_interval_only_when_seeds_correlate():
    a = {s: v for s, v in enumerate([0.70, 0.80, 0.75, 0.90, 0.65])}
    together = {s: v - 0.05 + 0.01 * (-1) ** s for s, v in a.items()}  # follows a seed by seed
    against = {s: 1.5 - v for s, v in a.items()}  # the opposite of a seed by seed
    assert S.paired_diff(a, together).width_ratio < 0.3
    assert S.paired_diff(a, together).correlation > 0.9
    assert S.paired_diff(a, against).width_ratio > 1
    assert S.paired_diff(a, against).correlation == pytest.approx(-1)


def test_paired_needs_every_seed_in_both_groups():
    a = {1: 0.8, 2: 0.9, 3: 0.85}
    assert S.paired_diff(a, {1: 0.7, 2: 0.8}) is None  # seed 3 missing
    assert S.paired_diff(a, {1: 0.7, 2: 0.8, 3: 0.8, 4: 0.8}) is None  # extra seed
    assert S.paired_diff(a, {1: 0.7, 2: 0.8, 3: nan}) is None  # seed 3 has no value
    assert S.paired_diff({}, {}) is None
    one = S.paired_diff({7: 0.8}, {7: 0.7})
    assert one.n == 1 and one.diff == pytest.approx(0.1) and math.isnan(one.low) and math.isnan(one.p)


def test_paired_identical_differences():
    p = S.paired_diff({1: 0.75, 2: 0.5}, {1: 0.5, 2: 0.25})  # exact in binary: both differences 0.25
    assert p.diff == 0.25 and p.sd_diff == 0 and p.half_width == 0 and p.p == 0


# ----------------------------------------------------------------------------- holm


def test_holm_worked_example():
    # Wikipedia's Holm-Bonferroni example: p = 0.01, 0.04, 0.03, 0.005; Holm at 0.05 rejects
    # H1 and H4 only. By hand, sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1:
    # 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06 (the last one is raised
    # to keep the adjusted p-values monotone).
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_1_passes_nan_through_and_ignores_it_in_m():
    out = S.holm([0.5, nan, 0.2, 0.01])
    # m = 3: sorted 0.01, 0.2, 0.5 times 3, 2, 1 -> 0.03, 0.4, 0.5
    assert out[0] == pytest.approx(0.5) and math.isnan(out[1])
    assert out[2:] == pytest.approx([0.4, 0.03])
    assert S.holm([0.6, 0.7]) == [1.0, 1.0]
    assert S.holm([]) == [] and S.holm([0.2]) == [0.2]


def _holm_rejects(ps, alpha):
    """Holm's procedure as stated: walk the sorted p-values, reject while p_(k) <= alpha/(m-k+1)."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    rejected = set()
    for k, i in enumerate(order):
        if ps[i] <= alpha / (len(ps) - k):
            rejected.add(i)
        else:
            break
    return rejected


def test_holm_adjusted_p_is_the_smallest_alpha_at_which_holm_rejects():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ps = list(rng.uniform(0, 0.2, size=rng.integers(1, 7)) ** 2)
        adj = S.holm(ps)
        for alpha in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1):
            assert {i for i, a in enumerate(adj) if a <= alpha} == _holm_rejects(ps, alpha)


# ----------------------------------------------------------------------------- power


@pytest.mark.parametrize("d, n", [(0.2, 394), (0.5, 64), (0.8, 26), (1.0, 17)])
def test_seeds_needed_matches_cohens_table(d, n):
    # Cohen (1988) Table 2.4.1 / G*Power: two-sided two-sample t-test, alpha 0.05, power 0.80
    assert S.seeds_needed(d, 1.0, 1.0) == n
    assert S.seeds_needed(-d * 0.05, 0.05, 0.05) == n  # only |diff| / sd matters
    assert S.t_test_power(d, n) >= 0.80 > S.t_test_power(d, n - 1)  # and it is the smallest


def test_seeds_needed_uses_the_pooled_sd_of_both_groups():
    # sd_a = 0.6, sd_b = 0.8 -> pooled sqrt((0.36 + 0.64)/2) = sqrt(0.5); diff = 0.5 sqrt(0.5) -> d = 0.5
    assert S.seeds_needed(0.5 * math.sqrt(0.5), 0.6, 0.8) == 64


def test_seeds_needed_other_alpha_and_power_and_large_effects():
    # Cohen's table for alpha 0.05 two-sided, power 0.90: d = 0.5 -> 86
    assert S.seeds_needed(0.5, 1, 1, power=0.90) == 86
    assert S.seeds_needed(10.0, 1, 1) == 2  # never below 2 seeds


def test_seeds_needed_says_none_when_it_cannot_be_said():
    assert S.seeds_needed(0.0, 1, 1) is None
    assert S.seeds_needed(0.1, 0, 0) is None
    assert S.seeds_needed(nan, 1, 1) is None and S.seeds_needed(0.1, nan, 1) is None
    assert S.seeds_needed(0.1, 0, 0.2) == S.seeds_needed(0.1, 0.2 / math.sqrt(2), 0.2 / math.sqrt(2))


@pytest.mark.parametrize("n, d", [(10, 1.0), (3, 2.0)])  # n = 3: the degrees of freedom matter
def test_power_against_simulated_t_tests(n, d):
    # simulate the experiment itself: 100 000 pairs of groups of n, true effect d, Student t-test
    rng = np.random.default_rng(1)
    reps = 100_000
    a = rng.standard_normal((reps, n)) + d
    b = rng.standard_normal((reps, n))
    sp = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2)
    t = (a.mean(axis=1) - b.mean(axis=1)) / (sp * math.sqrt(2 / n))
    simulated = np.mean(np.abs(t) > sps.t.ppf(0.975, 2 * n - 2))
    assert S.t_test_power(d, n) == pytest.approx(simulated, abs=0.006)  # MC se <= 0.0016


# ----------------------------------------------------------------------------- verdict


def test_verdict_not_resolved_says_how_many_seeds_would_do():
    a, b = [0.80, 0.85, 0.78], [0.75, 0.79, 0.70]
    d = S.welch_diff(a, b)
    need = S.seeds_needed(d.diff, d.sd_a, d.sd_b)
    ci = sps.ttest_ind(a, b, equal_var=False)
    lo, hi = ci.confidence_interval()
    assert S.verdict("batch", "layer", d) == (
        f"batch vs layer: {100 * d.diff:+.1f} pp [{100 * lo:+.1f}, {100 * hi:+.1f}], p = {ci.pvalue:.2f} "
        f"(n = 3 each): not resolved; about {need} seeds per group would detect a difference this "
        f"size with 80 % power.")
    assert need == 8


def test_verdict_shows_a_difference_that_rounds_to_zero_as_plus_zero():
    """Equal means up to float error (0.61 - 0.61 computed two ways) read +0.0 pp, never -0.0."""
    import dataclasses

    d = dataclasses.replace(S.welch_diff([0.6, 0.61, 0.62], [0.62, 0.61, 0.6]), diff=-1e-17)
    text = S.verdict("batch", "layer", d)
    assert text.startswith("batch vs layer: +0.0 pp [") and "-0.0" not in text


def test_verdict_resolved_names_the_higher_group():
    d = S.welch_diff([0.70, 0.72, 0.71, 0.69], [0.80, 0.82, 0.81, 0.83])
    text = S.verdict("batch", "layer", d)
    assert "resolved: layer higher than batch by 11.0 pp" in text and "not resolved" not in text
    assert f"Hedges' g = {d.hedges_g:+.2f}" in text and "seeds per group" not in text


def test_verdict_uses_the_holm_p_and_can_unresolve():
    d = S.welch_diff([0.70, 0.72, 0.71], [0.74, 0.76, 0.73])
    assert d.resolved and d.p < 0.05
    text = S.verdict("batch", "layer", d, p_adjusted=0.09)
    assert "Holm p = 0.09" in text and "not resolved after the Holm adjustment" in text
    assert "resolved: layer" in S.verdict("batch", "layer", d, p_adjusted=0.03)


def test_verdict_units_follow_the_metric():
    d = S.welch_diff([0.30, 0.35, 0.31], [0.40, 0.37, 0.39])
    text = S.verdict("batch", "layer", d, metric="test_loss")
    assert text.startswith("batch vs layer: -0.067 [") and "pp" not in text
    assert " ms [" in S.verdict("a", "b", d, metric="step_time", scale=1000, unit="ms")


def test_verdict_with_one_seed_says_not_enough_seeds():
    text = S.verdict("batch", "layer", S.welch_diff([0.8], [0.7, 0.72, 0.71]))
    assert text == "batch vs layer: +9.0 pp: not enough seeds (n = 1 and 3); an interval needs at least 2 per group."


def test_verdict_appends_the_paired_result_and_whether_it_narrowed():
    a = {1: 0.80, 2: 0.90, 3: 0.85}
    b = {1: 0.71, 2: 0.80, 3: 0.77}
    d, p = S.welch_diff(list(a.values()), list(b.values())), S.paired_diff(a, b)
    text = S.verdict("batch", "layer", d, paired=p)
    assert f"Paired by seed (n = 3): " in text
    assert f"interval {p.width_ratio:.2f}x the unpaired width (pairing narrowed it), excludes 0." in text


def test_verdict_says_when_pairing_changed_nothing_or_widened():
    d = S.welch_diff([0.8, 0.9, 0.85], [0.7, 0.8, 0.75])

    def paired(ratio):
        return S.PairedDiff(0.1, 0.0, 0.2, 0.04, 3, 0.01, 0.5, 0.2, 0.2 / ratio)

    assert "1.00x the unpaired width (about the same)" in S.verdict("a", "b", d, paired=paired(1.0))
    assert "1.30x the unpaired width (pairing did not narrow it), includes 0." in S.verdict("a", "b", d, paired=paired(1.3))


def test_verdict_zero_spread_says_so():
    text = S.verdict("a", "b", S.welch_diff([0.6] * 3, [0.5] * 3))
    assert "no spread to test against" in text


# ----------------------------------------------------------------------------- import cost


# ----------------------------------------------------------------------------- exactly scipy's and pandas' figures, faster


def _same(x, y) -> bool:
    """Equal to the last bit (NaN equal to NaN, -0.0 apart from 0.0)."""
    return (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))


def test_t_quantile_and_survival_function_are_scipys_to_the_last_bit():
    qs = [0.5, 0.9, 0.95, 0.975, 0.995, 0.999]
    dfs = [1, 2, 3, 9, 9.0, 17.3, 29, 1e3, 1e6, 0.5, nan]
    for q in qs:
        for df in dfs:
            assert _same(S.t_ppf(q, df), float(sps.t.ppf(q, df))), (q, df)
    for x in [0.0, 1e-9, 0.3, 1.7, 2.26, 12.0, 40.0, math.inf, nan]:
        for df in dfs:
            assert _same(S.t_sf(x, df), float(sps.t.sf(x, df))), (x, df)


def test_rows_mean_sd_is_pandas_series_mean_and_std_to_the_last_bit():
    import pandas as pd

    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 7, 8, 9, 10, 16, 33):
        rows = rng.normal(0.8, 0.05, (6, n)) * 10.0 ** rng.integers(-4, 4, (6, 1))
        rows[1, rng.random(n) < 0.4] = nan  # some missing
        rows[2] = nan  # all missing
        rows[3] = rows[3, 0]  # no spread
        means, sds = S.rows_mean_sd(rows.tolist())
        for row, mean, sd in zip(rows.tolist(), means, sds):
            col = pd.Series(row, dtype=float)
            assert _same(mean, float(col.mean())) and _same(sd, float(col.std())), (n, row)


def test_paired_diffs_of_many_pairs_are_each_pairs_paired_diff_and_ttest_rel_p():
    """One ttest_rel call per seed count over every pair gives each pair's own p exactly."""
    rng = np.random.default_rng(3)
    pairs = []
    for n in (1, 2, 3, 5, 10, 10, 10, 12):
        a = dict(enumerate(rng.normal(0.8, 0.02, n)))
        pairs.append((a, {s: v - rng.normal(0.01, 0.01) for s, v in a.items()}))
    pairs.append(({0: 0.5, 1: 0.75, 2: 1.0}, {0: 0.25, 1: 0.5, 2: 0.75}))  # constant differences: p 0, no test
    pairs.append((a, {s: v for s, v in list(a.items())[:-1]}))  # different seeds: no pairing
    together = S.paired_diffs(pairs)
    assert together[-1] is None and together[-2].p == 0.0
    for (a, b), p in zip(pairs, together):
        one = S.paired_diff(a, b)
        if p is None:
            assert one is None
            continue
        assert all(_same(getattr(p, f), getattr(one, f)) for f in ("diff", "low", "high", "p", "sd_diff", "correlation",
                                                                     "width_paired", "width_welch")) and p.n == one.n
        if p.n >= 2 and p.sd_diff > 0:
            seeds = sorted(a, key=repr)
            ref = sps.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue
            assert _same(p.p, float(ref))


def test_importing_stats_loads_neither_scipy_nor_tensorflow():
    code = ("import sys, normbench.analysis.stats; "
            "print(sorted(m for m in ('scipy', 'tensorflow', 'keras', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
