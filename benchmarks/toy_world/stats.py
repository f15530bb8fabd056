"""Statistics for the toy-world tables (scipy; no comfy import).

* ``wilson(k, n)``: Wilson score 95 % interval of a proportion (``scipy.stats.binomtest``).
* ``paired_proportions(x, y)``: two 0/1 outcomes of the same items (pictures with the same seed and
  prompt under two methods): difference of proportions, Newcombe's hybrid score interval for paired
  data (Newcombe 1998, method 10) and the exact McNemar p (two-sided binomial test on the discordant
  pairs, ``scipy.stats.binomtest``).
* ``paired_values(x, y)``: one number per video under two methods (same prompt and seed): the
  two-sided exact signed-rank p (``signed_rank_p``: zero differences dropped, tied |differences| given
  their mid-ranks, the null distribution enumerated over all sign flips, so exact with ties and zeros
  where ``scipy.stats.wilcoxon(method="exact")`` is not), and the Hodges-Lehmann shift with the 95 %
  interval obtained by inverting that same test (``hodges_lehmann``): the interval excludes 0 exactly
  when p < 0.05. The mean difference is kept as ``mean``.
* ``holm(ps)``: Holm (1979) step-down adjusted p-values for a family of claims.
* ``mcnemar_n(p_discordant, delta)``: pairs needed for 80 % power at alpha 0.05 (Connor 1987);
  ``detectable_effect(n)``: the standardised paired difference a paired test detects at ``n``
  (normal approximation; the Wilcoxon needs up to ~5 % more pairs for normal data).
* ``verdict(p, sign_expected, n)``: "agrees" / "disagrees" only where p < 0.05, otherwise
  "not distinguishable at n = ...".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = float(stats.norm.ppf(0.975))
ALPHA = 0.05


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (low, high) of ``k`` successes in ``n`` trials; (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass
class Paired:
    n: int
    p_x: float          # proportion of successes under x (the method)
    p_y: float          # under y (the baseline)
    diff: float         # p_x - p_y
    low: float          # Newcombe method-10 interval of diff
    high: float
    b: int              # x right, y wrong
    c: int              # x wrong, y right
    p: float            # exact McNemar (two-sided binomial on b of b + c at 1/2)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: binomial test of ``b`` of ``b + c`` discordant pairs at 1/2; 1 if none."""
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(int(b), int(b + c), 0.5).pvalue)


def newcombe_paired(a: int, b: int, c: int, d: int, level: float = 0.95) -> tuple[float, float]:
    """Newcombe (1998) method 10 interval for p1 - p2 of paired 0/1 data: ``a`` both 1, ``b`` only the
    first 1, ``c`` only the second 1, ``d`` both 0 (p1 = (a + b) / n, p2 = (a + c) / n)."""
    n = a + b + c + d
    if n == 0:
        return float("nan"), float("nan")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, level)
    l2, u2 = wilson(a + c, n, level)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's phi: numerator ad - bc lowered by n/2 when positive (0 when 0 < ad - bc <= n/2)
    num = a * d - b * c
    num = num - n / 2 if num > n / 2 else (num if num < 0 else 0.0)
    phi = num / math.sqrt(den) if den > 0 else 0.0
    dl = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    du = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return p1 - p2 - dl, p1 - p2 + du


def paired_proportions(x, y) -> Paired:
    """Paired comparison of 0/1 outcomes ``x`` (method) and ``y`` (baseline) of the same items."""
    x = np.asarray(x, dtype=bool)
    y = np.asarray(y, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"paired_proportions: {x.shape} vs {y.shape} items")
    a = int((x & y).sum())
    b = int((x & ~y).sum())
    c = int((~x & y).sum())
    d = int((~x & ~y).sum())
    n = a + b + c + d
    lo, hi = newcombe_paired(a, b, c, d)
    return Paired(n, (a + b) / n if n else float("nan"), (a + c) / n if n else float("nan"),
                  (b - c) / n if n else float("nan"), lo, hi, b, c, mcnemar_exact(b, c))


@dataclass
class PairedValues:
    n: int
    mean_x: float
    mean_y: float
    diff: float         # Hodges-Lehmann shift of x - y (median of the Walsh averages)
    low: float          # interval of the shift by inverting the exact signed-rank test (level 95 %)
    high: float
    p: float            # two-sided exact signed-rank p (ties mid-ranked, zeros dropped)
    mean: float = float("nan")  # mean of x - y (descriptive)
    low_open: bool = False      # the bound itself is rejected (the interval is open there)
    high_open: bool = False

    def contains(self, value: float = 0.0) -> bool:
        """True when ``value`` lies in the interval (open bounds excluded)."""
        above = value > self.low or (value == self.low and not self.low_open)
        below = value < self.high or (value == self.high and not self.high_open)
        return above and below


def mean_ci(v, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``v`` and its t interval (nan interval for fewer than 2 values)."""
    v = np.asarray(v, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    se = float(v.std(ddof=1)) / math.sqrt(len(v))
    t = float(stats.t.ppf(0.5 + level / 2, len(v) - 1))
    return m, m - t * se, m + t * se


def signed_rank_p(diff) -> float:
    """Two-sided exact signed-rank p of paired differences, valid with ties and zeros.

    Zeros are dropped (Wilcoxon's rule), the remaining |differences| get mid-ranks, and T+ (the rank
    sum of the positive differences) is referred to its exact permutation distribution under random
    signs, enumerated by convolution over the doubled (integer) mid-ranks: p = min(1, 2 min(P(T+ <= t),
    P(T+ >= t))). Without ties it equals ``scipy.stats.wilcoxon(d, method="exact")``. 1 if every
    difference is 0 (or nan)."""
    d = np.asarray(diff, dtype=float)
    d = d[~np.isnan(d)]
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    r2 = np.rint(2 * stats.rankdata(np.abs(d))).astype(int)
    t = int(r2[d > 0].sum())
    dist = np.zeros(int(r2.sum()) + 1)
    dist[0] = 1.0
    for v in r2:
        nxt = dist.copy()
        nxt[v:] += dist[:-v]
        dist = 0.5 * nxt
    return float(min(1.0, 2 * min(dist[:t + 1].sum(), dist[t:].sum())))


def hodges_lehmann(diff, level: float = 0.95) -> tuple[float, float, float, bool, bool]:
    """Hodges-Lehmann shift of paired differences and its interval by inverting :func:`signed_rank_p`.

    Returns ``(shift, low, high, low_open, high_open)``: the shift is the median of the Walsh averages
    (d_i + d_j) / 2, i <= j; the interval is the set of shifts s with ``signed_rank_p(d - s) >= 1 -
    level``, whose bounds lie at Walsh averages (the test statistic changes only there). A bound whose
    Walsh average is itself rejected is open (``*_open``). So the interval holds 0 exactly when the
    test's p >= 1 - level. nan for no differences."""
    d = np.asarray(diff, dtype=float)
    d = d[~np.isnan(d)]
    nan = float("nan")
    if len(d) == 0:
        return nan, nan, nan, False, False
    alpha = 1 - level
    i, j = np.triu_indices(len(d))
    w = np.unique((d[i] + d[j]) / 2)
    shift = float(np.median((d[i] + d[j]) / 2))
    # candidate shifts: each Walsh average and the midpoints between neighbours (the p is constant on
    # each open gap), plus one point beyond each end
    mids = (w[1:] + w[:-1]) / 2
    span = max(float(w[-1] - w[0]), 1.0)
    cand = np.concatenate([[w[0] - span], np.ravel(np.column_stack([w, np.append(mids, np.nan)]))[:-1],
                           [w[-1] + span]])

    def ok(k: int) -> bool:
        return signed_rank_p(d - cand[k]) >= alpha

    centre = int(np.searchsorted(cand, shift))
    centre = min(max(centre, 0), len(cand) - 1)
    if not ok(centre):  # the shift itself rejected (a tiny n): search for any accepted candidate
        acc = [k for k in range(len(cand)) if ok(k)]
        if not acc:
            return shift, nan, nan, False, False
        centre = acc[len(acc) // 2]
    lo, hi = 0, centre  # smallest accepted index in [0, centre] (the p rises towards the centre)
    while lo < hi:
        m = (lo + hi) // 2
        if ok(m):
            hi = m
        else:
            lo = m + 1
    first = lo
    lo, hi = centre, len(cand) - 1
    while lo < hi:
        m = (lo + hi + 1) // 2
        if ok(m):
            lo = m
        else:
            hi = m - 1
    last = lo

    def bound(k: int, side: int) -> tuple[float, bool]:
        if k in (0, len(cand) - 1):  # accepted beyond every Walsh average: unbounded on that side
            return side * math.inf, True
        if k % 2 == 1:  # a Walsh average (index 2q + 1 holds w[q]): accepted, closed
            return float(cand[k]), False
        # a gap's midpoint: the bound is the neighbouring (rejected) Walsh average, open
        return float(cand[k + side]), True

    low, low_open = bound(first, -1)
    high, high_open = bound(last, +1)
    return shift, low, high, low_open, high_open


def paired_values(x, y) -> PairedValues:
    """Paired comparison of one number per item (video) under a method ``x`` and a baseline ``y``;
    pairs with a nan on either side are dropped. ``diff`` / ``low`` / ``high``: Hodges-Lehmann shift
    and the interval that inverts the exact signed-rank test whose p is ``p``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired_values: {x.shape} vs {y.shape} items")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    d = x - y
    shift, lo, hi, lo_open, hi_open = hodges_lehmann(d)
    return PairedValues(int(ok.sum()), float(x.mean()) if len(x) else float("nan"),
                        float(y.mean()) if len(y) else float("nan"), shift, lo, hi, signed_rank_p(d),
                        float(d.mean()) if len(d) else float("nan"), lo_open, hi_open)


def holm(ps) -> list[float]:
    """Holm (1979) step-down adjusted p-values of one family of claims, in the input order:
    p_(k) adjusted = max over j <= k of min(1, (m - j + 1) p_(j))."""
    ps = [float(p) for p in ps]
    m = len(ps)
    order = sorted(range(m), key=lambda k: ps[k])
    out = [1.0] * m
    run = 0.0
    for rank, k in enumerate(order):
        run = max(run, min(1.0, (m - rank) * ps[k]))
        out[k] = run
    return out


def mcnemar_n(p_discordant: float, delta: float, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Pairs needed to detect a difference ``delta`` of paired proportions with a two-sided McNemar test
    when a share ``p_discordant`` of the pairs is discordant (Connor 1987, Biometrics 43:207)."""
    za = float(stats.norm.ppf(1 - alpha / 2))
    zb = float(stats.norm.ppf(power))
    if not 0 < abs(delta) <= p_discordant <= 1:
        raise ValueError(f"mcnemar_n: need 0 < |delta| <= p_discordant <= 1, got {delta}, {p_discordant}")
    return math.ceil((za * math.sqrt(p_discordant) + zb * math.sqrt(p_discordant - delta ** 2)) ** 2 / delta ** 2)


def detectable_effect(n: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """Smallest standardised mean paired difference (mean / sd of the differences) a two-sided
    paired test detects with ``power`` at ``n`` pairs (normal approximation)."""
    za = float(stats.norm.ppf(1 - alpha / 2))
    zb = float(stats.norm.ppf(power))
    return (za + zb) / math.sqrt(n)


def verdict(p: float, diff: float, expected_sign: int, n: int) -> str:
    """'agrees' (p < 0.05, the difference has the paper's sign), 'disagrees' (p < 0.05, opposite sign),
    else 'not distinguishable at n = n'."""
    if not (p < ALPHA) or diff == 0 or math.isnan(diff):
        return f"not distinguishable at n = {n}"
    return "agrees" if (diff > 0) == (expected_sign > 0) else "disagrees"


def fmt_p(p: float) -> str:
    """p for the tables: 2 significant digits (3 decimals from 0.001 to 0.1), with more decimals where
    rounding would put the printed value on the other side of (or onto) alpha 0.05."""
    if math.isnan(p):
        return "n/a"
    if p < 1e-3:
        return f"{p:.1e}"
    if p >= 0.1:
        return f"{p:.2f}"
    if p == ALPHA:
        return f"{p:.3f}"
    for d in range(3, 8):
        s = f"{p:.{d}f}"
        if float(s) != ALPHA and (float(s) < ALPHA) == (p < ALPHA):
            return s
    return s
