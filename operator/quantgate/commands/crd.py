"""`quantgate crd`: print or write the ModelEvaluation CRD generated from the API models."""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_PATH = "manifests/crd/modelevaluations.quantgate.io.yaml"


def register(subparsers) -> None:
    p = subparsers.add_parser("crd", help="generate the ModelEvaluation CustomResourceDefinition")
    p.add_argument("-o", "--output", metavar="FILE", help=f"write here instead of stdout (e.g. {DEFAULT_PATH})")
    p.set_defaults(func=run)


def run(args) -> int:
    from quantgate.api.crd import render

    text = render()
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
