"""Planted outcomes: which local items each variant answers correctly.

For every scoring unit (a task; all mmlu_* subjects pool into "mmlu") with N
items, a variant answers exactly round(accuracy * N) items correctly. The
reference variant's correct set is a seeded sample. Another variant starts
from the reference and flips F = round(flipRate * N) outcomes (adjusted up by
one when needed so that the flips can produce exactly its accuracy):
(F + d) / 2 correct→incorrect and (F - d) / 2 incorrect→correct, where d is
the reference's correct count minus the variant's. Same seed, same plan, in
every process.
"""

from __future__ import annotations

import random

from quantgate.simulate.config import FleetConfig, Variant


def _rng(*parts) -> random.Random:
    return random.Random("|".join(str(p) for p in parts))


def planted_count(variant: Variant, unit: str, n: int, default: float) -> int:
    return round(variant.accuracy.get(unit, default) * n)


def _flip_rate(variant: Variant, unit: str) -> float:
    return variant.flip_rate.get(unit, variant.flip_rate.get("default", 0.0))


def plant(config: FleetConfig, variant: Variant, unit: str, item_ids: list[str]) -> set[str]:
    """The set of item ids the variant answers correctly in this unit."""
    items = sorted(item_ids)
    n = len(items)
    ref = config.variant(config.reference) if config.reference else None
    if ref is None or ref.name == variant.name:
        k = planted_count(variant, unit, n, config.default_accuracy)
        return set(_rng(config.seed, unit, variant.name).sample(items, k))
    ref_correct = plant(config, ref, unit, items)
    ref_wrong = [i for i in items if i not in ref_correct]
    target = planted_count(variant, unit, n, config.default_accuracy)
    d = len(ref_correct) - target
    flips = max(round(_flip_rate(variant, unit) * n), abs(d))
    if (flips - d) % 2:
        flips += 1
    to_wrong, to_right = (flips + d) // 2, (flips - d) // 2
    # Not enough items to flip that many: keep the accuracy exact, flip fewer.
    excess = max(0, to_wrong - len(ref_correct), to_right - len(ref_wrong))
    to_wrong, to_right = to_wrong - excess, to_right - excess
    rng = _rng(config.seed, unit, variant.name, "flips")
    lost = set(rng.sample(sorted(ref_correct), to_wrong))
    gained = set(rng.sample(ref_wrong, to_right))
    return (ref_correct - lost) | gained


def wrong_choice(seed: int, unit: str, item: str, gold: int, n_choices: int) -> int:
    """The choice a variant picks when it is planted wrong (the same for every variant)."""
    others = [c for c in range(n_choices) if c != gold]
    return _rng(seed, unit, item, "wrong").choice(others)


def wrong_number(seed: int, unit: str, item: str, gold: str) -> str:
    delta = _rng(seed, unit, item, "wrong").choice([-10, -3, -2, -1, 1, 2, 3, 5, 10])
    try:
        value = int(gold.replace(",", ""))
    except ValueError:
        return gold + "1"
    return str(value + delta if value + delta != value else value + 1)
