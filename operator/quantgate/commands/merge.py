"""`quantgate merge`: join the shards of one run into the run an unsharded `quantgate run` writes.

Exit status: 0 merged; 2 bad input (a shard missing, repeated, from another run, incomplete,
or not mergeable exactly).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "merge", help="join the outputs of `quantgate run --shard I/N` into one run directory",
        description="Join the N shard outputs of one `quantgate run --shard I/N` plan. Scores, stderrs and "
                    "per-question samples equal those of an unsharded run bit for bit; compare, report and "
                    "evaluate read the result like any run directory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="the output directories of all N shards")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing --output directory")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from quantgate.lmeval.merge import merge_dirs

    out = merge_dirs([Path(d) for d in args.shards], Path(args.output), force=args.force)
    print(out)
    return 0
