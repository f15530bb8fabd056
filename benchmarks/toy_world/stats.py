"""Statistics for the toy-world tables (scipy; no comfy import).

* ``wilson(k, n)``: Wilson score 95 % interval of a proportion (``scipy.stats.binomtest``).
* ``paired_proportions(x, y)``: two 0/1 outcomes of the same items (pictures with the same seed and
  prompt under two methods): difference of proportions, Newcombe's hybrid score interval for paired
  data (Newcombe 1998, method 10) and the exact McNemar p (two-sided binomial test on the discordant
  pairs, ``scipy.stats.binomtest``).
* ``paired_values(x, y)``: one number per video under two methods (same prompt and seed): mean
  difference with its t interval and the two-sided Wilcoxon signed-rank p (``scipy.stats.wilcoxon``;
  zero differences dropped, p = 1 when every difference is 0).
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
    diff: float         # mean of x - y
    low: float          # t interval of the mean difference
    high: float
    p: float            # two-sided Wilcoxon signed-rank


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


def wilcoxon_p(diff) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (zeros dropped); 1 if all are 0."""
    d = np.asarray(diff, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) == 0 or np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox").pvalue)


def paired_values(x, y) -> PairedValues:
    """Paired comparison of one number per item (video) under a method ``x`` and a baseline ``y``;
    pairs with a nan on either side are dropped."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired_values: {x.shape} vs {y.shape} items")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    m, lo, hi = mean_ci(x - y)
    return PairedValues(int(ok.sum()), float(x.mean()) if len(x) else float("nan"),
                        float(y.mean()) if len(y) else float("nan"), m, lo, hi, wilcoxon_p(x - y))


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
    if math.isnan(p):
        return "n/a"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"
