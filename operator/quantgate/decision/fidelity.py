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


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def task_fidelity(task: str, baseline: list[list[float]], candidate: list[list[float]]) -> Fidelity | None:
    """Mean KLD and top-1 agreement over questions both runs scored with the same number of choices."""
    klds, same = [], 0
    for b, c in zip(baseline, candidate):
        if len(b) != len(c) or len(b) < 2:
            continue
        klds.append(kl_divergence(choice_distribution(b), choice_distribution(c)))
        same += _argmax(b) == _argmax(c)
    if not klds:
        return None
    return Fidelity(task, sum(klds) / len(klds), same / len(klds), len(klds))


def check_limits(found: list[Fidelity], max_kld: float | None, min_top1: float | None) -> list[str]:
    """Reasons to block, from optional limits (an empty list when none is exceeded)."""
    out = []
    for f in found:
        if max_kld is not None and f.kld > max_kld:
            out.append(f"{f.task}: choice KLD {f.kld:.4f} > limit {max_kld:g}")
        if min_top1 is not None and f.top1 < min_top1:
            out.append(f"{f.task}: top-1 agreement {f.top1:.3f} < limit {min_top1:g}")
    return out
