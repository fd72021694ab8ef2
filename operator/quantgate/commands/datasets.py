"""`quantgate datasets`: prepare and verify a Hugging Face datasets cache for disconnected clusters.

  pull --suite S --to DIR     download every task's datasets into DIR (needs Hub access); prints its size
  check DIR --suite S         construct every task from DIR with the Hub offline; exit 16 naming each missing task
  pack-local --to DIR         the shipped local datasets under the official dataset ids (try it without the Hub)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from quantgate.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "datasets", help="prepare or check a datasets cache for clusters without the Hugging Face Hub",
        description="A prepared cache (spec.datasets, quantgate run --datasets) lets runner Jobs evaluate with the "
                    "Hub offline. pull prepares one on a machine with Hub access, check verifies one, pack-local "
                    "writes the datasets shipped with quantgate as one.")
    sub = p.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")
    sub.required = True

    pull = sub.add_parser("pull", help="download and prepare the datasets of a suite or task list into DIR")
    _selection(pull)
    pull.add_argument("--to", required=True, metavar="DIR", help="cache directory to fill (created)")
    pull.set_defaults(func=run_pull)

    check = sub.add_parser("check", help="verify that DIR holds every dataset of a suite or task list")
    check.add_argument("directory", metavar="DIR")
    _selection(check)
    check.set_defaults(func=run_check)

    pack = sub.add_parser("pack-local", help="write quantgate's own local datasets as a cache under the official "
                          "dataset ids (gsm8k, arc_challenge, hellaswag, winogrande, truthfulqa_mc2 and eight "
                          "mmlu_* subjects)")
    pack.add_argument("--to", required=True, metavar="DIR")
    pack.set_defaults(func=run_pack_local)


def _selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", choices=("leaderboard", "tiny"), help="named suite (default leaderboard)")
    p.add_argument("--tasks", metavar="LIST", help="comma-separated lm-eval tasks instead of a suite")


def _specs(args):
    from quantgate.commands.run import parse_tasks
    from quantgate.lmeval.suites import resolve_tasks

    if args.suite and args.tasks:
        raise InputError("give either --suite or --tasks, not both")
    return resolve_tasks(args.suite, parse_tasks(args.tasks) if args.tasks else None)


def _report(name: str, problem: str | None, failed: str = "MISSING") -> None:
    print(f"  {name}: {'ok' if problem is None else failed + ': ' + problem}", flush=True)


def run_pull(args) -> int:
    from quantgate.lmeval import datasets_cache as dc

    specs = _specs(args)
    target = Path(args.to)
    print(f"pulling {len(specs)} tasks into {target}", flush=True)
    problems = dc.pull(specs, target, on_task=lambda name, problem: _report(name, problem, "FAILED"))
    failed = sorted(name for name, problem in problems.items() if problem)
    if failed:
        raise dc.DatasetsMissing(f"could not prepare {', '.join(failed)} (see above); check Hub access and retry")
    # verify in a fresh process, as a runner will read it: Hub offline, read through an overlay
    selection = ["--tasks", args.tasks] if args.tasks else ["--suite", args.suite or "leaderboard"]
    code = subprocess.call([sys.executable, "-m", "quantgate.cli", "datasets", "check", str(target), *selection])
    if code != 0:
        return code
    print(f"{target}: {dc.human(dc.size_of(target))}")
    return 0


def run_check(args) -> int:
    from quantgate.lmeval import datasets_cache as dc

    specs = _specs(args)
    directory = Path(args.directory)
    dc.use_cache(directory)
    problems = dc.load_each(specs, on_task=_report)
    missing = [name for name, problem in problems.items() if problem]
    if missing:
        raise dc.DatasetsMissing(f"datasets cache {directory} lacks the data of {', '.join(missing)}; add it with "
                                 f"`quantgate datasets pull --tasks {','.join(missing)} --to {directory}`")
    print(f"{directory}: all {len(specs)} tasks load with the Hub offline ({dc.human(dc.size_of(directory))})")
    return 0


def run_pack_local(args) -> int:
    from quantgate.lmeval import datasets_cache as dc

    target = Path(args.to)
    written = dc.pack_local(target)
    print(f"{target}: {len(written)} datasets, {dc.human(dc.size_of(target))}")
    return 0
