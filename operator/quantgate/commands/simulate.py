"""`quantgate simulate`: serve simulated vLLM-compatible models from a variants file."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="serve simulated vLLM-compatible models with planted accuracy",
        description="Start one HTTP server per variant of FILE on 127.0.0.1 (free ports), print each URL and "
                    "serve until Ctrl-C. See examples/simulate/demo-fleet.yaml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="variants YAML")
    p.add_argument("--variant", action="append", metavar="NAME", help="serve only these variants (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=run)


def run(args) -> int:
    import signal
    import threading

    from quantgate.simulate import SimulatedFleet

    fleet = SimulatedFleet(args.file, variants=args.variant, host=args.host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fleet:
        for name in fleet.names:
            v = fleet.config.variant(name)
            print(f"{name}\t{fleet.url(name)}\tmodel={v.served_model}", flush=True)
        print("serving; Ctrl-C to stop", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0
