"""`quantgate evaluate --local -f EVALUATION.yaml`: a ModelEvaluation run on this machine.

Runs the baseline and the candidate endpoints concurrently (`quantgate run`
each), compares them with the decision engine, prints the verdict table and
writes both run directories, comparison.json and report.html under --output.
Exit status as `compare`: 0 promotable, 1 not, 2 bad input; a run that fails
passes on its own status (10-14 preflight, 20 failed mid-run).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="evaluate a ModelEvaluation locally against its endpoints",
        description="Run a ModelEvaluation YAML (baseline and candidate given as endpoint URLs) on this machine: "
                    "both runs concurrently, then the verdict. Exit 0 promotable, 1 not, 2 bad input, "
                    "10-20 a run failed (see quantgate run).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--local", action="store_true", required=True,
                   help="run here (the operator runs the same spec in Kubernetes Jobs)")
    p.add_argument("-f", "--file", required=True, metavar="FILE", help="ModelEvaluation YAML")
    p.add_argument("--output", "-o", metavar="DIR", help="default: ./quantgate-eval/<metadata.name>")
    p.add_argument("--api-key-env", metavar="VAR", default="OPENAI_API_KEY",
                   help="environment variable holding the endpoints' API key (for apiKeySecretRef)")
    p.add_argument("--local-data", action="store_true",
                   help="run the spec's tasks on quantgate's own datasets (as suite: local does; the full-size "
                        "ones with suite: local-full)")
    p.add_argument("--limit", type=int, help="evaluate only the first N documents of every task (smoke runs)")
    p.add_argument("--progressive", action="store_true",
                   help="evaluate in stages and stop once the full-suite verdict is settled (docs/decision.md); "
                        "a spec with progressive: runs so without it, with the spec's stages and confidence")
    p.add_argument("--stages", default="0.1,0.25,0.5,1", metavar="LIST",
                   help="--progressive: increasing fractions of every task, ending at 1")
    p.add_argument("--confidence", type=float, default=0.95, help="--progressive: confidence of the verdict")
    p.add_argument("--ca-bundle", metavar="FILE", help="PEM CA file for the https endpoints (the spec's caBundle "
                   "names a ConfigMap, which only exists in the cluster)")
    p.add_argument("--datasets", metavar="DIR", help="a prepared datasets cache (what spec.datasets mounts in the "
                   "cluster); the runs read only it, with the Hub offline")
    p.set_defaults(func=run)


def trust_args(source, ca_bundle: str | None) -> list[str]:
    """The runner's TLS flags for one model source of the spec (evaluate --local)."""
    if source.insecure_skip_verify:
        return ["--insecure-skip-verify"]
    if ca_bundle and source.endpoint.url.lower().startswith("https://"):
        return ["--ca-bundle", ca_bundle]
    return []


def load_evaluation(path: str):
    """(name, ModelEvaluationSpec) from a ModelEvaluation document (or a bare spec)."""
    from pathlib import Path

    import yaml
    from pydantic import ValidationError

    from quantgate.api.v1alpha1 import ModelEvaluationSpec
    from quantgate.errors import InputError

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a ModelEvaluation document")
    if "spec" in doc and doc.get("kind", "ModelEvaluation") != "ModelEvaluation":
        raise InputError(f"{path}: kind is {doc.get('kind')!r}, expected ModelEvaluation")
    name = (doc.get("metadata") or {}).get("name") or Path(path).stem
    try:
        spec = ModelEvaluationSpec.model_validate(doc.get("spec", doc))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise InputError(f"{path}: spec.{where}: {err['msg']}") from None
    for role in ("baseline", "candidate"):
        source = getattr(spec, role)
        if source.endpoint is None:
            raise InputError(f"{path}: evaluate --local needs spec.{role}.endpoint.url (an inferenceServiceRef or "
                             "vllm engine runs only in the cluster)")
    return name, spec


def policy_of(spec):
    from quantgate.decision.model import Policy

    return Policy(profile=spec.profile, task_limits=spec.task_limits or {}, thresholds=spec.thresholds,
                  drop_mode=spec.drop_mode, aggregate=spec.aggregate,
                  metrics={t.name: t.metric for t in (spec.tasks or []) if t.metric},
                  max_choice_kld=spec.max_choice_kld, min_top1_agreement=spec.min_top1_agreement)


def parse_stages(text: str) -> tuple[float, ...]:
    from quantgate.decision.progressive import check_stages
    from quantgate.errors import InputError

    try:
        return check_stages([float(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise InputError(f"--stages {text!r}: give increasing fractions ending at 1, e.g. 0.1,0.25,0.5,1") from None


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    from quantgate.decision import compare, matrix
    from quantgate.errors import InputError, QuantgateError
    from quantgate.lmeval.parallel import RunJob, run_all, run_args
    from quantgate.lmeval.plan import run_plan
    from quantgate.lmeval.results import load_run
    from quantgate.report.html import render_html
    from quantgate.report.text import render_comparison

    name, spec = load_evaluation(args.file)
    stages = parse_stages(args.stages) if args.progressive else None
    if stages is None and spec.progressive is not None:  # as the operator runs the spec
        stages, args.confidence = tuple(spec.progressive.stages), spec.progressive.confidence
        args.progressive = True
    if args.progressive and args.limit:
        raise InputError("--progressive evaluates stages of every task; drop --limit")
    if args.progressive and not 0 < args.confidence < 1:
        raise InputError(f"--confidence {args.confidence}: give a number between 0 and 1, e.g. 0.95")
    out = Path(args.output or Path("quantgate-eval") / name)
    out.mkdir(parents=True, exist_ok=True)

    plan = run_plan(spec, limit=args.limit, local_data=args.local_data)  # what the operator's Job runs

    def run_both(fraction: float | None = None) -> tuple[Path, Path]:
        jobs = []
        for role in ("baseline", "candidate"):
            ep = getattr(spec, role).endpoint
            jobs.append(RunJob(role, run_args(
                ep.url, out / role, model=ep.model, concurrency=spec.runner.concurrency, label=role,
                api_key_env=args.api_key_env if ep.api_key_secret_ref else "QUANTGATE_NO_API_KEY",
                fraction=fraction, allow_code_execution=spec.allow_code_execution,
                extra=plan.runner_args() + trust_args(getattr(spec, role), args.ca_bundle)
                + (["--datasets", args.datasets] if args.datasets else []),
                request_cache=out / ".request-cache" / role if fraction is not None else None), out / role))
        for job in run_all(jobs):
            if job.failed:
                err = QuantgateError(f"the {job.label} run failed (exit status {job.returncode}); "
                                     "see its error above")
                err.exit_code = job.returncode if job.returncode in range(10, 30) else 2
                raise err
        return out / "baseline", out / "candidate"

    policy = policy_of(spec)
    if stages:
        import shutil

        from quantgate.lmeval.progressive_run import run_progressive

        # answers cached by an earlier evaluation may come from another model behind the same URL
        shutil.rmtree(out / ".request-cache", ignore_errors=True)

        print(f"evaluating {name} progressively (stages {', '.join(f'{s:g}' for s in stages)}, confidence "
              f"{args.confidence:g}): baseline and candidate in parallel → {out}", file=sys.stderr)
        comparison, _, history = run_progressive(run_both, policy, stages, args.confidence)
        (out / "stages.json").write_text(json.dumps(history, indent=2) + "\n")
    else:
        print(f"evaluating {name}: baseline and candidate in parallel → {out}", file=sys.stderr)
        run_both()
    baseline, candidate = load_run(out / "baseline"), load_run(out / "candidate")
    if not stages:
        comparison = compare(baseline, candidate, policy)
    (out / "comparison.json").write_text(json.dumps(comparison.dump(), indent=2) + "\n")
    sizes = {k: v for k, v in (("Reference", spec.baseline.size), ("candidate", spec.candidate.size)) if v}
    report = out / "report.html"
    table = matrix(baseline, {"candidate": candidate}, policy, sizes)
    table.rows[1].comparison, table.rows[1].verdict = comparison, comparison.verdict  # progressive: the full suite's
    report.write_text(render_html(table,
                                  title=f"quantgate: {name}"))
    print(render_comparison(comparison, "table"))
    print(f"\nresults: {out}/baseline, {out}/candidate; comparison: {out}/comparison.json; report: {report}")
    return 0 if comparison.promotable else 1
