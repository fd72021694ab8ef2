"""The `quantgate` command: parses arguments and dispatches to quantgate.commands.*."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from quantgate import __version__
from quantgate.commands import NAMES
from quantgate.errors import QuantgateError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantgate",
        description="Decide whether a quantized LLM may replace its full-precision original.",
    )
    parser.add_argument("--version", action="version", version=f"quantgate {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in NAMES:
        try:
            module = importlib.import_module(f"quantgate.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"quantgate.commands.{name}":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except QuantgateError as exc:
        if args.debug:
            raise
        print(f"quantgate {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"quantgate {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `quantgate compare -o json | head`: the reader left; exit quietly like other tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
