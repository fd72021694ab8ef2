"""`quantgate verify NAMESPACE/NAME`: re-derive a stored verdict from the results it names.

Reads the ModelEvaluation with the current kubeconfig, fetches every results ConfigMap its
status.evidence lists, checks their UIDs and SHA-256 against the evidence, runs the decision
engine on them under the evaluation's spec and compares the outcome with the status. A
progressive verdict (spec.progressive) is re-derived with the stopping rule's look at the
stage status.progressive.stage names, whose share of the documents the results must record;
its evidence lists the stage runs merged into each role's results (pieces), each checked
against its UID and SHA-256 and merged again.

Exit status: 0 the verdict matches its results, 1 it does not (or the results changed or are
gone), 2 bad input (no such evaluation, no verdict or evidence to check, no cluster access).
"""

from __future__ import annotations

import sys

from quantgate.errors import InputError

COMPARED = ("verdict", "promotable", "averageDrop", "decisive", "tasks")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify", help="re-derive a ModelEvaluation's verdict from its stored results",
        description="Fetch the results a ModelEvaluation's status.evidence names (current kubeconfig), check their "
                    "UIDs and SHA-256, re-run the decision and compare it with the status. Exit 0 when it matches, "
                    "1 when it does not, 2 on bad input.")
    p.add_argument("evaluation", metavar="NAMESPACE/NAME", help="the ModelEvaluation to verify")
    p.set_defaults(func=run)


def _target(text: str) -> tuple[str, str]:
    ns, sep, name = text.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise InputError(f"expected NAMESPACE/NAME, got {text!r}")
    return ns, name


def _merged_pieces(cluster, ns: str, entry: dict, limits) -> tuple[dict | None, str | None]:
    """(the merged compact document, None) of the stage runs an evidence entry lists, each checked
    against its own UID and SHA-256 and the merge against the entry's; (None, why) when one differs."""
    from quantgate.k8s import trust
    from quantgate.k8s.verified import _read_all, merged_stages

    runs = []
    for piece in entry["pieces"]:
        head, parts = _read_all(cluster, ns, piece.get("name", ""), limits)
        if head["metadata"].get("uid") != piece.get("uid"):
            return None, f"stage {piece.get('stage')}'s results {piece.get('name')} were replaced since the verdict"
        payload, digest = trust.assemble(head, parts, limits)
        if digest != piece.get("sha256"):
            return None, f"SHA-256 of stage {piece.get('stage')}'s results {piece.get('name')} differs from the evidence"
        runs.append(trust.Verified(trust.decode(payload, limits, shape="results"), digest))
    doc, digest = merged_stages(runs, f"{ns}/{entry.get('name')}", limits)
    if digest != entry.get("sha256"):
        return None, "SHA-256 of the merged stage results differs from the evidence"
    return doc, None


def problems(cluster, body: dict, limits) -> list[str]:
    """Why the status does not follow from its evidence (empty: it does)."""
    from pydantic import ValidationError

    from quantgate.api.v1alpha1 import ModelEvaluationSpec, ModelEvaluationStatus
    from quantgate.decision import compare
    from quantgate.errors import QuantgateError
    from types import SimpleNamespace

    from quantgate.k8s import stages, trust
    from quantgate.k8s.reconcile import policy_of
    from quantgate.k8s.results_channel import ResultsError
    from quantgate.k8s.verified import _read_all
    from quantgate.core.runs import RunResults

    meta, status = body["metadata"], body.get("status") or {}
    where = f"{meta['namespace']}/{meta['name']}"
    if status.get("phase") != "Succeeded" or not status.get("verdict"):
        raise InputError(f"{where} has no verdict to verify (phase {status.get('phase') or 'none'})")
    if status.get("observedGeneration") != meta.get("generation"):
        raise InputError(f"{where}: the status describes generation {status.get('observedGeneration')}, the spec is "
                         f"at {meta.get('generation')}; wait for the new verdict")
    evidence = status.get("evidence") or {}
    entries = {e.get("role"): e for e in evidence.get("results") or [] if isinstance(e, dict)}
    if set(entries) != {"baseline", "candidate"}:
        raise InputError(f"{where} has no status.evidence for both roles (decided by an operator before evidence?)")
    try:
        spec = ModelEvaluationSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise InputError(f"{where}: spec is invalid: {exc.errors()[0].get('msg')}") from None
    try:
        typed = ModelEvaluationStatus.model_validate(status)
    except ValidationError as exc:
        raise InputError(f"{where}: status is invalid: {exc.errors()[0].get('msg')}") from None
    stage = stages.current(spec, typed)
    fraction = spec.progressive.stages[stage - 1] if stage is not None else None
    wrong, runs, plan = [], {}, None
    for role, entry in entries.items():
        try:
            if entry.get("pieces"):  # a progressive stage's results: its stage runs, merged
                doc, problem = _merged_pieces(cluster, meta["namespace"], entry, limits)
                if problem:
                    wrong.append(f"{role}: {problem}")
                    continue
                trust.check_spec(doc, trust.expected(spec, None, fraction), check_model=False)
                plan = doc["run"].get("tasks") if role == "baseline" else plan
                runs[role] = RunResults.from_compact(doc)
                continue
            head, parts = _read_all(cluster, meta["namespace"], entry.get("name", ""), limits)
            uids = [{"name": c["metadata"]["name"], "uid": c["metadata"].get("uid")} for c in [head, *parts]]
            if uids[0]["uid"] != entry.get("uid") or (entry.get("objects") and uids != entry["objects"]):
                wrong.append(f"{role}: results objects were replaced since the verdict (UIDs differ)")
                continue
            _, digest = trust.assemble(head, parts, limits)
            if digest != entry.get("sha256"):
                wrong.append(f"{role}: SHA-256 of the stored results differs from the evidence")
                continue
            doc = trust.decode(trust.assemble(head, parts, limits)[0], limits)
            if stage is not None:  # a progressive verdict: the results of the stage it stopped at
                trust.check_spec(doc, trust.expected(spec, None, fraction), check_model=False)
                plan = doc["run"].get("tasks") if role == "baseline" else plan
            runs[role] = RunResults.from_compact(doc)
        except (ResultsError, QuantgateError) as exc:
            wrong.append(f"{role}: {exc}")
        except Exception as exc:  # a malformed document that still hashes right
            wrong.append(f"{role}: results malformed: {str(exc)[:160]}")
    if wrong:
        return wrong
    try:
        if stage is None:
            derived = compare(runs["baseline"], runs["candidate"], policy_of(spec)).dump()
        else:  # the stopping rule's look at that stage, as the operator took it
            outcome = SimpleNamespace(baseline=runs["baseline"], candidate=runs["candidate"], plan=plan)
            lk = stages.look(outcome, spec, policy_of(spec), stage, where)
            if not lk.stop:
                return [f"progressive: stage {stage} does not settle the verdict: {lk.reason}"]
            derived = stages.outcome(runs["baseline"], runs["candidate"], policy_of(spec), lk, spec).dump()
    except QuantgateError as exc:
        return [f"the stored results do not yield a verdict: {exc}"]
    return [f"{key}: status says {status.get(key)!r}, the results give {derived.get(key)!r}"
            for key in COMPARED if status.get(key) != derived.get(key)]


def run(args) -> int:
    from quantgate.k8s.cluster import Cluster
    from quantgate.k8s.settings import Settings
    from quantgate.k8s.verified import limits_of

    ns, name = _target(args.evaluation)
    try:
        from quantgate.k8s.client import api_client

        cluster = Cluster(api_client(pool=4))
        body = cluster.get_evaluation(ns, name)
    except Exception as exc:  # no kubeconfig, unreachable or refusing apiserver
        raise InputError(f"cannot read ModelEvaluation {ns}/{name}: {str(exc).splitlines()[0][:200]}") from None
    if body is None:
        raise InputError(f"ModelEvaluation {ns}/{name} not found")
    found = problems(cluster, body, limits_of(Settings.from_env()))
    status = body["status"]
    if found:
        print(f"MISMATCH {ns}/{name}: verdict {status['verdict']} does not follow from its stored results")
        for line in found:
            print(f"  - {line}")
        return 1
    sha = {e["role"]: e["sha256"][:12] for e in status["evidence"]["results"]}
    print(f"OK {ns}/{name}: verdict {status['verdict']} (average drop {status.get('averageDrop')}) re-derived from "
          f"Job {status['evidence'].get('jobName')} results (baseline sha256 {sha['baseline']}, "
          f"candidate sha256 {sha['candidate']})")
    sys.stdout.flush()
    return 0
