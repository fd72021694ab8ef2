"""`quantgate dev` and `quantgate simulate` run development tools (quantgate.dev, quantgate.simulate)
that the runtime image leaves out: without them, say so in one line and how to get them."""

from __future__ import annotations

import functools

from quantgate.errors import InputError

DEV_PACKAGES = ("quantgate.dev", "quantgate.simulate")


def needs_dev_tools(command):
    """Wrap a command function: a missing development package becomes a one-line InputError."""

    @functools.wraps(command)
    def run(args):
        try:
            return command(args)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith(DEV_PACKAGES):
                raise
            raise InputError(f"{exc.name} is a development tool and is not part of this install (the runtime "
                             "image leaves it out); use a source checkout: pip install -e '.[dev]'") from None

    return run
