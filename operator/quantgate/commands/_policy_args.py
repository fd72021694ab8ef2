"""Arguments shared by `compare` and `report`: the decision policy and the inputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quantgate.errors import InputError


def add_policy_args(p: argparse.ArgumentParser) -> None:
    from quantgate.decision.model import PROFILES  # light: pydantic only

    p.add_argument("--profile", choices=PROFILES, default="general",
                   help="task-specific limits (default: general)")
    p.add_argument("--thresholds", metavar="FILE",
                   help="YAML/JSON with ship, monitor, abTest bounds on the average drop (default 1, 3, 5)")
    p.add_argument("--task-limit", metavar="TASK=PCT", action="append", default=[],
                   help="block when TASK's drop is >= PCT (repeatable; overrides the profile's limit)")
    p.add_argument("--metric", metavar="TASK=METRIC,FILTER", action="append", default=[],
                   help="score TASK on this lm-eval metric key instead of its primary metric (repeatable)")
    p.add_argument("--drop-mode", choices=("relative", "absolute"), default="relative",
                   help="drop in percent of the baseline score, or in percentage points (default: relative)")
    p.add_argument("--aggregate", choices=("relativeDropOfMean", "meanOfRelativeDrops"),
                   default="relativeDropOfMean", help="how the average drop is formed (default: relativeDropOfMean)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="compare runs whose setup differs (few-shot counts, limits, documents, lm-eval or task "
                        "versions, task configs, generation kwargs, chat template, system instruction) with a "
                        "warning recorded in the output")
    p.add_argument("--max-choice-kld", type=float, metavar="NATS",
                   help="also block when a multiple-choice task's mean choice KLD exceeds this (stricter only)")
    p.add_argument("--min-top1-agreement", type=float, metavar="SHARE",
                   help="also block when a multiple-choice task's top-1 agreement is below this (stricter only)")


def pairs(values: list[str], flag: str, what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InputError(f"{flag} {item!r}: expected {what}")
        out[key] = value
    return out


def _thresholds(path: str):
    import yaml
    from pydantic import ValidationError

    from quantgate.decision.model import Thresholds

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"--thresholds {path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"--thresholds {path}: not YAML/JSON ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and isinstance(data.get("thresholds"), dict):
        data = data["thresholds"]
    if not isinstance(data, dict):
        raise InputError(f"--thresholds {path}: expected a mapping with ship, monitor, abTest")
    try:
        return Thresholds.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise InputError(f"--thresholds {path}: {where + ': ' if where else ''}{msg}") from None


def policy_from_args(args):
    from quantgate.decision.model import Policy

    limits = {}
    for task, value in pairs(args.task_limit, "--task-limit", "TASK=PCT, e.g. gsm8k=2").items():
        try:
            limits[task] = float(value)
        except ValueError:
            raise InputError(f"--task-limit {task}={value}: {value!r} is not a number") from None
        if limits[task] < 0:
            raise InputError(f"--task-limit {task}={value}: a limit must be >= 0")
    metrics = pairs(args.metric, "--metric", "TASK=METRIC,FILTER, e.g. gsm8k=exact_match,flexible-extract")
    kwargs = dict(profile=args.profile, task_limits=limits, drop_mode=args.drop_mode,
                  aggregate=args.aggregate, metrics=metrics)
    if args.thresholds:
        kwargs["thresholds"] = _thresholds(args.thresholds)
    for flag, key, top in (("max_choice_kld", "max_choice_kld", None), ("min_top1_agreement", "min_top1_agreement", 1)):
        value = getattr(args, flag, None)
        if value is not None:
            if value < 0 or (top is not None and value > top):
                raise InputError(f"--{flag.replace('_', '-')} {value:g}: must be >= 0" + (" and <= 1" if top else ""))
            kwargs[key] = value
    return Policy(**kwargs)


def warn(reasons: list[str], command: str) -> None:
    for r in reasons:
        if r.startswith("warning: "):
            print(f"quantgate {command}: {r}", file=sys.stderr)
