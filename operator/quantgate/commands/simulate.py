"""`quantgate simulate`: serve simulated vLLM-compatible models from a variants file."""

from __future__ import annotations

import argparse

from quantgate.commands._dev_tools import needs_dev_tools


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="serve simulated vLLM-compatible models with planted accuracy",
        description="Start one HTTP server per variant of FILE on 127.0.0.1 (free ports), print each URL and "
                    "serve until Ctrl-C. See examples/simulate/demo-fleet.yaml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="variants YAML")
    p.add_argument("--variant", action="append", metavar="NAME", help="serve only these variants (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text",
                   help="text: one 'NAME<TAB>URL<TAB>model=SERVED' line per variant; json: one line "
                        '{"variants": [{"name", "url", "model"}]} (the notice goes to stderr)')
    p.set_defaults(func=needs_dev_tools(run))


def run(args) -> int:
    import json
    import signal
    import sys
    import threading

    from quantgate.simulate import SimulatedFleet

    fleet = SimulatedFleet(args.file, variants=args.variant, host=args.host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fleet:
        served = [{"name": n, "url": fleet.url(n), "model": fleet.config.variant(n).served_model} for n in fleet.names]
        if args.output == "json":
            print(json.dumps({"variants": served}), flush=True)
        else:
            for v in served:
                print(f"{v['name']}\t{v['url']}\tmodel={v['model']}", flush=True)
        print("serving; Ctrl-C to stop", file=sys.stderr if args.output == "json" else sys.stdout, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0
