"""Verify results before deciding (pure): who made a results ConfigMap, for which Job, how big,
and whether it describes what the spec asked for.

Every function takes the objects as read from the API (dicts) and either returns what was
verified or raises `Untrusted` naming the check that failed. The reconciler turns that into
phase Failed, reason ResultsUntrusted — never a verdict. The checks, in order:

* ``immutable``   every ConfigMap of the payload is immutable (its data cannot change later);
* ``owner``       owned by the runner Job of this generation (ownerReference UID);
* ``job``         labelled with that Job's name and the role, named after the Job;
* ``creator``     annotated with the pod that created it, and that pod (read from the API)
                  has this UID and is controlled by the Job (the admission policy makes the
                  annotation match the creator's bound ServiceAccount token);
* ``created``     created no earlier than the Job;
* ``size``        the stored payload and its decompressed form stay within the limits
                  (checked before anything is decompressed past the limit);
* ``checksum``    SHA-256 of the reassembled payload matches the head's annotation;
* ``format``      gzip of a JSON object in the compact format;
* ``model`` / ``tasks`` / ``limit`` / ``stage``  the run block the runner recorded matches the
                  spec (a progressive stage's Job: the stage's share of the documents), and
                  every planned task has a score.

Reused baselines (the baseline cache, `baseline.resultsFrom`) are trusted only through a
status the operator wrote: `reused_entry` accepts a ConfigMap whose name, UID and SHA-256 are
listed in the evidence of the evaluation that produced it.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime

from quantgate.k8s import names
from quantgate.k8s.results_channel import ANN_PARTS, ANN_POD_NAME, ANN_POD_UID, ANN_SHA256, KEY, LABEL_JOB, ResultsError

ANN_SOURCE = "quantgate.io/source-evaluation"  # on operator-written baseline cache entries
LABEL_CACHE = "quantgate.io/cache"


class Untrusted(ResultsError):
    """A results payload failed a trust check; `check` names which one."""

    def __init__(self, check: str, detail: str):
        super().__init__(f"{check}: {detail}")
        self.check = check


@dataclass(frozen=True)
class Limits:
    """Bytes a results payload may occupy stored (gzip) and decompressed (JSON)."""

    stored: int = 16 * 1024 * 1024
    decompressed: int = 128 * 1024 * 1024


@dataclass(frozen=True)
class Expected:
    """What the spec asked a role to run (model: None when the spec leaves it to discovery)."""

    model: str | None
    tasks: tuple[tuple[str, int | None, int | None], ...]  # (name, shots, limit); shots None: the task's own
    fraction: float | None = None  # a progressive stage's share of every task (None: every document)


@dataclass
class Verified:
    """A payload that passed every check, and what the evidence records about it."""

    compact: dict
    sha256: str
    objects: list[dict] = field(default_factory=list)  # [{name, uid}] head first

    @property
    def run(self) -> dict:
        return self.compact.get("run") or {}


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def stored_size(cms: list[dict]) -> int:
    return sum(len(v) for cm in cms for v in (cm.get("binaryData") or {}).values())


def part_count(head: dict, limits: Limits, part_bytes: int) -> int:
    """The head's part count, refused before any part is fetched when it cannot fit the limit."""
    raw = (_meta(head).get("annotations") or {}).get(ANN_PARTS, "1")
    if not raw.isdigit() or int(raw) < 1:
        raise Untrusted("format", f"malformed part count {raw[:20]!r}")
    count = int(raw)
    if (count - 1) * part_bytes > limits.stored:
        raise Untrusted("size", f"{count} parts exceed the stored limit of {limits.stored} bytes")
    return count


def check_provenance(cm: dict, role: str, job: dict, pods: dict[str, dict | None]) -> None:
    """One ConfigMap of a Job's results: immutable, owned by and named for the Job, made by its pod.
    `pods`: the pods named by the ConfigMaps' annotations, as read (None: not found)."""
    meta, jmeta = _meta(cm), _meta(job)
    name, job_name, job_uid = meta.get("name", "?"), jmeta.get("name"), jmeta.get("uid")
    if cm.get("immutable") is not True:
        raise Untrusted("immutable", f"ConfigMap {name} is not immutable")
    owners = meta.get("ownerReferences") or []
    if not any(o.get("kind") == "Job" and o.get("uid") == job_uid and o.get("name") == job_name for o in owners):
        raise Untrusted("owner", f"ConfigMap {name} is not owned by runner Job {job_name} (uid {job_uid})")
    labels = meta.get("labels") or {}
    if labels.get(LABEL_JOB) != job_name or labels.get(names.LABEL_ROLE) != role or \
            not name.startswith(f"{job_name}-{role}"):
        raise Untrusted("job", f"ConfigMap {name} is not labelled and named as {role} results of Job {job_name}")
    ann = meta.get("annotations") or {}
    pod_name, pod_uid = ann.get(ANN_POD_NAME, ""), ann.get(ANN_POD_UID, "")
    # a Job's pods: <job>-<5 random>, or <job>-<index>-<5 random> for an Indexed (sharded) Job
    if not re.fullmatch(re.escape(job_name or "") + r"-([0-9]+-)?[a-z0-9]{5}", pod_name):
        raise Untrusted("creator", f"ConfigMap {name} names creator pod {pod_name[:80]!r}, not a pod of Job {job_name}")
    pod = pods.get(pod_name)
    if pod is None:
        raise Untrusted("creator", f"creator pod {pod_name} of ConfigMap {name} not found")
    pmeta = _meta(pod)
    controlled = any(o.get("kind") == "Job" and o.get("uid") == job_uid and o.get("controller")
                     for o in pmeta.get("ownerReferences") or [])
    if pmeta.get("uid") != pod_uid or not controlled:
        raise Untrusted("creator", f"ConfigMap {name} was not created by a pod of Job {job_name}")
    made, started = _time(meta.get("creationTimestamp")), _time(jmeta.get("creationTimestamp"))
    if made is None or started is None or made < started:
        raise Untrusted("created", f"ConfigMap {name} was created before runner Job {job_name}")


def assemble(head: dict, parts: list[dict], limits: Limits) -> tuple[bytes, str]:
    """Payload and its SHA-256 from the head and its parts (in order)."""
    import base64

    if stored_size([head, *parts]) > limits.stored * 4 // 3 + 4:
        raise Untrusted("size", f"stored results exceed {limits.stored} bytes")
    try:
        payload = b"".join(base64.b64decode((cm.get("binaryData") or {})[KEY], validate=True)
                           for cm in [head, *parts])
    except (KeyError, ValueError):
        raise Untrusted("format", f"ConfigMap {_meta(head).get('name')} lacks base64 binaryData {KEY}") from None
    if len(payload) > limits.stored:
        raise Untrusted("size", f"stored results are {len(payload)} bytes, over the limit of {limits.stored}")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != (_meta(head).get("annotations") or {}).get(ANN_SHA256):
        raise Untrusted("checksum", "SHA-256 of the results does not match the head's annotation")
    return payload, digest


def decode(payload: bytes, limits: Limits, *, shape: str = "tasks") -> dict:
    """gunzip + JSON with the decompressed size bounded: a bomb stops at the limit, never in memory.
    `shape`: the key the document must hold as an object — "tasks" (compact results), "results"
    (a shard's share, quantgate.lmeval.merge) — or "refused" (a runner's refusal, a string)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(payload, limits.decompressed + 1)
        if len(raw) > limits.decompressed or inflater.unconsumed_tail:
            raise Untrusted("size", f"results decompress to more than {limits.decompressed} bytes")
        if not inflater.eof:
            raise Untrusted("format", "results payload is a truncated gzip stream")
    except zlib.error as exc:
        raise Untrusted("format", f"results payload is not gzip: {exc}") from None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Untrusted("format", f"results are not JSON: {str(exc)[:120]}") from None
    want = str if shape == "refused" else dict
    if not isinstance(doc, dict) or not isinstance(doc.get(shape), want):
        raise Untrusted("format", "results are not a quantgate compact document" if shape == "tasks"
                        else f"results are not a quantgate {'shard share' if shape == 'results' else 'refusal'}")
    return doc


def expected(spec, model: str | None, fraction: float | None = None) -> Expected:
    """What a role of `spec` must have run: the runner's task plan (shots, limits, and a progressive
    stage's share of the documents)."""
    from quantgate.lmeval.plan import run_plan

    return Expected(model=model, tasks=run_plan(spec).task_limits(), fraction=fraction)


def check_spec(doc: dict, want: Expected, *, check_model: bool = True) -> None:
    """The run block the runner recorded (and the scores) match what the spec asked."""
    run = doc.get("run")
    if not isinstance(run, dict):
        raise Untrusted("tasks", "results carry no run record (model, task plan)")
    if check_model and want.model is not None and run.get("model") != want.model:
        raise Untrusted("model", f"results are of model {str(run.get('model'))[:80]!r}, the spec asks for {want.model!r}")
    plan = run.get("tasks")
    if not isinstance(plan, list) or not all(isinstance(t, dict) for t in plan):
        raise Untrusted("tasks", "results carry no task plan")
    got = {str(t.get("name")): (t.get("numFewshot"), t.get("limit")) for t in plan}
    fractions = {str(t.get("name")): t.get("fraction") for t in plan}
    for name, shots, limit in want.tasks:
        if name not in got:
            raise Untrusted("tasks", f"results do not include task {name}")
        if shots is not None and got[name][0] != shots:
            raise Untrusted("tasks", f"task {name} ran with {got[name][0]} shots, the spec asks for {shots}")
        if got[name][1] != limit:
            raise Untrusted("limit", f"task {name} ran with limit {got[name][1]}, the spec asks for {limit}")
        if fractions[name] != want.fraction:
            raise Untrusted("stage", f"task {name} ran on share {fractions[name]!r} of its documents, this "
                            f"stage asks for {want.fraction!r}")
        if name not in doc["tasks"]:
            raise Untrusted("tasks", f"results have no score for task {name}")
    extra = sorted(set(got) - {n for n, _, _ in want.tasks})
    if extra:
        raise Untrusted("tasks", f"results include tasks the spec does not ask for: {', '.join(extra[:5])}")


def verify_job_results(head: dict, parts: list[dict], *, role: str, job: dict, pods: dict[str, dict | None],
                       want: Expected, limits: Limits) -> Verified:
    """Every check for one role's results published by this generation's Job."""
    for cm in [head, *parts]:
        check_provenance(cm, role, job, pods)
    payload, digest = assemble(head, parts, limits)
    doc = decode(payload, limits)
    check_spec(doc, want)
    return Verified(doc, digest, [{"name": _meta(c).get("name"), "uid": _meta(c).get("uid")} for c in [head, *parts]])


def evidence_entries(source: dict | None) -> list[dict]:
    """The results objects a (trusted, operator-written) evaluation status vouches for."""
    status = (source or {}).get("status") or {}
    ev = status.get("evidence") or {}
    out = [r for r in ev.get("results") or [] if isinstance(r, dict) and r.get("role") == "baseline"]
    if isinstance(ev.get("baselineCache"), dict):
        out.append(ev["baselineCache"])
    # a progressive evaluation's stage cache entries, listed as each stage was verified
    staged = (status.get("progressive") or {}).get("baselineCache")
    out += [e for e in staged if isinstance(e, dict)] if isinstance(staged, list) else []
    # the baseline it reuses, as vouched for when it chose it (cluster.cached_baseline, reconcile._plan)
    chosen = (status.get("resultsRef") or {}).get("baselineEntry")
    if isinstance(chosen, dict):
        out.append(chosen)
    return out


def vouched(source: dict | None, name: str, uid: str | None = None) -> dict | None:
    """{name, uid, sha256} of results object `name` (with `uid`, when given) as an operator-written
    status lists it; None when it does not."""
    for e in evidence_entries(source):
        if e.get("name") == name and (uid is None or e.get("uid") == uid) and e.get("sha256"):
            return {"name": name, "uid": e.get("uid"), "sha256": e["sha256"]}
    return None


def reused_entry(head: dict, parts: list[dict], source: dict | None, want: Expected | None, limits: Limits, *,
                 shape: str = "tasks", own: dict | None = None) -> Verified:
    """A reused baseline: listed (name, UID, SHA-256) in the producing evaluation's status evidence,
    or in the reusing evaluation's own (`own`), which recorded the entry as vouched for when it chose
    it — so the producer moving on to a new generation does not orphan it. shape "results": a
    progressive stage's run (checked by the caller, quantgate.k8s.verified)."""
    meta = _meta(head)
    vouched = [e for e in evidence_entries(source) + evidence_entries(own)
               if e.get("name") == meta.get("name") and e.get("uid") == meta.get("uid")]
    if not vouched:
        raise Untrusted("reused", f"baseline results {meta.get('name')} are not vouched for by an operator-written "
                        "status (not a verified cache entry)")
    if head.get("immutable") is not True or any(p.get("immutable") is not True for p in parts):
        raise Untrusted("immutable", f"baseline results {meta.get('name')} are not immutable")
    payload, digest = assemble(head, parts, limits)
    if digest not in {e.get("sha256") for e in vouched}:
        raise Untrusted("checksum", f"baseline results {meta.get('name')} changed since they were verified")
    doc = decode(payload, limits, shape=shape)
    if shape == "tasks":
        assert want is not None
        check_spec(doc, want, check_model=False)
    return Verified(doc, digest, [{"name": _meta(c).get("name"), "uid": _meta(c).get("uid")} for c in [head, *parts]])
