"""`quantgate publish`: store a finished run directory in the results ConfigMap(s).

What `quantgate run --publish-configmap` does after its run, as a step of its own: the runner
Job of a code evaluation runs it in a container that alone mounts the ServiceAccount token,
after the evaluating containers (which execute model-written code) have finished without one.
Exit status: 0 published, 2 bad input, 21 publishing failed.
"""

from __future__ import annotations



def register(subparsers) -> None:
    p = subparsers.add_parser(
        "publish", help="publish a complete run directory into the evaluation's results ConfigMap",
        description="Publish a complete run directory (from `quantgate run`) into a results ConfigMap, "
                    "as `run --publish-configmap` does. Used inside the operator's runner Job.")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="the complete run directory")
    p.add_argument("--configmap", required=True, metavar="NAMESPACE/NAME", help="results ConfigMap")
    p.add_argument("--role", required=True, choices=("baseline", "candidate"))
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from quantgate.commands.run import parse_publish, publish

    target = parse_publish(args.configmap, args.role)
    publish(Path(args.run_dir), target, args.role)
    return 0
