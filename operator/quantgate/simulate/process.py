"""Run one simulated variant in this process: `python -m quantgate.simulate.process`.

Prints `LISTENING <port>` on stdout once bound (the fleet reads it), then serves
until SIGTERM/SIGINT. The fleet config arrives as JSON on stdin so that a test's
in-memory dict needs no file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from quantgate.simulate.config import FleetConfig
from quantgate.simulate.index import ItemIndex
from quantgate.simulate.server import build_app, serve, tls_context
from quantgate.simulate.tokenizer import default_tokenizer


async def _main(config: FleetConfig, name: str, index_paths: list[Path], host: str, port: int) -> None:
    variant = config.variant(name)
    app = build_app(config, variant, ItemIndex.load(index_paths), default_tokenizer())
    runner, bound = await serve(app, host, port, tls_context(variant))
    print(f"LISTENING {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--index", required=True, type=Path, action="append", help="one per suite")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    config = FleetConfig.model_validate(json.loads(sys.stdin.readline()))
    asyncio.run(_main(config, args.variant, args.index, args.host, args.port))


if __name__ == "__main__":
    main()
