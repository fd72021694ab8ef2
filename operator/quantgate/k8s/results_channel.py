"""The results channel: run results travel from the runner Job to the operator in ConfigMaps.

Layout (one role of one Job):

* parts ``<name>-<sha8>-1`` … ``<name>-<sha8>-N`` (only when the payload is larger than
  one ConfigMap may hold; sha8 = start of the payload's SHA-256), then the head ``<name>``
  written LAST. The head carries the part count and the SHA-256 of the whole payload, so
  its existence means "complete", and a part name always means the same bytes.
* create-only: the runner ServiceAccount may create ConfigMaps and nothing else. A retried
  pod that finds a part already there knows it holds the same bytes; one that finds the
  head already there leaves the earlier complete result in place (first complete wins).
* payload = gzip(JSON of ``RunResults.to_compact()``): aggregate scores and
  per-question correctness, not raw samples. Full MMLU (14,042 items) fits in one
  ConfigMap after compression; the split is the safety net for bigger suites.
* inside a runner Job every ConfigMap is owned by that Job (which the ModelEvaluation owns, so
  deleting the evaluation deletes them), labelled with the Job's name and annotated with the
  creating pod's name and UID (from the downward API). The admission policy lets only that
  pod's bound token create them, and the operator verifies all of it before it decides
  (quantgate.k8s.trust). Outside a Job (`quantgate run --publish-configmap` by hand) they are
  owned by the evaluation named in the environment, if any.

Only a runner pod may create these (for its own Job); only the operator reads, changes or deletes them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from pathlib import Path

from quantgate.errors import QuantgateError
from quantgate.k8s import names

KEY = "results.json.gz"
PART_BYTES = 900 * 1024  # ConfigMaps hold at most 1 MiB of data; leave room for metadata
ANN_PARTS = "quantgate.io/parts"
ANN_SHA256 = "quantgate.io/sha256"
ANN_FORMAT = "quantgate.io/format"
ANN_POD_NAME = "quantgate.io/pod-name"  # the creator pod (checked by the admission policy and the operator)
ANN_POD_UID = "quantgate.io/pod-uid"
LABEL_JOB = "quantgate.io/job"
FORMAT = "compact-json+gzip"


class ResultsError(QuantgateError):
    """Results missing, incomplete or malformed (the evaluation fails closed)."""

    exit_code = 3


class RefusedResults(ResultsError):
    """The runner refused to evaluate (e.g. broken prompt log-probabilities) and said why."""


REFUSAL_CHARS = 400


# ---- pure: payload <-> ConfigMaps ------------------------------------------------------


def encode(compact) -> bytes:
    """gzip(JSON) of a compact result document (mtime 0: same input, same bytes)."""
    raw = json.dumps(compact, separators=(",", ":"), sort_keys=True).encode()
    return gzip.compress(raw, compresslevel=6, mtime=0)


def decode(payload: bytes):
    try:
        return json.loads(gzip.decompress(payload))
    except (OSError, EOFError, ValueError) as exc:
        raise ResultsError(f"results payload is not gzip JSON: {exc}") from None


def split(payload: bytes, part_bytes: int = PART_BYTES) -> list[bytes]:
    return [payload[i : i + part_bytes] for i in range(0, len(payload), part_bytes)] or [b""]


def part_name(name: str, index: int, sha256: str) -> str:
    return name if index == 0 else f"{name}-{sha256[:8]}-{index}"


def build_configmaps(
    payload: bytes,
    *,
    namespace: str,
    name: str,
    role: str,
    evaluation: str | None = None,
    owner_uid: str | None = None,
    extra_labels: dict[str, str] | None = None,
    part_bytes: int = PART_BYTES,
    job: tuple[str, str] | None = None,
    pod: tuple[str, str] | None = None,
) -> list[dict]:
    """The ConfigMaps for one payload, parts first and the head (index 0) last. `job` (name, uid):
    published by that Job's pod `pod` (name, uid): owned by the Job, labelled and annotated so the
    admission policy and the operator can check who made them (quantgate.k8s.trust)."""
    chunks = split(payload, part_bytes)
    digest = hashlib.sha256(payload).hexdigest()
    labels = {names.MANAGED_BY: names.MANAGER, names.LABEL_ROLE: role, **(extra_labels or {})}
    if evaluation:
        labels[names.LABEL_EVALUATION] = evaluation
    owners = [names.owner_reference(evaluation, owner_uid)] if evaluation and owner_uid else []
    creator = {}
    if job:
        labels[LABEL_JOB] = job[0]
        owners = [{"apiVersion": "batch/v1", "kind": "Job", "name": job[0], "uid": job[1]}]
    if pod:
        creator = {ANN_POD_NAME: pod[0], ANN_POD_UID: pod[1]}
    out = []
    for index, chunk in enumerate(chunks):
        meta = {"name": part_name(name, index, digest), "namespace": namespace, "labels": dict(labels)}
        if owners:
            meta["ownerReferences"] = owners
        if creator:
            meta["annotations"] = dict(creator)
        if index == 0:
            meta["labels"][names.LABEL_RESULTS] = "true"
            meta["annotations"] = {
                **creator,
                ANN_PARTS: str(len(chunks)),
                ANN_SHA256: digest,
                ANN_FORMAT: FORMAT,
            }
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta,
                "binaryData": {KEY: base64.b64encode(chunk).decode()},
                "immutable": True,
            }
        )
    return out[1:] + out[:1]


def _binary(cm) -> bytes:
    data = (cm.get("binaryData") if isinstance(cm, dict) else cm.binary_data) or {}
    if KEY not in data:
        raise ResultsError(f"results ConfigMap lacks key {KEY}")
    return base64.b64decode(data[KEY])


def _annotations(cm) -> dict:
    meta = cm["metadata"] if isinstance(cm, dict) else cm.metadata
    return (meta.get("annotations") if isinstance(meta, dict) else meta.annotations) or {}


def assemble(head, parts: list) -> bytes:
    """Payload from the head ConfigMap and its parts (in order), checksum verified."""
    ann = _annotations(head)
    try:
        count = int(ann.get(ANN_PARTS, "1"))
    except ValueError:
        raise ResultsError("results ConfigMap has a malformed part count") from None
    if len(parts) != count - 1:
        raise ResultsError(f"results incomplete: {len(parts) + 1} of {count} parts present")
    payload = _binary(head) + b"".join(_binary(p) for p in parts)
    if hashlib.sha256(payload).hexdigest() != ann.get(ANN_SHA256):
        raise ResultsError("results checksum mismatch (corrupt or partial upload)")
    return payload


# ---- I/O: the runner publishes, the operator reads ------------------------------------


def compact_document(run_dir: Path):
    """The compact results plus a `run` record from the run's manifest (model, task plan, versions),
    which the operator checks against the spec."""
    from quantgate.lmeval.results import load_run

    doc = load_run(Path(run_dir)).to_compact()
    manifest = Path(run_dir) / "manifest.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        doc["run"] = {k: info.get(k) for k in ("model", "suite", "localData", "tasks", "lmEvalVersion",
                                               "quantgateVersion", "engine") if info.get(k) is not None}
    return doc


def runner_identity() -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(job name, uid), (pod name, uid) of the runner pod this process runs in (downward API), or None."""
    env = os.environ
    job = (env[names.ENV_JOB_NAME], env[names.ENV_JOB_UID]) if env.get(names.ENV_JOB_NAME) and \
        env.get(names.ENV_JOB_UID) else None
    pod = (env[names.ENV_POD_NAME], env[names.ENV_POD_UID]) if env.get(names.ENV_POD_NAME) and \
        env.get(names.ENV_POD_UID) else None
    return job, pod


def publish_run(run_dir: Path, namespace: str, name: str, role: str) -> None:
    """Store a complete run's compact results in ConfigMap(s) ``namespace/name``.

    Called by ``quantgate run --publish-configmap NS/NAME --role R`` inside the
    runner Job. The owner (the ModelEvaluation) comes from the Job's environment
    (QUANTGATE_OWNER_NAME / QUANTGATE_OWNER_UID); outside a Job it is unowned.
    Idempotent: a retried pod finds the ConfigMaps already there and replaces them.
    """
    if role not in names.ROLES:
        raise ValueError(f"role must be one of {names.ROLES}, got {role!r}")
    payload = encode(compact_document(run_dir))
    extra = {}
    if role == "baseline" and os.environ.get(names.ENV_BASELINE_KEY):
        extra[names.LABEL_BASELINE_KEY] = os.environ[names.ENV_BASELINE_KEY]
    env = os.environ
    job, pod = runner_identity()
    cms = build_configmaps(
        payload,
        namespace=namespace,
        name=name,
        role=role,
        evaluation=env.get(names.ENV_OWNER_NAME),
        owner_uid=env.get(names.ENV_OWNER_UID),
        extra_labels=extra,
        job=job,
        pod=pod,
    )
    from quantgate.k8s.client import core_v1

    write_configmaps(core_v1(), cms)


def publish_refusal(namespace: str, name: str, role: str, message: str) -> None:
    """Store, in place of results, why the runner refused to evaluate (one line): the operator
    fails the evaluation closed with this reason instead of a bare "Job failed"."""
    if role not in names.ROLES:
        raise ValueError(f"role must be one of {names.ROLES}, got {role!r}")
    from quantgate.core.runs import COMPACT_VERSION

    payload = encode({"v": COMPACT_VERSION, "refused": " ".join(message.split())[:REFUSAL_CHARS]})
    job, pod = runner_identity()  # stamped like results: the operator reads it only through the trust checks
    cms = build_configmaps(payload, namespace=namespace, name=name, role=role,
                           evaluation=os.environ.get(names.ENV_OWNER_NAME),
                           owner_uid=os.environ.get(names.ENV_OWNER_UID), extra_labels={}, job=job, pod=pod)
    from quantgate.k8s.client import core_v1

    write_configmaps(core_v1(), cms)


def write_configmaps(core, cms: list[dict]) -> None:
    """Create each ConfigMap in order (parts, then the head); one that exists is kept (see module doc)."""
    from kubernetes.client.exceptions import ApiException

    for cm in cms:
        try:
            core.create_namespaced_config_map(cm["metadata"]["namespace"], cm)
        except ApiException as exc:
            if exc.status != 409:
                raise


def read_payload(core, namespace: str, name: str) -> bytes:
    """The verified payload behind head ConfigMap ``namespace/name`` (ResultsError if absent)."""
    from kubernetes.client.exceptions import ApiException

    def get(n):
        try:
            return core.read_namespaced_config_map(n, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise ResultsError(f"results ConfigMap {namespace}/{n} not found") from None
            raise

    head = get(name)
    ann = _annotations(head)
    try:
        count = int(ann.get(ANN_PARTS, "1"))
    except ValueError:
        raise ResultsError("results ConfigMap has a malformed part count") from None
    parts = [get(part_name(name, i, ann.get(ANN_SHA256, ""))) for i in range(1, count)]
    return assemble(head, parts)


def read_compact(core, namespace: str, name: str):
    return decode(read_payload(core, namespace, name))


def read_results(core, namespace: str, name: str):
    """The RunResults published under ``namespace/name`` (ResultsError when missing or malformed)."""
    from quantgate.core.runs import RunResults

    compact = read_compact(core, namespace, name)
    if isinstance(compact, dict) and isinstance(compact.get("refused"), str):
        # written by the runner ServiceAccount: one line, bounded, never trusted as more than text
        raise RefusedResults(" ".join(compact["refused"].split())[:REFUSAL_CHARS])
    try:
        return RunResults.from_compact(compact)
    except QuantgateError:
        raise
    except Exception as exc:  # malformed document: fail closed with a readable reason
        raise ResultsError(f"results in {namespace}/{name} are malformed: {exc}") from None
