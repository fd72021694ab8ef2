"""One module per `quantgate` subcommand.

Each module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed args and returning the exit status.
Heavy imports (lm-eval, kopf, kubernetes) stay inside those callables so that
``quantgate --help`` and ``quantgate compare`` start fast.
"""

NAMES = ("compare", "report", "run", "evaluate", "simulate", "operator", "crd", "dev", "datasets", "merge",
         "verify", "publish")
