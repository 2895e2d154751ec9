"""Simulated studies with known truth: what the intervals and tests promise, checked by
counting. Each test draws about 2,000 studies from a seeded generator (the same numbers on
every run) and compares a rate with its nominal value within a binomial tolerance of
three standard errors, sqrt(p (1 - p) / N), or bounds it from above.

- the interval of an accuracy's mean (stats.bounded_mean_ci) covers the true mean 95 % of
  the time, near 1 too, where the plain t interval does not (checked as well, so the test
  can tell the two apart);
- Welch's difference interval, intersected with [-1, 1], covers the true difference;
- all-pairs Holm (compare --family all-pairs: stats.family_tests) keeps the
  family-wise error at or below 0.05 with 3-5 equal groups;
- TOST (compare --margin) calls "equivalent" at most 5 % of the time when the true
  difference is exactly the margin."""

from __future__ import annotations

import math
import numpy as np
import pytest

from normbench.analysis import stats

N = 2000


def tolerance(p: float, n: int = N) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


def accuracies(rng, mu: float, n: int, n_test: int = 10_000) -> np.ndarray:
    """n runs' test accuracies with true mean mu: each run's true accuracy from a Beta with
    mean mu (seed-to-seed spread: sd 0.03, less near 1 so that the Beta stays unimodal),
    then its test set's binomial noise."""
    k = max(3 / (1 - mu), mu * (1 - mu) / 0.03**2 - 1)
    p = rng.beta(mu * k, (1 - mu) * k, size=n)
    return rng.binomial(n_test, p) / n_test


def coverage(rng, interval, mus, ns) -> float:
    hits = 0
    for _ in range(N):
        mu, n = rng.choice(mus), int(rng.choice(ns))
        ci = interval(accuracies(rng, mu, n))
        hits += ci.low <= mu <= ci.high
    return hits / N


def test_the_bounded_interval_of_an_accuracy_covers_95_percent_across_the_range():
    rng = np.random.default_rng(2029)
    cov = coverage(rng, lambda x: stats.bounded_mean_ci(x, (0.0, 1.0)), [0.5, 0.7, 0.9, 0.97, 0.99, 0.995], range(3, 11))
    assert abs(cov - 0.95) <= tolerance(0.95), cov


def test_near_1_the_bounded_interval_covers_and_the_t_interval_does_not():
    """The reason compare does not use the t interval for accuracies: near 1 the runs'
    spread is skewed and the symmetric t interval misses the mean too often."""
    near = [0.97, 0.99, 0.995]
    cov = coverage(np.random.default_rng(7), lambda x: stats.bounded_mean_ci(x, (0.0, 1.0)), near, range(3, 11))
    cov_t = coverage(np.random.default_rng(7), stats.mean_ci, near, range(3, 11))
    assert abs(cov - 0.95) <= tolerance(0.95), cov
    assert cov_t < 0.95 - tolerance(0.95), cov_t


def test_the_bounded_difference_interval_covers_the_true_difference():
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(N):
        mu_a, mu_b = rng.uniform(0.55, 0.9, size=2)
        na, nb = rng.integers(3, 11, size=2)
        d = stats.bounded(stats.welch_diff(accuracies(rng, mu_a, na), accuracies(rng, mu_b, nb)), (-1.0, 1.0))
        assert -1 <= d.low <= d.high <= 1
        hits += d.low <= mu_a - mu_b <= d.high
    assert abs(hits / N - 0.95) <= tolerance(0.95), hits / N


@pytest.mark.parametrize("k", [3, 4, 5])
def test_all_pairs_holm_keeps_the_family_wise_error_at_or_below_5_percent(k):
    """All groups equal: any call of a difference is a false positive. The groups are
    ranked best first by their means, as compare ranks them (stats.family_tests is what
    results.rank_section and sweep --seeds-until resolved call; test_compare_equivalence
    checks that compare's verdicts are its calls)."""
    rng = np.random.default_rng(100 + k)
    false = 0
    for _ in range(N):
        n = int(rng.integers(3, 11))
        groups = sorted((rng.normal(0.0, 1.0, size=n) for _ in range(k)), key=lambda v: -v.mean())
        tests = stats.family_tests(groups, "all-pairs")
        assert len(tests) == k * (k - 1) // 2
        false += any(t.call in ("higher", "lower") for t in tests)
    assert false / N <= 0.05, false / N


@pytest.mark.parametrize("truth", [+1, -1])
def test_tost_calls_equivalence_at_most_5_percent_of_the_time_at_the_margin(truth):
    """The true difference is exactly +margin (or -margin): "equivalent" is a false call."""
    rng = np.random.default_rng(300 + truth)
    margin, false = 0.5, 0
    for _ in range(N):
        n = int(rng.integers(3, 11))
        sd = rng.uniform(0.05, 0.5)  # from spreads that make equivalence easy to ones that make it rare
        a = rng.normal(truth * margin, sd, size=n)
        b = rng.normal(0.0, sd, size=n)
        false += stats.call(stats.welch_diff(a, b), None, stats.tost_p(stats.welch_diff(a, b), margin)) == "equivalent"
    assert false / N <= 0.05, false / N


def test_the_benchmark_script_prints_its_tables(tmp_path, capsys):
    """benchmarks/stats_simulation.py (the rates in benchmarks/RESULTS.md), at 30 studies."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("stats_simulation", REPO / "benchmarks" / "stats_simulation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "sim.txt"
    mod.main(["--studies", "30", "--sections", "2,3", "--out", str(out)])
    text = out.read_text()
    assert text.startswith("30 simulated studies per row (seeded)")
    assert "2. family-wise error" in text and "3. TOST's type-I error" in text and "1. coverage" not in text
    assert len([l for l in text.splitlines() if l.strip().startswith(("3 ", "4 ", "5 "))]) == 6
