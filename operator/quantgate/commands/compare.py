"""`quantgate compare`: the verdict for one candidate against its baseline.

Exit status: 0 promotable (Ship, Monitor), 1 not (ABTest, Block), 2 bad input.
"""

from __future__ import annotations

from quantgate.commands._policy_args import add_policy_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare a candidate's lm-eval results with the baseline's",
        description="Compare two lm-eval runs and print per-task drops, flips, intervals and the verdict. "
                    "Exit 0 when promotable (Ship, Monitor), 1 when not (ABTest, Block), 2 on bad input.")
    p.add_argument("--baseline", required=True, metavar="PATH",
                   help="lm-eval results_*.json, --output_path directory or quantgate run directory")
    p.add_argument("--candidate", required=True, metavar="PATH", help="the same, for the candidate")
    add_policy_args(p)
    p.add_argument("-o", "--output", choices=("table", "json", "markdown"), default="table",
                   help="output format (default: table; json carries the fields of the ModelEvaluation status)")
    p.set_defaults(func=run)


def run(args) -> int:
    from quantgate.commands._policy_args import policy_from_args, warn
    from quantgate.decision import compare
    from quantgate.lmeval.results import load_run
    from quantgate.report.text import render_comparison

    policy = policy_from_args(args)
    baseline, candidate = load_run(args.baseline), load_run(args.candidate)
    comparison = compare(baseline, candidate, policy, allow_mismatch=args.allow_mismatch)
    warn(comparison.reasons, "compare")
    print(render_comparison(comparison, args.output))
    return 0 if comparison.promotable else 1
