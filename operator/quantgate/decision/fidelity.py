"""Fidelity of a candidate's answers to its baseline's, beyond accuracy (pure functions).

For a multiple-choice task lm-eval logs, per question, the loglikelihood of every choice.
A softmax over them is the model's distribution over the choices. Per task:

* ``kld``: the mean over questions of KL(baseline ‖ candidate), in nats;
* ``top1``: the share of questions where both models rank the same choice first.

Accuracy can stay flat while these move (answers flip both ways, confidence shifts);
llama.cpp's ``perplexity --kl-divergence`` reports the same two numbers over the whole
vocabulary. They explain a verdict; they never decide alone. An optional per-task limit
(`check_limits`) can only add reasons to block, never remove any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fidelity:
    task: str
    kld: float  # mean KL(baseline || candidate) over questions, nats
    top1: float  # share of questions with the same top choice
    n: int


def choice_distribution(logliks: list[float]) -> list[float]:
    """Softmax of per-choice loglikelihoods (stable for very negative values)."""
    top = max(logliks)
    weights = [math.exp(x - top) for x in logliks]
    total = sum(weights)
    return [w / total for w in weights]


def kl_divergence(p: list[float], q: list[float], floor: float = 1e-12) -> float:
    """KL(p ‖ q) in nats; q is floored so a zero the baseline does not share stays finite."""
    return max(0.0, sum(pi * math.log(pi / max(qi, floor)) for pi, qi in zip(p, q) if pi > 0))


def _by_width(baseline: list[list[float]], candidate: list[list[float]]) -> dict[int, tuple[list, list]]:
    """The questions both runs scored with the same number (>= 2) of choices, grouped by it."""
    groups: dict[int, tuple[list, list]] = {}
    for b, c in zip(baseline, candidate):
        if len(b) == len(c) >= 2:
            rows = groups.setdefault(len(b), ([], []))
            rows[0].append(b)
            rows[1].append(c)
    return groups


def _softmax(rows: np.ndarray) -> np.ndarray:
    weights = np.exp(rows - rows.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def task_fidelity(task: str, baseline: list[list[float]], candidate: list[list[float]],
                  floor: float = 1e-12) -> Fidelity | None:
    """Mean KLD and top-1 agreement over questions both runs scored with the same number of
    choices: `kl_divergence(choice_distribution(b), choice_distribution(c))` and the first
    highest choice of each, computed for all questions of a width at once (a full MMLU run has
    14,042 questions; an operator deciding many evaluations computes this for each)."""
    kld_sum, same, n = 0.0, 0, 0
    for b_rows, c_rows in _by_width(baseline, candidate).values():
        b, c = np.asarray(b_rows, dtype=np.float64), np.asarray(c_rows, dtype=np.float64)
        p, q = _softmax(b), _softmax(c)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p / np.maximum(q, floor)), 0.0)
        kld_sum += float(np.maximum(terms.sum(axis=1), 0.0).sum())
        same += int((b.argmax(axis=1) == c.argmax(axis=1)).sum())  # the first maximum, as max() picks
        n += len(b_rows)
    if not n:
        return None
    return Fidelity(task, kld_sum / n, same / n, n)


def check_limits(found: list[Fidelity], max_kld: float | None, min_top1: float | None) -> list[str]:
    """Reasons to block, from optional limits (an empty list when none is exceeded)."""
    out = []
    for f in found:
        if max_kld is not None and f.kld > max_kld:
            out.append(f"{f.task}: choice KLD {f.kld:.4f} > limit {max_kld:g}")
        if min_top1 is not None and f.top1 < min_top1:
            out.append(f"{f.task}: top-1 agreement {f.top1:.3f} < limit {min_top1:g}")
    return out
