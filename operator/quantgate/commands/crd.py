"""`quantgate crd`: print or write a CRD (ModelEvaluation, ModelEvaluationMatrix) generated from the API models."""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_PATH = "manifests/crd/modelevaluations.quantgate.io.yaml"
KINDS = ("ModelEvaluation", "ModelEvaluationMatrix")


def register(subparsers) -> None:
    p = subparsers.add_parser("crd", help="generate the ModelEvaluation (or ModelEvaluationMatrix) CRD")
    p.add_argument("--kind", choices=KINDS, default=KINDS[0], help="which CRD (default: ModelEvaluation)")
    p.add_argument("-o", "--output", metavar="FILE", help=f"write here instead of stdout (e.g. {DEFAULT_PATH})")
    p.set_defaults(func=run)


def run(args) -> int:
    from quantgate.api.crd import render

    text = render(args.kind)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
