"""`quantgate merge`: join the shards of one run into the run an unsharded `quantgate run` writes,
or the progressive stage runs 1..k of one run (`quantgate run --fraction F --after F0`) into the
run of stage k.

Exit status: 0 merged; 2 bad input (a shard or stage missing, repeated, from another run,
incomplete, or not mergeable exactly).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "merge", help="join the outputs of `quantgate run --shard I/N` (or of progressive stages, "
                      "`--fraction F --after F0`) into one run directory",
        description="Join the N shard outputs of one `quantgate run --shard I/N` plan, or the stage runs 1..k "
                    "of one progressive run (`quantgate run --fraction F --after F0`, each after the previous "
                    "one). Scores, stderrs and per-question samples equal those of an unsharded run (of stage "
                    "k's run) bit for bit; compare, report and evaluate read the result like any run directory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("shards", nargs="+", metavar="DIR", help="the output directories of all N shards (or of "
                   "stages 1..k)")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing --output directory")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from quantgate.lmeval.merge import merge_dirs

    out = merge_dirs([Path(d) for d in args.shards], Path(args.output), force=args.force)
    print(out)
    return 0
