"""Statistics for comparing groups of runs: intervals, effect sizes, paired seeds, Holm,
seeds needed, and a verdict in words.

Pure functions over sequences of numbers (lists, tuples, NumPy arrays). NumPy and SciPy
are imported inside functions, so importing this module stays cheap, and nothing here
imports TensorFlow or Keras. SciPy computes every distribution and test where it has the
function; the formulas are written out in each docstring so a reader can check them.

Conventions, everywhere in this module:
- ``level`` is the two-sided confidence level (0.95 -> 95 % interval); ``alpha = 1 - level``.
- ``s`` is the sample standard deviation (ddof = 1), as in the ``compare`` table.
- NaN values are dropped before anything is computed (as pandas does for the table's mean
  and std), so ``n`` counts the finite-or-infinite values actually used.
- Fewer than two values on a side gives NaN bounds and p (never an exception): one seed
  has no spread to measure.
- A side whose values are all identical has s = 0 exactly (not a rounding residue).
"""

from __future__ import annotations

import math
import dataclasses
import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

from normbench.core.metrics import FAMILIES, LEVEL, unit_of

NAN = math.nan


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Interval:
    """Mean of one group with its t-based confidence interval."""

    mean: float
    low: float
    high: float
    half_width: float
    n: int
    sd: float  # sample std, ddof = 1 (NaN for n < 2)
    level: float = LEVEL


@dataclass(frozen=True)
class Diff:
    """mean(a) - mean(b) with Welch's interval and p-value, and Hedges' g."""

    diff: float
    low: float
    high: float
    p: float  # Welch two-sided p-value
    df: float  # Welch-Satterthwaite degrees of freedom
    hedges_g: float
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def swapped(self) -> "Diff":
        """The same comparison as mean(b) - mean(a): what welch_diff(b, a) returns, to
        the last bit (every step of it is symmetric in a and b or flips sign exactly)."""
        return Diff(-self.diff, -self.high, -self.low, self.p, self.df, -self.hedges_g, self.n_b, self.n_a,
                    self.mean_b, self.mean_a, self.sd_b, self.sd_a, self.level)

    @property
    def resolved(self) -> bool:
        """The interval excludes 0 (equivalently p < 1 - level)."""
        return (not math.isnan(self.low)) and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class PairedDiff:
    """Mean of the per-seed differences a[seed] - b[seed] with its t interval."""

    diff: float
    low: float
    high: float
    p: float  # paired two-sided p-value (scipy.stats.ttest_rel)
    n: int  # number of seeds (pairs)
    sd_diff: float  # sample std of the per-seed differences
    correlation: float  # Pearson r of a and b across seeds (> 0: pairing helps)
    width_paired: float  # high - low of the paired interval
    width_welch: float  # high - low of the unpaired (Welch) interval on the same values
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        return self.width_paired / 2

    def swapped(self) -> "PairedDiff":
        """The same comparison as b[seed] - a[seed] (paired_diff with the sides swapped)."""
        return dataclasses.replace(self, diff=-self.diff, low=-self.high, high=-self.low)

    @property
    def width_ratio(self) -> float:
        """width_paired / width_welch: < 1 means pairing by seed narrowed the interval."""
        if math.isnan(self.width_paired) or math.isnan(self.width_welch) or self.width_welch == 0:
            return NAN
        return self.width_paired / self.width_welch

    @property
    def resolved(self) -> bool:
        return (not math.isnan(self.low)) and (self.low > 0 or self.high < 0)


# ----------------------------------------------------------------------------- helpers


def _check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")


def _values(values) -> "numpy.ndarray":  # noqa: F821
    """1-D float array with NaNs dropped."""
    import numpy as np

    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


@functools.lru_cache(maxsize=4096)
def t_ppf(q: float, df: float) -> float:
    """Student t's quantile: what scipy.stats.t.ppf(q, df) returns, to the last bit (it is
    scipy.special.stdtrit(df, q) behind the distribution's argument handling, which costs
    ~50x the quantile itself; a test checks the equality). Cached: compare asks for
    t_{0.975, n - 1} once per group, and groups share n."""
    from scipy import special

    return float(special.stdtrit(df, q))


def t_sf(x: float, df: float) -> float:
    """Student t's survival function: scipy.stats.t.sf(x, df) to the last bit
    (scipy.special.stdtr(df, -x); a test checks it)."""
    from scipy import special

    return float(special.stdtr(df, -x))


def _sd(arr) -> float:
    """Sample std (ddof = 1); exactly 0 when every value is identical; NaN for n < 2."""
    import numpy as np

    if arr.size < 2:
        return NAN
    if np.all(arr == arr[0]):
        return 0.0
    return float(np.std(arr, ddof=1))


# ----------------------------------------------------------------------------- one group


def rows_mean_sd(rows) -> tuple[list[float], list[float]]:
    """Mean and sample std (ddof = 1) of each row of numbers, NaN skipped: what pandas'
    Series(row).mean() and .std() return, to the last bit (the same operations in the same
    order as pandas' nanops: NaN set to 0, summed, divided by the count; the std from the
    squares about that mean; a test checks it), without a Series per row. Rows of one
    length; a row with no value has mean NaN, one with fewer than two has std NaN."""
    import numpy as np

    v = np.array(rows, dtype=float).reshape(len(rows), -1)
    mask = np.isnan(v)
    z = np.where(mask, 0.0, v)
    count = (v.shape[1] - mask.sum(axis=1)).astype(float)
    sums = z.sum(axis=1)
    with np.errstate(all="ignore"):
        mean = np.where(count > 0, sums / count, NAN)
        enough = count > 1
        avg = sums / np.where(enough, count, NAN)
        sqr = (avg[:, None] - z) ** 2
        sqr[mask] = 0
        sd = np.sqrt(sqr.sum(axis=1) / np.where(enough, count - 1, NAN))
    return [float(x) for x in mean], [float(x) for x in sd]


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean and t-based confidence interval of the mean.

    half_width = t_{(1 + level)/2, n - 1} * s / sqrt(n), interval = mean ± half_width,
    with t the Student t quantile (scipy.stats.t.ppf, as t_ppf). n = 1 gives NaN bounds and
    half_width; n = 0 gives NaN everywhere. Zero spread gives half_width 0.
    """
    _check_level(level)
    arr = _values(values)
    n = int(arr.size)
    if n == 0:
        return Interval(NAN, NAN, NAN, NAN, 0, NAN, level)
    mean = float(arr.mean())
    sd = _sd(arr)
    if n < 2:
        return Interval(mean, NAN, NAN, NAN, n, NAN, level)
    half = t_ppf((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, half, n, sd, level)


def precise_enough(values: Sequence[float], half_width: float, level: float = LEVEL) -> bool:
    """True when the group's confidence interval half-width is at most ``half_width``.

    The stopping rule of a sweep that adds seeds until every group is precise: it looks at
    the spread only, never at a p-value (stopping when p < 0.05 inflates false positives).
    Fewer than two values is never precise enough (no spread measured yet).
    """
    if not (isinstance(half_width, (int, float)) and half_width > 0 and math.isfinite(half_width)):
        raise ValueError(f"half_width must be a positive finite number, got {half_width!r}")
    ci = mean_ci(values, level)
    return ci.n >= 2 and ci.half_width <= half_width


# ----------------------------------------------------------------------------- two groups


def hedges_j(df: float) -> float:
    """Hedges' small-sample correction, exact gamma form (Hedges 1981):

    J(df) = Gamma(df/2) / (sqrt(df/2) * Gamma((df - 1)/2)),  df = n_a + n_b - 2.

    J(2) = 1/sqrt(pi), J(4) = sqrt(2/pi); the common approximation 1 - 3/(4 df - 1)
    is within 0.3 % of it for df >= 4. J(1) = 0 (Gamma(0) is infinite); NaN for df < 1.
    """
    from scipy.special import gammaln

    if not df >= 1:
        return NAN
    if df == 1:
        return 0.0
    return math.exp(gammaln(df / 2) - gammaln((df - 1) / 2)) / math.sqrt(df / 2)


def welch_diff(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Diff:
    """mean(a) - mean(b) with Welch's (unequal-variance) interval and p, and Hedges' g.

    se^2 = s_a^2/n_a + s_b^2/n_b
    df   = se^4 / ((s_a^2/n_a)^2/(n_a - 1) + (s_b^2/n_b)^2/(n_b - 1))   (Welch-Satterthwaite)
    interval = diff ± t_{(1 + level)/2, df} * se
    p    = 2 * sf_t(|diff| / se, df), Student t's survival function: exactly what
           scipy.stats.ttest_ind(a, b, equal_var=False) computes (a test checks it), without
           its per-call argument handling (which dominated compare on thousands of groups)
    g    = J(n_a + n_b - 2) * diff / s_pooled,
           s_pooled^2 = ((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2),
           J the exact gamma-form correction (see hedges_j).

    Fewer than two values on either side: every statistic but the means and diff is NaN.
    Zero spread on both sides: the interval is the point diff, p = 0 and g = ±inf when the
    means differ (the limits scipy also returns), p and g NaN when they are equal.
    """
    _check_level(level)
    xa, xb = _values(a), _values(b)
    na, nb = int(xa.size), int(xb.size)
    ma = float(xa.mean()) if na else NAN
    mb = float(xb.mean()) if nb else NAN
    sa, sb = _sd(xa), _sd(xb)
    diff = ma - mb
    if na < 2 or nb < 2:
        return Diff(diff, NAN, NAN, NAN, NAN, NAN, na, nb, ma, mb, sa, sb, level)
    va, vb = sa**2 / na, sb**2 / nb
    se = math.sqrt(va + vb)
    pooled = math.sqrt(((na - 1) * sa**2 + (nb - 1) * sb**2) / (na + nb - 2))
    if se == 0:
        same = diff == 0
        return Diff(diff, diff, diff, NAN if same else 0.0, NAN, NAN if same else math.copysign(math.inf, diff),
                    na, nb, ma, mb, sa, sb, level)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = t_ppf((1 + level) / 2, df) * se
    p = min(1.0, 2 * t_sf(abs(diff) / se, df))
    g = hedges_j(na + nb - 2) * diff / pooled
    return Diff(diff, diff - half, diff + half, p, df, g, na, nb, ma, mb, sa, sb, level)


def paired_diff(a_by_seed: Mapping, b_by_seed: Mapping, level: float = LEVEL) -> PairedDiff | None:
    """Paired difference over seeds, when the two groups ran exactly the same seeds.

    Returns None unless both mappings have the same (non-empty) set of seeds with a
    non-NaN value for each. With d_i = a[seed_i] - b[seed_i]:
    diff = mean(d), interval = diff ± t_{(1 + level)/2, n - 1} * s_d / sqrt(n),
    p = scipy.stats.ttest_rel(a, b).pvalue (two-sided). width_welch is the width of
    welch_diff on the same values, so width_paired / width_welch (width_ratio) says
    whether pairing by seed narrowed the interval (< 1) or not. The pairing helps exactly
    when the two groups' results are positively correlated across seeds (correlation > 0),
    because var(d) = s_a^2 + s_b^2 - 2 r s_a s_b.
    n = 1 gives NaN bounds; identical differences give a zero-width interval.
    """
    return paired_diffs([(a_by_seed, b_by_seed)], level)[0]


def paired_diffs(pairs, level: float = LEVEL) -> list[PairedDiff | None]:
    """paired_diff of each (a_by_seed, b_by_seed) in `pairs`, in order. scipy's ttest_rel is
    called once per number of seeds for all the pairs at once: row by row it is the same
    arithmetic, so each p is the one-pair call's to the last bit (a test checks it), without
    its per-call argument handling (which dominated compare's statistics on thousands of groups)."""
    _check_level(level)
    import warnings

    import numpy as np
    from scipy import stats

    out, tests = [], {}  # tests: n -> [(index in out, xa, xb)] of the pairs whose p needs ttest_rel
    for a_by_seed, b_by_seed in pairs:
        one = _paired(a_by_seed, b_by_seed, level)
        if one is not None and one[1] is not None:
            xa, xb = one[1]
            tests.setdefault(xa.size, []).append((len(out), xa, xb))
        out.append(one and one[0])
    for rows in tests.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ps = stats.ttest_rel(np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), axis=1).pvalue
        for (i, _, _), p in zip(rows, ps):
            out[i] = dataclasses.replace(out[i], p=float(p))
    return out


def _paired(a_by_seed: Mapping, b_by_seed: Mapping, level: float):
    """paired_diff without its p where that needs ttest_rel: None (no pairing), or
    (PairedDiff, None) when it is complete, or (PairedDiff with p NaN, (xa, xb)) when p is
    ttest_rel(xa, xb)'s."""
    import numpy as np

    def finite_keys(m):
        return {k for k, v in m.items() if v is not None and not math.isnan(float(v))}

    seeds = finite_keys(a_by_seed)
    if not seeds or seeds != finite_keys(b_by_seed) or len(seeds) != len(a_by_seed) or len(seeds) != len(b_by_seed):
        return None
    order = sorted(seeds, key=repr)
    xa = np.array([float(a_by_seed[s]) for s in order])
    xb = np.array([float(b_by_seed[s]) for s in order])
    d = xa - xb
    n = int(d.size)
    ci = mean_ci(d, level)
    width_welch = welch_diff(xa, xb, level)
    ww = width_welch.high - width_welch.low
    if n < 2:
        return PairedDiff(ci.mean, NAN, NAN, NAN, n, NAN, NAN, NAN, ww, level), None
    sd_d = ci.sd
    test = None
    if sd_d == 0:
        p = NAN if ci.mean == 0 else 0.0
    else:
        p, test = NAN, (xa, xb)
    if _sd(xa) and _sd(xb):  # both non-zero and not NaN
        r = float(np.corrcoef(xa, xb)[0, 1])
    else:
        r = NAN
    return PairedDiff(ci.mean, ci.low, ci.high, p, n, sd_d, r, ci.high - ci.low, ww, level), test


# ----------------------------------------------------------------------------- many comparisons


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    With the m non-NaN p-values sorted ascending p_(1) <= ... <= p_(m):
    adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)).
    Rejecting where adj <= alpha is exactly Holm's procedure at level alpha (family-wise
    error <= alpha). NaN p-values are passed through as NaN and do not count in m.
    """
    ps = [float(p) for p in pvalues]
    idx = [i for i, p in enumerate(ps) if not math.isnan(p)]
    m = len(idx)
    out = [NAN] * len(ps)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: ps[i])):  # rank = j - 1
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


# ----------------------------------------------------------------------------- power


def t_test_power(d: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample Student t-test, n per group, effect size d.

    df = 2n - 2, noncentrality delta = d * sqrt(n / 2), critical value c = t_{1 - alpha/2, df};
    power = P(T > c) + P(T < -c) with T ~ noncentral t(df, delta) (scipy.stats.nct).
    """
    from scipy import stats

    df = 2 * n - 2
    delta = abs(d) * math.sqrt(n / 2)
    c = t_ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(c, df, delta) + stats.nct.cdf(-c, df, delta))


def seeds_needed(diff: float, sd_a: float, sd_b: float, alpha: float = 0.05, power: float = 0.80) -> int | None:
    """Seeds per group for a two-sided two-sample t-test to detect ``diff`` with ``power``.

    The effect size is d = |diff| / s, s = sqrt((sd_a^2 + sd_b^2) / 2) (the pooled SD of
    two equal-size groups); the answer is the smallest n >= 2 with t_test_power(d, n, alpha)
    >= power (exact, noncentral t). Cohen's textbook values (alpha 0.05, power 0.80):
    d = 0.2 -> 394, 0.5 -> 64, 0.8 -> 26, 1.0 -> 17.
    None when it cannot be said: diff is 0 or NaN, or the spread is 0 or NaN on both sides
    (an infinite effect size), or any input is NaN, or the effect is so small (float noise
    in two equal means) that more than MAX_SEEDS would be needed.
    """
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be strictly between 0 and 1, got {alpha!r}, {power!r}")
    vals = (diff, sd_a, sd_b)
    if any(v is None or math.isnan(v) or math.isinf(v) for v in vals) or diff == 0:
        return None
    s = math.sqrt((sd_a**2 + sd_b**2) / 2)
    if s == 0:
        return None
    d = abs(diff) / s
    if 2 * (_z_sum(alpha, power) / d) ** 2 > MAX_SEEDS:  # a float-noise difference (1e-17): no count of seeds is meaningful
        return None
    return _seeds_for(d, alpha, power)


MAX_SEEDS = 10**7  # seeds_needed answers None beyond this (the normal approximation's count)


@functools.lru_cache(maxsize=64)
def _z_sum(alpha: float, power: float) -> float:
    """z_(1-alpha/2) + z_power, the normal approximation's numerator."""
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


@functools.lru_cache(maxsize=4096)
def _seeds_for(d: float, alpha: float, power: float) -> int:
    """seeds_needed for effect size d (cached: compare's table and its verdict ask for each
    comparison's figure, once per side)."""
    if t_test_power(d, 2, alpha) >= power:
        return 2
    # normal approximation as a bracket, then bisection on the exact (monotone) power
    hi = max(3, math.ceil(2 * (_z_sum(alpha, power) / d) ** 2) + 2)
    while t_test_power(d, hi, alpha) < power:
        hi *= 2
    lo = 2  # power(lo) < target <= power(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if t_test_power(d, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


# ----------------------------------------------------------------------------- words


def _decimals(half_width: float, least: int, default: int) -> int:
    """Decimals that show the interval's half-width to two significant digits (at least
    ``least``); ``default`` when there is no half-width."""
    if not (math.isfinite(half_width) and half_width > 0):
        return default
    return max(least, 1 - math.floor(math.log10(half_width)))


def _p_text(p: float, label: str = "p") -> str:
    """'p = 0.28', 'p = 0.004', 'p < 0.001', 'p = n/a'."""
    if math.isnan(p):
        return f"{label} = n/a"
    if p < 0.001:
        return f"{label} < 0.001"
    return f"{label} = {p:.3f}" if p < 0.01 else f"{label} = {p:.2f}"


def fixed(x: float, digits: int, sign: str = "") -> str:
    """x to `digits` decimals (`sign` "+": always signed); a value that rounds to zero
    reads 0.0 (+0.0), never -0.0. Verdicts and compare's tables both write numbers so."""
    text = f"{x:{sign}.{digits}f}"
    return f"{0.0:{sign}.{digits}f}" if float(text) == 0 else text


def verdict(name_a: str, name_b: str, diff: Diff, paired: PairedDiff | None = None, *,
            metric: str = "test_accuracy", scale: float | None = None, unit: str | None = None,
            p_adjusted: float | None = None, power: float = 0.80, margin: float | None = None,
            p_tost: float | None = None) -> str:
    """One line in words about ``diff`` (a - b), for example

    ``batch vs layer: +4.6 pp [-2.1, +11.3], p = 0.28 (n = 3 each): not resolved; about
    9 seeds per group would detect a difference this size with 80 % power.``

    Resolved means the interval excludes 0 and, when ``p_adjusted`` (Holm) is given, the
    adjusted p is below 1 - level too: an interval that excludes 0 only before the
    adjustment is reported as not resolved after it. ``scale``/``unit`` default from the
    metric (metrics.unit_of). The seeds-needed figure is seeds_needed on the observed difference
    and spreads at alpha = 1 - level (unadjusted for multiple comparisons). A paired result, when given, is appended with its
    interval and how its width compares with the unpaired one.

    With a ``margin`` (in the metric's units), the verdict is exactly one of call()'s:
    higher / lower (resolved, as above), "equivalent within ±margin" (two one-sided tests,
    tost_p, or ``p_tost`` when given, e.g. Holm-adjusted, below alpha), or not resolved,
    which then says that neither a difference nor equivalence is shown. Without a margin
    a verdict never says there is no difference: an interval that includes 0 is "not resolved".
    The parts: the numbers (_Words), the call in words (_no_spread_text, _equivalent_text,
    the resolved line, _unresolved_text), the paired result (_paired_text).
    """
    w = _Words.of(diff, metric, scale, unit)
    head = f"{name_a} vs {name_b}: "
    n_text = f"n = {diff.n_a} each" if diff.n_a == diff.n_b else f"n = {diff.n_a} and {diff.n_b}"
    if diff.n_a < 2 or diff.n_b < 2:
        shown = "no runs" if math.isnan(diff.diff) else f"{w.num(diff.diff)}{w.u}"
        return f"{head}{shown}: not enough seeds ({n_text}); an interval needs at least 2 per group."
    holm = p_adjusted is not None and not math.isnan(p_adjusted)
    p_text = _p_text(p_adjusted if holm else diff.p, "Holm p" if holm else "p")
    line = f"{head}{w.num(diff.diff)}{w.u} [{w.num(diff.low)}, {w.num(diff.high)}], {p_text} ({n_text}): "
    if margin is not None and p_tost is None:
        p_tost = tost_p(diff, margin)
    verdict_call = call(diff, p_adjusted, p_tost if margin is not None else None)
    tost_text = _p_text(p_tost, "Holm TOST p" if holm else "TOST p") if margin is not None else ""
    m_text = ""  # the margin as the verdict writes it
    if margin is not None:
        m_text = f"±{fixed(margin * w.scale, max(w.dec, 1 if w.unit == 'pp' else w.dec), '')}{w.u}"
    if diff.sd_a == 0 and diff.sd_b == 0:
        line += _no_spread_text(diff, verdict_call == "equivalent", m_text)
    elif verdict_call == "equivalent":
        line += _equivalent_text(diff, w, m_text, tost_text)
    elif diff.resolved and not (holm and not p_adjusted < 1 - diff.level):
        higher, lower = (name_a, name_b) if diff.diff > 0 else (name_b, name_a)
        amount = f"{abs(diff.diff) * w.scale:.{w.dec}f}{w.u}"
        line += f"resolved: {higher} higher than {lower} by {amount} (Hedges' g = {diff.hedges_g:+.2f})."
    else:
        line += _unresolved_text(diff, m_text, tost_text, power)
    return line + _paired_text(paired, w.num, w.u, f"{diff.level * 100:g} %")


@dataclass(frozen=True)
class _Words:
    """How a verdict writes a difference: x `scale` in `unit`, to `dec` decimals."""
    scale: float
    unit: str
    dec: int

    @classmethod
    def of(cls, diff: Diff, metric: str, scale: float | None, unit: str | None) -> "_Words":
        s0, u0 = unit_of(metric)
        scale = s0 if scale is None else scale
        unit = u0 if unit is None else unit
        pp = unit == "pp"
        return cls(scale, unit, _decimals(diff.half_width * scale, 1 if pp else 0, 1 if pp else 3))

    @property
    def u(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def num(self, x: float) -> str:
        return fixed(x * self.scale, self.dec, "+")


def _no_spread_text(diff: Diff, equivalent: bool, m_text: str) -> str:
    """The verdict of two groups whose seeds all gave one value each: no test, but a
    difference inside the margin is equivalent."""
    if diff.diff == 0:
        text = "every seed gave the same value in both groups, so there is no spread to test against"
    else:
        text = "every seed gave the same value within each group, so there is no spread to test against"
    if equivalent:
        return text + f"; equivalent within {m_text} (a difference without spread, inside the margin)."
    return text + ("; not resolved." if diff.diff == 0 else ".")


def _equivalent_text(diff: Diff, w: _Words, m_text: str, tost_text: str) -> str:
    """Equivalence: the (1 - 2 alpha) interval lies inside the margin."""
    alpha = 1 - diff.level
    se = math.sqrt(diff.sd_a**2 / diff.n_a + diff.sd_b**2 / diff.n_b)
    half = t_ppf(1 - alpha, diff.df) * se
    return (f"equivalent within {m_text}: the {(1 - 2 * alpha) * 100:g} % interval "
            f"[{w.num(diff.diff - half)}, {w.num(diff.diff + half)}] lies inside it ({tost_text}), "
            f"so a difference larger than the margin is ruled out.")


def _unresolved_text(diff: Diff, m_text: str, tost_text: str, power: float) -> str:
    """Not resolved (or not after Holm; nor equivalent, with a margin), and the seeds per
    group a difference this size would need."""
    text = "not resolved after the Holm adjustment" if diff.resolved else "not resolved"
    if m_text:
        text += f" (nor equivalent within {m_text}: {tost_text})"
    need = seeds_needed(diff.diff, diff.sd_a, diff.sd_b, alpha=1 - diff.level, power=power)
    pw = f"{power * 100:g} %"
    if need is None:
        return text + "; the two means are equal, so no number of seeds is predicted to detect a difference."
    if need <= min(diff.n_a, diff.n_b):
        return text + (f"; {need} seeds per group would detect a difference this size with {pw} power "
                       f"before any adjustment for multiple comparisons.")
    return text + f"; about {need} seeds per group would detect a difference this size with {pw} power."


def _paired_text(paired: PairedDiff | None, num, u: str, pct: str) -> str:
    if paired is None:
        return ""
    if paired.n < 2 or math.isnan(paired.low):
        return f" Paired by seed (n = {paired.n}): {num(paired.diff)}{u}, too few seeds for an interval."
    text = (f" Paired by seed (n = {paired.n}): {num(paired.diff)}{u} [{num(paired.low)}, {num(paired.high)}], "
            f"{_p_text(paired.p)}, ")
    ratio = paired.width_ratio
    if math.isnan(ratio):
        text += "interval width not comparable with the unpaired one"
    elif 0.95 <= ratio <= 1.05:
        text += f"interval {ratio:.2f}x the unpaired width (about the same)"
    elif ratio < 1:
        text += f"interval {ratio:.2f}x the unpaired width (pairing narrowed it)"
    else:
        text += f"interval {ratio:.2f}x the unpaired width (pairing did not narrow it)"
    text += ", excludes 0." if paired.resolved else ", includes 0."
    return text


# ----------------------------------------------------------------------------- bounded metrics


def bounded_mean_ci(values: Sequence[float], bounds: tuple[float, float] | None, level: float = LEVEL) -> Interval:
    """The mean of a metric that cannot leave `bounds` = (lo, hi), both finite (accuracies:
    [0, 1]), with an interval inside them: the t interval built on the logit scale of the
    mean (delta method), mapped back. With u = (x - lo) / (hi - lo), m = mean(u),
    se = s_u / sqrt(n), L = logit(m) = ln(m / (1 - m)):

    h = t_{(1 + level)/2, n - 1} * se / (m (1 - m))       (d logit(m) / dm = 1 / (m (1 - m)))
    interval = lo + (hi - lo) * [expit(L - h), expit(L + h)]

    It estimates the arithmetic mean (the transform is of the mean, not of the values, so
    values at the bound are fine), matches the t interval where the mean is far from the
    bounds, and near a bound is asymmetric: short towards the bound, longer towards the
    inside, where a skewed sample's mean has its uncertainty. On simulated accuracies near 1
    it keeps its coverage where the t interval's falls short (tests/test_stats_simulation.py;
    the rates: benchmarks/RESULTS.md). Every value the same (or all at a bound): the point
    interval, as mean_ci. Fewer than two values: NaN bounds, as mean_ci. A mean outside
    (lo, hi) (values outside the range: not a bounded metric after all) falls back to the
    t interval intersected with the bounds. bounds None: mean_ci unchanged."""
    ci = mean_ci(values, level)
    if bounds is None or ci.n < 2 or not ci.sd > 0:
        return ci
    lo, hi = bounds
    width = hi - lo
    m = (ci.mean - lo) / width
    if not 0 < m < 1:
        return bounded(ci, bounds)
    se = ci.sd / width / math.sqrt(ci.n)
    h = t_ppf((1 + level) / 2, ci.n - 1) * se / (m * (1 - m))
    logit = math.log(m / (1 - m))
    low = lo + width * _expit(logit - h)
    high = lo + width * _expit(logit + h)
    return Interval(ci.mean, low, high, (high - low) / 2, ci.n, ci.sd, level)


def _expit(x: float) -> float:
    """1 / (1 + e^-x) without overflow (scipy.special.expit's value)."""
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def bounded(ci, bounds: tuple[float, float] | None):
    """An Interval, Diff or PairedDiff whose low/high are intersected with `bounds`, the
    range the estimated quantity cannot leave: a difference of two accuracies' means lies
    in [-1, 1] (diff_bounds). None: unchanged (an unbounded metric).

    Why intersection for differences: the true difference lies inside `bounds`, so
    whenever Welch's interval covers it, the intersected interval covers it too (coverage
    exactly Welch's), the width never grows, and the interval is never empty (the point
    estimate is inside the range). 0 is inside [-1, 1], so whether the interval excludes 0
    is unchanged, and it stays in step with Welch's p, the Holm p and TOST, all computed on
    the unbounded scale. (A transformed difference interval would not: its "excludes 0"
    could disagree with p.) Differences of accuracies are far from +-1 in practice; the
    intersection only keeps a degenerate interval (n = 2, t_1 = 12.7) inside the range."""
    if bounds is None or ci is None:
        return ci
    lo, hi = bounds
    low = ci.low if math.isnan(ci.low) else min(max(ci.low, lo), hi)
    high = ci.high if math.isnan(ci.high) else max(min(ci.high, hi), lo)
    return dataclasses.replace(ci, low=low, high=high)


def diff_bounds(bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    """The range of a difference of two means in `bounds`: [lo - hi, hi - lo]."""
    if bounds is None:
        return None
    lo, hi = bounds
    return (lo - hi, hi - lo)


# ----------------------------------------------------------------------------- equivalence


def tost_p(diff: Diff, margin: float) -> float:
    """Two one-sided tests (Schuirmann 1987) of |mean(a) - mean(b)| < margin, Welch's
    standard error and degrees of freedom:

    p_low  = sf_t((diff + margin) / se, df)    (H0: diff <= -margin)
    p_high = sf_t((margin - diff) / se, df)    (H0: diff >= +margin)
    p_tost = max(p_low, p_high)

    what statsmodels.stats.weightstats.ttost_ind(a, b, -margin, margin, usevar="unequal")
    returns as its p (a test checks it). Equivalence at alpha = 1 - level is p_tost < alpha,
    the same as the (1 - 2 alpha) Welch interval lying inside (-margin, margin).
    NaN with fewer than two values on a side; with no spread on either side, 0 when
    |diff| < margin and 1 otherwise."""
    if not (isinstance(margin, (int, float)) and margin > 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a positive finite number, got {margin!r}")
    if diff.n_a < 2 or diff.n_b < 2 or math.isnan(diff.diff):
        return NAN
    se = math.sqrt(diff.sd_a**2 / diff.n_a + diff.sd_b**2 / diff.n_b)
    if se == 0:
        return 0.0 if abs(diff.diff) < margin else 1.0
    df = diff.df
    return max(t_sf((diff.diff + margin) / se, df), t_sf((margin - diff.diff) / se, df))


CALLS = ("higher", "lower", "equivalent", "not resolved")  # a verdict is exactly one of these


def call(diff: Diff, p_adjusted: float | None = None, p_tost_adjusted: float | None = None) -> str:
    """The verdict on a - b as one word of CALLS:

    - "higher" / "lower": the interval excludes 0 and (when given) the Holm-adjusted p is
      below alpha = 1 - level: a is higher / lower than b;
    - "equivalent": not that, and the (Holm-adjusted) TOST p is below alpha: the
      difference is inside the margin (only with a margin: p_tost_adjusted given);
    - "not resolved": neither.
    A resolved difference takes precedence over equivalence: a difference shown to
    exist and to be smaller than the margin reads "higher"/"lower" (its size says the rest).
    Groups without spread (every seed the same value on both sides) are "not resolved"
    unless equivalence is shown, as verdict() says."""
    alpha = 1 - diff.level
    spread = not (diff.sd_a == 0 and diff.sd_b == 0)
    ok_adjusted = p_adjusted is None or math.isnan(p_adjusted) or p_adjusted < alpha
    if spread and diff.resolved and ok_adjusted:
        return "higher" if diff.diff > 0 else "lower"
    if p_tost_adjusted is not None and not math.isnan(p_tost_adjusted) and p_tost_adjusted < alpha:
        return "equivalent"
    return "not resolved"


@dataclass(frozen=True)
class FamilyTest:
    """One comparison of a family: values[i] - values[j] (i ranked above j)."""

    i: int
    j: int
    diff: Diff  # welch_diff(values[i], values[j])
    p_holm: float  # Welch's p, Holm-adjusted over the family
    p_tost: float  # TOST p (tost_p), Holm-adjusted over the family; NaN without a margin
    call: str  # call(diff, p_holm, p_tost): higher / lower / equivalent / not resolved


def family_tests(values: Sequence[Sequence[float]], family: str = "vs-best", margin: float | None = None,
                 level: float = LEVEL) -> list[FamilyTest]:
    """The family of comparisons among groups given best first (values[0] is the best):
    "vs-best": values[0] against each other group; "all-pairs": every pair (i, j), i < j.
    Each: Welch's difference (welch_diff), Welch's p Holm-adjusted over the family (holm),
    with a margin the TOST p (tost_p) Holm-adjusted over the family, and its call.

    Holm over the family keeps the chance of any false "higher"/"lower" in it at or below
    1 - level, whatever the dependence between the tests. With "vs-best" the best is chosen
    from the same data, so its comparisons are selected ones and the family-wise error
    exceeds the level slightly (benchmarks/RESULTS.md);
    "all-pairs" does not select. compare and sweep --seeds-until resolved both call this."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    k = len(values)
    if family == "all-pairs":
        members = [(i, j) for i in range(k) for j in range(i + 1, k)]
    else:
        members = [(0, j) for j in range(1, k)]
    diffs = [welch_diff(values[i], values[j], level) for i, j in members]
    p_holm = holm([d.p for d in diffs])
    p_tost = holm([tost_p(d, margin) for d in diffs]) if margin is not None else [NAN] * len(diffs)
    return [FamilyTest(i, j, d, ph, pt, call(d, ph, pt if margin is not None else None))
            for (i, j), d, ph, pt in zip(members, diffs, p_holm, p_tost)]


# ----------------------------------------------------------------------------- across tasks


def _improvement(x, y) -> float:
    """P(X > Y) for one task: the share of (x_i, y_j) pairs with x_i > y_j, ties counting
    one half (the Mann-Whitney U statistic over N M)."""
    import numpy as np

    x = np.asarray(x, dtype=float)[:, None]
    y = np.asarray(y, dtype=float)[None, :]
    return float(((x > y) + 0.5 * (x == y)).mean())


def probability_of_improvement(tasks_x: Sequence[Sequence[float]], tasks_y: Sequence[Sequence[float]]) -> float:
    """The probability of improvement of X over Y across tasks (Agarwal et al., "Deep
    Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS 2021, and
    rliable's metrics.probability_of_improvement):

    P(X > Y) = (1 / M) sum_m P(X_m > Y_m),
    P(X_m > Y_m) = (1 / (N_m K_m)) sum_i sum_j S(x_mi, y_mj),  S = 1 if x > y, 1/2 if x = y, else 0,

    with x_m1..x_mN the runs of X on task m and y_m1..y_mK those of Y. Every task weighs
    the same whatever its number of runs. NaN values are dropped; a task where a side has
    no value is left out; NaN when no task is left."""
    vals = []
    for x, y in zip(tasks_x, tasks_y):
        x, y = _values(x), _values(y)
        if x.size and y.size:
            vals.append(_improvement(x, y))
    return sum(vals) / len(vals) if vals else NAN


def improvement_interval(tasks_x, tasks_y, level: float = LEVEL, reps: int = 2000,
                         seed: int = 0) -> tuple[float, float, float]:
    """(P(X > Y), low, high): probability_of_improvement with a stratified bootstrap
    percentile interval, as rliable computes it (StratifiedIndependentBootstrap): in each
    of `reps` replicates, the runs of X and the runs of Y are resampled with replacement
    independently within each task (the tasks are the strata and are all kept), and the
    statistic recomputed; the interval is the replicates' (1 - level)/2 and (1 + level)/2
    quantiles (numpy's linear interpolation). `seed` fixes the random stream, so the same
    runs give the same interval on every call (compare's outputs regenerate byte for byte).
    NaN bounds when no task has values on both sides."""
    _check_level(level)
    import numpy as np

    pairs = [(_values(x), _values(y)) for x, y in zip(tasks_x, tasks_y)]
    pairs = [(x, y) for x, y in pairs if x.size and y.size]
    if not pairs:
        return NAN, NAN, NAN
    point = sum(_improvement(x, y) for x, y in pairs) / len(pairs)
    rng = np.random.default_rng(seed)
    total = np.zeros(reps)
    for x, y in pairs:
        xs = x[rng.integers(0, x.size, size=(reps, x.size))]  # (reps, N)
        ys = y[rng.integers(0, y.size, size=(reps, y.size))]  # (reps, K)
        gt = (xs[:, :, None] > ys[:, None, :]).mean(axis=(1, 2))
        eq = (xs[:, :, None] == ys[:, None, :]).mean(axis=(1, 2))
        total += gt + 0.5 * eq
    boot = total / len(pairs)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return point, float(low), float(high)
