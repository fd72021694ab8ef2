"""`quantgate report`: the decision matrix of several variants against one baseline, from result
files, or (`--from-cluster NAMESPACE/NAME`) from a ModelEvaluationMatrix or ModelEvaluation the
operator decided (current kubeconfig).

Exit status 0 when the report was written (whatever the verdicts), 2 on bad input.
"""

from __future__ import annotations

from quantgate.commands._policy_args import add_policy_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="decision matrix of several candidates (INT8, INT4, ...) against one baseline",
        description="One row per variant (the baseline first, as Reference): size, one score per task, "
                    "average drop and verdict.")
    p.add_argument("--baseline", metavar="PATH",
                   help="lm-eval results_*.json, --output_path directory or quantgate run directory")
    p.add_argument("--candidate", action="append", metavar="NAME=PATH",
                   help="a variant's results (repeatable; rows in this order)")
    p.add_argument("--from-cluster", metavar="NAMESPACE/NAME",
                   help="instead of result files: the ModelEvaluationMatrix (or ModelEvaluation) of that name, "
                        "as the operator decided it (its own policy and selection; policy options do not apply)")
    p.add_argument("--size", action="append", default=[], metavar="NAME=SIZE",
                   help='size shown for a row, e.g. int8="8 GB" (NAME may be Reference)')
    p.add_argument("--baseline-name", default="Reference", help="row name of the baseline (default: Reference)")
    add_policy_args(p)
    p.add_argument("-o", "--output", choices=("table", "markdown", "json", "html"), default="table",
                   help="output format (default: table; html is a self-contained page with a drop chart)")
    p.add_argument("--out", metavar="FILE", help="write the report to FILE instead of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from quantgate.commands._policy_args import pairs, policy_from_args, warn
    from quantgate.decision import matrix
    from quantgate.errors import InputError
    from quantgate.lmeval.results import load_run

    if args.from_cluster:
        if args.baseline or args.candidate:
            raise InputError("--from-cluster reads the results from the cluster: drop --baseline/--candidate")
        return _write(args, _from_cluster(args.from_cluster))
    if not args.baseline or not args.candidate:
        raise InputError("give --baseline PATH and at least one --candidate NAME=PATH, or --from-cluster NAMESPACE/NAME")
    policy = policy_from_args(args)
    paths = pairs(args.candidate, "--candidate", "NAME=PATH, e.g. int8=results/int8")
    if len(paths) != len(args.candidate):
        raise InputError("--candidate: each NAME must be given once")
    if args.baseline_name in paths:
        raise InputError(f"--candidate {args.baseline_name}: that name is the baseline's row; choose another")
    sizes = pairs(args.size, "--size", "NAME=SIZE, e.g. int8=8GB")
    baseline = load_run(args.baseline)
    candidates = {name: load_run(path) for name, path in paths.items()}
    m = matrix(baseline, candidates, policy, sizes, allow_mismatch=args.allow_mismatch,
               baseline_name=args.baseline_name)
    for row in m.rows[1:]:
        warn(row.comparison.reasons, "report")
    return _write(args, m)


def _from_cluster(target: str):
    from quantgate.commands.verify import _target
    from quantgate.errors import InputError
    from quantgate.report.cluster import read

    ns, name = _target(target)
    try:
        from quantgate.k8s.client import api_client
        from quantgate.k8s.cluster import Cluster

        cluster = Cluster(api_client(pool=4))
        return read(cluster, ns, name)
    except InputError:
        raise
    except Exception as exc:  # no kubeconfig, unreachable or refusing apiserver
        raise InputError(f"cannot read {ns}/{name}: {str(exc).splitlines()[0][:200]}") from None


def _write(args, m) -> int:
    from pathlib import Path

    from quantgate.errors import InputError
    from quantgate.report.html import render_html
    from quantgate.report.text import render_matrix

    text = render_html(m) if args.output == "html" else render_matrix(m, args.output)
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise InputError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    else:
        print(text)
    return 0
