"""Sharper statistics beside every verdict: exact McNemar p-values, the minimum detectable
drop, and how many documents would make an undecided comparison decisive. Pure, no I/O.

All three work in the drop's own units: percent of the baseline score (relative mode) or
percentage points (absolute mode). `sd_doc` below is the standard deviation of one
document's paired score difference (baseline - candidate), so the standard error of the
mean difference over n documents is sd_doc / sqrt(n). For a 0/1 metric with disagreement
rate r and mean difference m, sd_doc = sqrt(r - m²): the flips alone set it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from quantgate.decision.model import DropMode

ALPHA = 0.05  # two-sided, the same 95% as the intervals
POWER = 0.80  # the conventional power for a minimum detectable effect


def mcnemar_p(worse: int, better: int) -> float:
    """Exact two-sided McNemar p-value: under "no difference" each of the n = worse + better
    changed answers is equally likely to go either way, so the smaller count is binomial
    (n, 1/2); p = min(1, 2 * P(X <= min)). Exact integer arithmetic (no underflow at any n)."""
    if worse < 0 or better < 0:
        raise ValueError("flip counts must be non-negative")
    n = worse + better
    if n == 0:
        return 1.0
    k = min(worse, better)
    if 2 * k == n:
        return 1.0
    term, tail = 1, 1  # C(n, 0)
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, tail / (1 << (n - 1)))


def drop_scale(baseline: float, drop_mode: DropMode) -> float:
    """Factor from a score difference to the drop's units."""
    return 100.0 / abs(baseline) if drop_mode == "relative" else 100.0


def min_detectable_drop(sd_doc: float, n: int, baseline: float, drop_mode: DropMode,
                        alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest true drop that a two-sided test at `alpha` detects with probability
    `power` from n paired documents at this spread: (z_{1-alpha/2} + z_power) * sd_doc / sqrt(n),
    in the drop's units. None below 2 documents."""
    if n < 2 or sd_doc < 0:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * sd_doc / math.sqrt(n) * drop_scale(baseline, drop_mode)


def documents_needed(sd_doc: float, distance: float, baseline: float, drop_mode: DropMode,
                     alpha: float = ALPHA) -> int | None:
    """Documents at which the interval's half-width, z_{1-alpha/2} * sd_doc / sqrt(n) in the
    drop's units, shrinks to `distance` (how far the observed drop lies from the nearest
    value that changes the verdict), assuming the same drop and disagreement rate. None when
    the drop sits on that value (no number of documents decides it)."""
    if distance <= 1e-9:
        return None
    half_per_doc = NormalDist().inv_cdf(1 - alpha / 2) * sd_doc * drop_scale(baseline, drop_mode)
    return max(1, math.ceil((half_per_doc / distance) ** 2))


def nearest_change(f, at: float, towards: float, iterations: int = 60) -> float:
    """Where the step function f (a verdict of one drop) first differs from f(at) between at
    and towards, by bisection; f(towards) must differ from f(at). f is monotone (the rule is),
    so the first change is the only one that matters."""
    here = f(at)
    lo, hi = at, towards
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if f(mid) == here:
            lo = mid
        else:
            hi = mid
    return hi
