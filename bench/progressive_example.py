"""The worked example of docs/decision.md ("Progressive evaluation"), regenerated.

Draws pairs from bench/progressive_bench.py's generator (full official sizes, MMLU in its 57
subjects) and prints, for the first pair of each wanted kind, every look until it stops: per
task n / N, estimated full-task scores, drop and full-suite interval, then the average drop.
Run: python bench/progressive_example.py [--seed 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from progressive_bench import draw_case, make_pair, prefix_sums, rule_for, samples_at  # noqa: E402

from quantgate.decision.progressive import DEFAULT_STAGES, look  # noqa: E402


def show(kind: str, sums, rule) -> None:
    print(f"\n### {kind}")
    for i, f in enumerate(DEFAULT_STAGES):
        lk = look(samples_at(sums, f), rule, stage=i + 1, stages=len(DEFAULT_STAGES))
        print(f"\nstage {i + 1} ({f:.0%}: {lk.items_evaluated:,} documents), z = {lk.z:.3f}\n")
        print("| task | n / N | baseline | candidate | drop % | full-suite interval |\n|---|---|---|---|---|---|")
        for t in lk.tasks:
            print(f"| {t.task} | {t.n:,} / {t.population:,} | {t.baseline:.4f} | {t.candidate:.4f} | {t.drop:.2f} "
                  f"| [{t.ci[0]:.2f}, {t.ci[1]:.2f}] |")
        print(f"\naverage drop {lk.average_drop:.2f}% in [{lk.average_ci[0]:.2f}, {lk.average_ci[1]:.2f}]; "
              f"possible {lk.possible[0].value}..{lk.possible[1].value}; {lk.reason}")
        if lk.stop:
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--kinds", default="broken,int4", help="comma-separated kinds of progressive_bench's mix")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for kind in args.kinds.split(","):
        profile, drops, rates = draw_case(rng, kind)
        show(kind, prefix_sums(rng, make_pair(rng, drops, rates)), rule_for(profile))


if __name__ == "__main__":
    main()
