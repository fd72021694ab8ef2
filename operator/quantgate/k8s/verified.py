"""Read a finished Job's results through the trust checks, and record the evidence.

`gather` is the operator's one way to results: it fetches the ConfigMaps and the creator
pods, runs quantgate.k8s.trust on them, writes the baseline cache entry (a copy the operator
makes of verified baseline results, vouched for by this evaluation's status evidence) and
returns the decoded runs with `status.evidence`. Anything that fails a check raises
trust.Untrusted; missing objects raise ResultsError (as before).
"""

from __future__ import annotations

from dataclasses import dataclass

from quantgate.k8s import names, stages, trust
from quantgate.k8s.results_channel import ANN_SHA256, PART_BYTES, ResultsError, build_configmaps, encode, part_name


@dataclass
class Outcome:
    baseline: object  # RunResults
    candidate: object
    evidence: dict
    plan: list | None = None  # the baseline's task plan as its runner recorded it (a stage's document counts)


def limits_of(settings) -> trust.Limits:
    return trust.Limits(stored=settings.results_max_bytes, decompressed=settings.results_max_decompressed_bytes)


def _read_all(cluster, ns: str, name: str, limits: trust.Limits) -> tuple[dict, list[dict]]:
    head = cluster.configmap(ns, name)
    if head is None:
        raise ResultsError(f"results ConfigMap {ns}/{name} not found")
    count = trust.part_count(head, limits, PART_BYTES)
    sha = (head["metadata"].get("annotations") or {}).get(ANN_SHA256, "")
    parts = []
    for i in range(1, count):
        part = cluster.configmap(ns, part_name(name, i, sha))
        if part is None:
            raise ResultsError(f"results incomplete: part {i} of {count} of {ns}/{name} not found")
        parts.append(part)
    return head, parts


def _model_of(spec, role: str, resolved: str | None) -> str | None:
    source = spec.baseline if role == "baseline" else spec.candidate
    if source.endpoint is not None:
        return source.endpoint.model
    if source.inference_service_ref is not None:
        return source.inference_service_ref.model or source.inference_service_ref.name
    if source.vllm is not None:
        return None  # the runner records the path inside the pod (PVC mount), not the spec's
    return resolved


def _container(pod: dict | None, role: str) -> tuple[str | None, str | None]:
    if pod is None:
        return None, None
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    image = next((c.get("image") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if c.get("name") == role), None)
    image_id = next((c.get("imageID") or None for c in (status.get("containerStatuses") or [])
                     + (status.get("initContainerStatuses") or []) if c.get("name") == role), None)
    return image, image_id


def _entry(role: str, name: str, v: trust.Verified, *, reused: bool, pod: dict | None = None) -> dict:
    image, image_id = _container(pod, role)
    run = v.run
    out = {"role": role, "name": name, "uid": v.objects[0]["uid"], "sha256": v.sha256,
           "objects": v.objects, "reused": reused,
           "lmEvalVersion": run.get("lmEvalVersion"), "quantgateVersion": run.get("quantgateVersion")}
    if pod is not None:
        out.update({"pod": pod["metadata"]["name"], "image": image, "imageID": image_id})
    return {k: v for k, v in out.items() if v is not None}


def _from_compact(doc: dict, where: str):
    from quantgate.errors import QuantgateError
    from quantgate.core.runs import RunResults

    try:
        return RunResults.from_compact(doc)
    except QuantgateError:
        raise
    except Exception as exc:  # malformed document: fail closed with a readable reason
        raise trust.Untrusted("format", f"results in {where} are malformed: {str(exc)[:160]}") from None


def _job_role(cluster, ns: str, name: str, role: str, job: dict, want: trust.Expected,
              limits: trust.Limits) -> tuple[trust.Verified, dict | None]:
    head, parts = _read_all(cluster, ns, name, limits)
    pod_names = {(c["metadata"].get("annotations") or {}).get(trust.ANN_POD_NAME, "") for c in [head, *parts]}
    pods = {p: cluster.pod(ns, p) for p in pod_names if p.startswith(job["metadata"]["name"] + "-")}
    verified = trust.verify_job_results(head, parts, role=role, job=job, pods=pods, want=want, limits=limits)
    creator = pods.get((head["metadata"].get("annotations") or {}).get(trust.ANN_POD_NAME, ""))
    return verified, creator


def _job_role_sharded(cluster, ns: str, name: str, role: str, job: dict, want: trust.Expected,
                      limits: trust.Limits, count: int) -> tuple[trust.Verified, dict | None]:
    """A sharded Job's role: every shard's ConfigMaps pass the same provenance and size checks as
    an unsharded run's, the shares are merged (quantgate.lmeval.merge) and the merged document,
    with the run record of the shards' manifests, is checked against the spec. `sha256` is the
    digest of the merged compact payload; `objects` lists every shard's objects."""
    import tempfile
    from pathlib import Path

    from quantgate.errors import QuantgateError
    from quantgate.k8s.shard_channel import shard_name
    from quantgate.lmeval.merge import RUN_RECORD, merge_payloads

    payloads, objects, creator = [], [], None
    for index in range(count):
        v, pod = _job_role_raw(cluster, ns, shard_name(name, index), role, job, limits, "results")
        payloads.append(v.compact)
        objects += v.objects
        creator = creator or pod
    manifest = payloads[0].get("manifest") if isinstance(payloads[0], dict) else None
    try:
        with tempfile.TemporaryDirectory(prefix="quantgate-merge-") as work:
            compact = merge_payloads(payloads, Path(work)).to_compact()
    except (QuantgateError, KeyError, TypeError, ValueError) as exc:
        raise trust.Untrusted("format", f"shards of {ns}/{name} cannot be merged: {str(exc)[:160]}") from None
    if isinstance(manifest, dict):
        compact["run"] = {k: manifest.get(k) for k in RUN_RECORD if manifest.get(k) is not None}
    payload = encode(compact)
    import hashlib

    doc = trust.decode(payload, limits)  # the same bounded round trip an unsharded run's results take
    trust.check_spec(doc, want)
    return trust.Verified(doc, hashlib.sha256(payload).hexdigest(), objects), creator


def _job_role_raw(cluster, ns: str, name: str, role: str, job: dict, limits: trust.Limits,
                  shape: str) -> tuple[trust.Verified, dict | None]:
    """One shard's ConfigMaps: provenance, size and checksum checked; the payload decoded (bounded)."""
    head, parts = _read_all(cluster, ns, name, limits)
    pod_names = {(c["metadata"].get("annotations") or {}).get(trust.ANN_POD_NAME, "") for c in [head, *parts]}
    pods = {p: cluster.pod(ns, p) for p in pod_names if p.startswith(job["metadata"]["name"] + "-")}
    for cm in [head, *parts]:
        trust.check_provenance(cm, role, job, pods)
    payload, digest = trust.assemble(head, parts, limits)
    doc = trust.decode(payload, limits, shape=shape)
    objects = [{"name": c["metadata"].get("name"), "uid": c["metadata"].get("uid")} for c in [head, *parts]]
    creator = pods.get((head["metadata"].get("annotations") or {}).get(trust.ANN_POD_NAME, ""))
    return trust.Verified(doc, digest, objects), creator


def _stage_job(cluster, body: dict, job: dict, stage: int) -> dict:
    """This generation's runner Job of `stage` (the current one: `job`), checked to be the one the
    operator made for it (labels of this evaluation, generation and stage; controlled by it)."""
    meta = body["metadata"]
    gen = meta.get("generation", 1)
    name = names.job_name(meta["name"], gen, stage)
    if name == job["metadata"]["name"]:
        return job
    found = cluster.get_job(meta["namespace"], name)
    if found is None:
        raise ResultsError(f"stage {stage}'s runner Job {meta['namespace']}/{name} not found: its documents "
                           "cannot be merged with this stage's")
    labels = found["metadata"].get("labels") or {}
    owned = any(o.get("uid") == meta.get("uid") and o.get("controller")
                for o in found["metadata"].get("ownerReferences") or [])
    if (labels.get(names.LABEL_EVALUATION), labels.get(names.LABEL_GENERATION), labels.get(names.LABEL_STAGE)) != \
            (meta["name"], str(gen), str(stage)) or not owned:
        raise trust.Untrusted("job", f"Job {name} is not the runner Job of stage {stage} of this evaluation's "
                              f"generation {gen}")
    return found


def _check_piece(doc: dict, where: str, model: str | None, fraction: float, after: float) -> None:
    """A stage run's own record: the documents stage `fraction` adds after `after`, of `model`."""
    manifest = doc.get("manifest") if isinstance(doc.get("manifest"), dict) else {}
    entry = manifest.get("stage")
    if not isinstance(entry, dict) or (entry.get("fraction"), entry.get("after")) != (fraction, after):
        got = (entry.get("fraction"), entry.get("after")) if isinstance(entry, dict) else None
        raise trust.Untrusted("stage", f"{where} holds the documents of stage share {got[0] if got else None!r} "
                              f"after {got[1] if got else None!r}, not {fraction!r} after {after!r}")
    if model is not None and manifest.get("model") != model:
        raise trust.Untrusted("model", f"{where} is of model {str(manifest.get('model'))[:80]!r}, the spec asks "
                              f"for {model!r}")


def merged_stages(pieces: list[trust.Verified], where: str, limits: trust.Limits) -> tuple[dict, str]:
    """The compact document (decoded through the bounded round trip) and its SHA-256 of stage runs
    1..k merged (quantgate.lmeval.stage_delta); Untrusted when they do not form one run."""
    from quantgate.errors import QuantgateError
    from quantgate.lmeval.stage_delta import merged_stages_compact

    try:
        compact = merged_stages_compact([p.compact for p in pieces])
    except (QuantgateError, KeyError, TypeError, ValueError) as exc:
        raise trust.Untrusted("format", f"the stages of {where} cannot be merged: {str(exc)[:160]}") from None
    import hashlib

    payload = encode(compact)
    return trust.decode(payload, limits), hashlib.sha256(payload).hexdigest()


def _stage_role(cluster, body: dict, spec, job: dict, role: str, want: trust.Expected, limits: trust.Limits,
                stage: int) -> tuple[trust.Verified, list[dict], dict | None, trust.Verified | None]:
    """A progressive stage's role: the stage runs of stages 1..`stage` (each from this generation's
    Job of that stage, through the same checks as any Job's results, or — the baseline — from the
    cache entry that Job reused), merged into the results of stage `stage` and checked against the
    spec. Returns (merged, evidence pieces, this stage's creator pod, this stage's own run)."""
    ns = body["metadata"]["namespace"]
    runs, pieces, objects, creator, own = [], [], [], None, None
    for j in range(1, stage + 1):
        job_j = _stage_job(cluster, body, job, j)
        after, fraction = stages.bounds(spec.progressive.stages, j)
        reused = (job_j["metadata"].get("annotations") or {}).get(names.ANN_BASELINE_RESULTS) \
            if role == "baseline" else None
        if reused:
            head, parts = _read_all(cluster, ns, reused, limits)
            source = cluster.get_evaluation(ns, (head["metadata"].get("annotations") or {}).get(trust.ANN_SOURCE, ""))
            v, name = trust.reused_entry(head, parts, source, None, limits, shape="results", own=body), reused
        else:
            name = names.results_name(job_j["metadata"]["name"], role)
            v, pod = _job_role_raw(cluster, ns, name, role, job_j, limits, "results")
            if j == stage:
                creator, own = pod, v
        _check_piece(v.compact, f"{ns}/{name}", None if reused else want.model, fraction, after)
        runs.append(v)
        objects += v.objects
        pieces.append({"stage": j, "name": name, "uid": v.objects[0]["uid"], "sha256": v.sha256,
                       **({"reused": True} if reused else {})})
    doc, digest = merged_stages(runs, f"{ns}/{names.results_name(job['metadata']['name'], role)}", limits)
    trust.check_spec(doc, want, check_model=pieces[-1].get("reused") is None)
    return trust.Verified(doc, digest, objects), pieces, creator, own


def _reused(cluster, ns: str, name: str, spec, want: trust.Expected, limits: trust.Limits,
            own: dict) -> trust.Verified:
    head, parts = _read_all(cluster, ns, name, limits)
    source_name = spec.baseline.results_from or (head["metadata"].get("annotations") or {}).get(trust.ANN_SOURCE)
    source = cluster.get_evaluation(ns, source_name) if source_name else None
    return trust.reused_entry(head, parts, source, want, limits, own=own)


def reused_pieces(evidence: dict) -> list[dict]:
    """{name, uid, sha256} of the baseline stage runs other evaluations made that a stage merged."""
    return [{"name": p["name"], "uid": p.get("uid"), "sha256": p["sha256"]}
            for entry in evidence.get("results") or [] if entry.get("role") == "baseline"
            for p in entry.get("pieces") or [] if p.get("reused")]


def _write_cache(cluster, body: dict, job: dict, verified: trust.Verified, limits: trust.Limits) -> dict | None:
    """Copy verified baseline results into an operator-written cache entry; None if none was made."""
    meta, jmeta = body["metadata"], job["metadata"]
    key = (jmeta.get("labels") or {}).get(names.LABEL_BASELINE_KEY)
    if not key:
        return None
    name = f"{jmeta['name']}-cache"
    payload = encode(verified.compact)
    cms = build_configmaps(payload, namespace=meta["namespace"], name=name, role="baseline",
                           evaluation=meta["name"], owner_uid=meta["uid"],
                           extra_labels={names.LABEL_BASELINE_KEY: key, trust.LABEL_CACHE: "true"})
    for cm in cms:
        cm["metadata"].setdefault("annotations", {})[trust.ANN_SOURCE] = meta["name"]
    cluster.create_configmaps(cms)
    head, parts = _read_all(cluster, meta["namespace"], name, limits)
    try:
        _, digest = trust.assemble(head, parts, limits)
    except trust.Untrusted:
        return None
    ann = head["metadata"].get("annotations") or {}
    if ann.get(trust.ANN_SOURCE) != meta["name"] or head.get("immutable") is not True:
        return None  # someone else's object under our name: never vouch for it
    import hashlib

    if digest != hashlib.sha256(payload).hexdigest():
        return None
    return {"role": "baseline", "name": name, "uid": head["metadata"]["uid"], "sha256": digest}


def gather(cluster, body: dict, spec, job: dict, settings, reused: str | None, shards: int = 1,
           stage: int | None = None) -> Outcome:
    """Both roles' results for `job` (this generation's runner Job), verified; see module doc.
    `shards` > 1: an Indexed Job whose roles were published in that many shares (merged here).
    `stage`: `job` runs that progressive stage, adding its documents to the earlier stages' (the
    stage runs 1..stage are merged here; its baseline's own run becomes the stage's cache entry)."""
    fraction = spec.progressive.stages[stage - 1] if stage is not None else None
    ns = body["metadata"]["namespace"]
    job_name = job["metadata"]["name"]
    limits = limits_of(settings)
    runs, entries, cache, plan = {}, [], None, None
    for role in names.ROLES:
        want = trust.expected(spec, _model_of(spec, role, None), fraction)
        if stage is not None:  # a progressive stage: stages 1..stage merged; the baseline's own run is cached
            v, pieces, pod, own = _stage_role(cluster, body, spec, job, role, want, limits, stage)
            name = reused if role == "baseline" and reused else names.results_name(job_name, role)
            entries.append({**_entry(role, name, v, reused=role == "baseline" and bool(reused), pod=pod),
                            "pieces": pieces})
            runs[role] = _from_compact(v.compact, f"{ns}/{name}")
            if role == "baseline":
                plan = v.run.get("tasks")
                if own is not None and settings.baseline_cache:
                    cache = _write_cache(cluster, body, job, own, limits)
            del v
            continue
        if role == "baseline" and reused:
            v = _reused(cluster, ns, reused, spec, want, limits, body)
            entries.append(_entry(role, reused, v, reused=True))
        else:
            name = names.results_name(job_name, role)
            if shards > 1:
                v, pod = _job_role_sharded(cluster, ns, name, role, job, want, limits, shards)
            else:
                v, pod = _job_role(cluster, ns, name, role, job, want, limits)
            entries.append(_entry(role, name, v, reused=False, pod=pod))
        runs[role] = _from_compact(v.compact, f"{ns}/{entries[-1]['name']}")
        if role == "baseline":
            plan = v.run.get("tasks")
        if role == "baseline" and not reused and settings.baseline_cache:
            # a stage's: under its stage key (k8s/stages.py); a sharded run's: its merged results
            cache = _write_cache(cluster, body, job, v, limits)
        del v
    evidence = {"jobName": job_name, "jobUID": job["metadata"].get("uid"), "results": entries}
    if cache:
        evidence["baselineCache"] = cache
    return Outcome(runs["baseline"], runs["candidate"], evidence, plan)


def refusal(cluster, ns: str, refs: dict, roles, job: dict, settings) -> str | None:
    """The one-line reason a failed Job's runner published in place of results (the log-probability
    probe's refusal), if a role's ConfigMap passes every provenance and size check and holds one."""
    from quantgate.k8s.results_channel import REFUSAL_CHARS

    limits = limits_of(settings)
    for role in roles:
        try:
            v, _ = _job_role_raw(cluster, ns, refs[role], role, job, limits, "refused")
        except (trust.Untrusted, ResultsError):
            continue  # absent, someone else's or unreadable: not a refusal we trust
        return f"{role}: {' '.join(v.compact['refused'].split())[:REFUSAL_CHARS]}"
    return None
