"""Error rates of compare's statistics on simulated studies with known truth (issue 29).

    python benchmarks/stats_simulation.py [--studies 10000] [--out benchmarks/results/stats_simulation.txt]

Prints (and writes) four tables, each rate over --studies simulated studies from a seeded
generator (the same numbers on every run), with its binomial standard error:
1. coverage of the 95 % interval of an accuracy's mean: the logit-scale interval compare
   uses (stats.bounded_mean_ci) against the plain t interval (stats.mean_ci), by where the
   true mean lies and by seeds per group;
2. family-wise error with every group equal (any "higher"/"lower" is false), Holm over
   each group against the best (compare's default, the best chosen from the same data)
   and over all pairs (--family all-pairs), at 3-5 groups;
3. TOST's type-I error: "equivalent" called when the true difference is the margin;
4. the same for sweep --seeds-until resolved's rule (alpha / rounds per round), rounds of
   2..10 seeds, all groups equal: how often it stops on a false difference.
The seeded tests in tests/test_stats_simulation.py check the same promises at 2,000 studies.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from normbench.analysis import stats  # noqa: E402


def accuracies(rng, mu, n, n_test=10_000):
    k = max(3 / (1 - mu), mu * (1 - mu) / 0.03**2 - 1)
    return rng.binomial(n_test, rng.beta(mu * k, (1 - mu) * k, size=n)) / n_test


def rate(hits, n):
    p = hits / n
    return f"{p:.4f} ± {math.sqrt(p * (1 - p) / n):.4f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=10_000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--sections", default="1,2,3,4", help="which tables, e.g. 4")
    a = ap.parse_args(argv)
    N, lines = a.studies, []
    out = lines.append
    want = {int(x) for x in a.sections.split(",")}
    out(f"{N} simulated studies per row (seeded); rate ± binomial standard error")
    out("")
    if 1 in want:
        table_1(N, out)
    if 2 in want:
        table_2(N, out)
    if 3 in want:
        table_3(N, out)
    if 4 in want:
        table_4(N, out)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if a.out:
        Path(a.out).write_text(text)


def table_1(N, out):
    out("1. coverage of the 95 % interval of an accuracy's mean (seed-to-seed sd 0.03, less near 1; 10,000 test examples)")
    out(f"{'true mean':>10} {'seeds':>6} {'logit (compare)':>18} {'t interval':>18}")
    for mu in (0.5, 0.9, 0.97, 0.99, 0.995):
        for n in (3, 5, 10):
            rng = np.random.default_rng(int(mu * 1000) + n)
            hit_l = hit_t = 0
            for _ in range(N):
                x = accuracies(rng, mu, n)
                b, t = stats.bounded_mean_ci(x, (0.0, 1.0)), stats.mean_ci(x)
                hit_l += b.low <= mu <= b.high
                hit_t += t.low <= mu <= t.high
            out(f"{mu:>10} {n:>6} {rate(hit_l, N):>18} {rate(hit_t, N):>18}")
    out("")


def table_2(N, out):
    out("2. family-wise error, all groups equal (normal values), Holm over the family")
    out(f"{'groups':>6} {'seeds':>6} {'vs-best':>18} {'all-pairs':>18}")
    for k in (3, 4, 5):
        for lo, hi in ((3, 10), (7, 10)):
            rng = np.random.default_rng(100 * k + lo)
            fw = {"vs-best": 0, "all-pairs": 0}
            for _ in range(N):
                n = int(rng.integers(lo, hi + 1))
                groups = sorted((rng.normal(0, 1, n) for _ in range(k)), key=lambda v: -v.mean())
                for fam in fw:
                    fw[fam] += any(t.call in ("higher", "lower") for t in stats.family_tests(groups, fam))
            out(f"{k:>6} {f'{lo}-{hi}':>6} {rate(fw['vs-best'], N):>18} {rate(fw['all-pairs'], N):>18}")
    out("")


def table_3(N, out):
    out("3. TOST's type-I error: true difference = the margin (0.5 sd units on average), 3-10 seeds per group")
    for truth in (+1, -1):
        rng = np.random.default_rng(300 + truth)
        false = 0
        for _ in range(N):
            n = int(rng.integers(3, 11))
            sd = rng.uniform(0.05, 0.5)
            d = stats.welch_diff(rng.normal(truth * 0.5, sd, n), rng.normal(0, sd, n))
            false += stats.call(d, None, stats.tost_p(d, 0.5)) == "equivalent"
        out(f"  true difference {truth * 0.5:+.1f}, margin 0.5: equivalent called {rate(false, N)}")
    out("")


def table_4(N, out):
    out("4. sweep --seeds-until resolved, vs-best, all groups equal, rounds of 2..10 seeds (9 looks): how often it "
        "stops on a false difference")
    for k in (2, 3):
        rng = np.random.default_rng(400 + k)
        stop = {"alpha/9 per round (the rule)": 0, "alpha per round (no correction)": 0}
        for _ in range(N):
            full = [rng.normal(0, 1, 10) for _ in range(k)]
            done = dict.fromkeys(stop, False)
            for n in range(2, 11):
                vals = sorted((g[:n] for g in full), key=lambda v: -v.mean())
                for rule, level in zip(stop, (1 - 0.05 / 9, 0.95)):
                    if not done[rule] and all(t.call != "not resolved"
                                              for t in stats.family_tests(vals, "vs-best", None, level)):
                        done[rule] = True
            for rule in stop:
                stop[rule] += done[rule]
        out(f"  {k} groups: " + "; ".join(f"{rule}: {rate(v, N)}" for rule, v in stop.items()))
    out("")


if __name__ == "__main__":
    main()
