"""Statistics helpers of the toy-world tables (benchmarks/toy_world/stats.py) on published values."""
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.toy_world import stats as S  # noqa: E402


def test_wilson_matches_the_closed_form():
    # Wilson (1927): (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    for k, n in ((81, 263), (0, 10), (10, 10), (39, 48)):
        p, z = k / n, S.Z95
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        lo, hi = S.wilson(k, n)
        assert lo == pytest.approx(c - h, abs=1e-9) and hi == pytest.approx(c + h, abs=1e-9)
    assert S.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_newcombe_paired_interval_reproduces_newcombe_1998():
    # Newcombe (1998), Stat Med 17:2635, Table II, method 10 (e, f, g, h)
    assert S.newcombe_paired(36, 12, 2, 0) == pytest.approx((0.0569, 0.3404), abs=1e-4)
    assert S.newcombe_paired(18, 12, 2, 18) == pytest.approx((0.0562, 0.3290), abs=1e-4)
    lo, hi = S.newcombe_paired(53, 0, 0, 1)
    assert lo == pytest.approx(-0.0729, abs=1e-4) and hi == pytest.approx(0.0729, abs=1e-4)


def test_exact_mcnemar_is_the_binomial_on_discordant_pairs():
    assert S.mcnemar_exact(1, 0) == 1.0          # "79 % -> 83 %": one picture of 24
    assert S.mcnemar_exact(10, 0) == pytest.approx(2 * 0.5 ** 10)
    assert S.mcnemar_exact(0, 0) == 1.0
    # two-sided sum of binomial(12, 1/2) tails at 2 and 10
    tail = sum(math.comb(12, i) for i in range(3)) / 2 ** 12
    assert S.mcnemar_exact(2, 10) == pytest.approx(2 * tail)
    r = S.paired_proportions([1, 1, 1, 0, 0, 1], [1, 0, 0, 0, 1, 1])
    assert (r.n, r.b, r.c) == (6, 2, 1) and r.diff == pytest.approx(1 / 6)
    assert r.p == pytest.approx(1.0)


def test_paired_values_and_wilcoxon():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    y = [0.0] * 8
    r = S.paired_values(x, y)
    assert r.diff == pytest.approx(4.5) and r.mean == pytest.approx(4.5)  # HL shift, mean
    # exact two-sided signed-rank p with all 8 differences positive: 2 / 2^8
    assert r.p == pytest.approx(2 / 2 ** 8)
    assert r.low < 4.5 < r.high and not r.contains(0.0)
    assert S.paired_values([1, 2], [1, 2]).p == 1.0
    assert S.paired_values([1.0, float("nan"), 3.0], [0.0, 1.0, 1.0]).n == 2


def _brute_signed_rank_p(d):
    """Enumerate all 2^n sign flips of the mid-ranked non-zero |d| (the definition)."""
    import itertools

    import numpy as np
    from scipy import stats
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    r = stats.rankdata(np.abs(d))
    t = r[d > 0].sum()
    sums = np.array([sum(r[k] for k in range(len(d)) if s[k]) for s in itertools.product((0, 1), repeat=len(d))])
    return min(1.0, 2 * min((sums <= t + 1e-9).mean(), (sums >= t - 1e-9).mean()))


def test_signed_rank_p_is_exact_with_ties_and_zeros():
    import numpy as np
    from scipy import stats
    rng = np.random.default_rng(0)
    for n in (6, 11, 20):  # no ties: scipy's exact Wilcoxon
        d = rng.normal(0.4, 1.0, n)
        assert S.signed_rank_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, rel=1e-9)
    for _ in range(6):  # ties and zeros (scipy's exact method refuses zeros): full enumeration
        d = rng.integers(-3, 4, 12).astype(float)
        assert S.signed_rank_p(d) == pytest.approx(_brute_signed_rank_p(d), rel=1e-9)
    assert S.signed_rank_p([0.0, 0.0]) == 1.0


def test_hodges_lehmann_interval_agrees_with_the_test():
    """The interval holds 0 exactly when the exact signed-rank p >= 0.05 (issue 24: seven t intervals
    disagreed with the Wilcoxon p), also with ties and zeros."""
    import numpy as np
    rng = np.random.default_rng(1)
    for k in range(60):
        n = int(rng.integers(8, 49))
        d = rng.normal(0.35, 1.0, n) if k % 2 else rng.integers(-2, 4, n).astype(float) / 7
        r = S.paired_values(d, np.zeros(n))
        assert r.contains(0.0) == (r.p >= S.ALPHA), (d, r)
        assert r.low <= r.diff <= r.high
    assert S.hodges_lehmann([1.0, 2.0, 3.0])[0] == pytest.approx(2.0)


def test_holm_and_p_formatting():
    assert S.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert S.holm([0.2, 0.2]) == pytest.approx([0.4, 0.4]) and S.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert S.fmt_p(0.0499) == "0.0499" and S.fmt_p(0.0502) == "0.0502"  # never "0.050" for p != 0.05
    assert S.fmt_p(0.038) == "0.038" and S.fmt_p(0.5) == "0.50" and S.fmt_p(2e-5) == "2.0e-05"


def test_power_and_verdict():
    # Connor (1987): discordance 0.2, difference 0.05, alpha 0.05, power 0.8
    assert S.mcnemar_n(0.2, 0.05) == 626
    assert S.mcnemar_n(0.1, 0.05) == 312
    assert S.detectable_effect(48) == pytest.approx((1.959964 + 0.841621) / math.sqrt(48), rel=1e-5)
    assert S.verdict(0.01, 0.05, +1, 600) == "agrees"
    assert S.verdict(0.01, -0.05, +1, 600) == "disagrees"
    assert S.verdict(0.2, 0.05, +1, 600) == "not distinguishable at n = 600"
    with pytest.raises(ValueError):
        S.mcnemar_n(0.01, 0.05)
