"""Per-question pairing of two runs: answer flips and the paired 95% interval of a drop."""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantgate.decision.model import DropMode, Flips
from quantgate.decision.significance import mcnemar_p
from quantgate.errors import InputError
from quantgate.core.runs import RunResults

Z95 = 1.959963984540054
CORRECT_AT = 0.5  # continuous per-question scores (truthfulqa_mc2) count as correct from here


@dataclass
class Paired:
    n: int
    flips: Flips
    mean_diff: float  # mean of (baseline - candidate), sign-adjusted so positive = worse
    se_diff: float | None  # standard error of that mean; None below 2 questions


def pair(task: str, metric: str, baseline: RunResults, candidate: RunResults,
         higher_is_better: bool, *, allow_mismatch: bool, warnings: list[str]) -> Paired | None:
    """Pair the per-question `metric` values of every leaf under `task`.

    Questions are keyed (leaf task, doc_id, filter); the filter is the metric's. Returns None
    when either run lacks samples for a leaf. Runs on different documents (doc_hash digests
    differ) are an InputError, or, with allow_mismatch, a warning and no pairing.
    """
    b_vals: list[float] = []
    c_vals: list[float] = []
    for leaf in baseline.leaves(task):
        bs, cs = baseline.samples.get(leaf), candidate.samples.get(leaf)
        if bs is None or cs is None or metric not in bs.values or metric not in cs.values:
            return None
        if bs.digest != cs.digest:
            msg = (f"task {leaf}: baseline and candidate were evaluated on different documents "
                   f"(doc_hash digests differ); evaluate both on the same data")
            if not allow_mismatch:
                raise InputError(msg)
            warnings.append(f"warning: {msg}; no flips or paired interval for {task}")
            return None
        b_vals.extend(bs.values[metric])
        c_vals.extend(cs.values[metric])
    n = len(b_vals)
    if n == 0:
        return None
    c2i = i2c = 0
    sign = 1.0 if higher_is_better else -1.0
    total = total_sq = 0.0
    for b, c in zip(b_vals, c_vals):
        bc, cc = b >= CORRECT_AT, c >= CORRECT_AT
        # "correct" means the good outcome; for a lower-is-better metric that is the low side.
        if not higher_is_better:
            bc, cc = not bc, not cc
        if bc and not cc:
            c2i += 1
        elif cc and not bc:
            i2c += 1
        d = sign * (b - c)
        total += d
        total_sq += d * d
    mean = total / n
    se = None
    if n > 1:
        var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
        se = math.sqrt(var / n)
    flips = Flips(correct_to_incorrect=c2i, incorrect_to_correct=i2c, rate=round((c2i + i2c) / n, 4),
                  mcnemar_p=float(f"{mcnemar_p(c2i, i2c):.3g}"))
    return Paired(n=n, flips=flips, mean_diff=mean, se_diff=se)


def interval(drop: float, se_score: float, baseline: float, drop_mode: DropMode) -> tuple[float, float]:
    """95% interval around a drop from the standard error of the score difference, in the
    drop's units (relative mode divides by the baseline score, taken as fixed)."""
    half = Z95 * se_score * 100
    if drop_mode == "relative":
        half /= abs(baseline)
    return drop - half, drop + half


def unpaired_se(baseline_se: float | None, candidate_se: float | None) -> float | None:
    """Standard error of the difference of two independent scores: sqrt(s1² + s2²)."""
    if baseline_se is None or candidate_se is None:
        return None
    return math.sqrt(baseline_se**2 + candidate_se**2)
