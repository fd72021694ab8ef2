"""`quantgate dev up|down|status|kubeconfig`: a real control plane on loopback for development."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from quantgate.commands._dev_tools import needs_dev_tools


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dev", help="run a local Kubernetes control plane (etcd, apiserver, controllers, process kubelet)",
        description="Run a real Kubernetes control plane on loopback, built by `make tools`. "
                    "Pods run as local processes from the project's virtualenv.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name, text in (("up", "start the cluster and wait until it is ready"),
                       ("down", "stop every process of the cluster and remove its state"),
                       ("status", "say what runs"),
                       ("kubeconfig", "print the admin kubeconfig's path")):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--state-dir", type=Path, default=None,
                            help="cluster state directory (default ~/.cache/quantgate/dev)")
        if name == "status":
            action.add_argument("-o", "--output", choices=("text", "json"), default="text")
        if name == "kubeconfig":
            action.add_argument("--export", action="store_true", help="print an `export KUBECONFIG=...` line")
        action.set_defaults(func=needs_dev_tools(globals()[f"_{name}"]))


def _dir(args) -> Path:
    from quantgate.dev import paths

    return (args.state_dir or paths.default_state_dir()).expanduser().resolve()


def _up(args) -> int:
    from quantgate.dev import cluster

    state = cluster.up(_dir(args), progress=lambda line: print(f"dev: {line}", file=sys.stderr, flush=True))
    print(f"export KUBECONFIG={state.kubeconfig}")
    return 0


def _down(args) -> int:
    from quantgate.dev import cluster

    stopped = cluster.down(_dir(args), progress=lambda line: print(f"dev: {line}", file=sys.stderr))
    if not stopped:
        print("dev: no running cluster", file=sys.stderr)
    return 0


def _status(args) -> int:
    from quantgate.dev import cluster

    report = cluster.status(_dir(args))
    if args.output == "json":
        print(json.dumps(report, indent=2))
    elif not report["components"]:
        print(f"no dev cluster in {report['stateDir']}")
    else:
        print(f"server {report['server']}  ready={str(report['ready']).lower()}")
        print(f"kubeconfig {report['kubeconfig']}")
        for name, comp in report["components"].items():
            print(f"  {name:<24} pid {comp['pid']:<8} {'running' if comp['running'] else 'STOPPED'}")
    return 0 if report["running"] else 1


def _kubeconfig(args) -> int:
    from quantgate.dev import cluster
    from quantgate.errors import InputError

    state = cluster.State.load(_dir(args))
    if state is None:
        raise InputError(f"no dev cluster in {_dir(args)}; start one with `quantgate dev up`")
    print(f"export KUBECONFIG={state.kubeconfig}" if args.export else state.kubeconfig)
    return 0
