"""Thin I/O edge: every Kubernetes call the reconciler makes, and nothing else.

Kept as one small class so the reconciler stays plain logic and the RBAC the operator
needs can be read off this file (see manifests/rbac/operator.yaml).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from quantgate.api.matrix import PLURAL as MATRIX_PLURAL
from quantgate.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION, SecretKeyRef
from quantgate.k8s import names
from quantgate.k8s.endpoints import KSERVE_GROUP, KSERVE_PLURAL, KSERVE_VERSION

log = logging.getLogger("quantgate.cluster")


class Conflict(Exception):
    """The object changed since we read it (optimistic concurrency): re-read and retry."""


def _absent(exc: ApiException) -> bool:
    return exc.status == 404


def _json(response) -> dict:
    """Raw JSON of a `_preload_content=False` call: the generated model classes cost ~10x more
    CPU to build than the dict, and the reconciler only wants dicts."""
    return json.loads(response.data)


class Cluster:
    def __init__(self, api: client.ApiClient):
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.events = client.EventsV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)

    # ---- ModelEvaluations ------------------------------------------------------------
    def get_evaluation(self, namespace: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if _absent(exc):
                return None
            raise

    def evaluation_pages(self, namespaces: list[str] | None = None, limit: int = 100):
        """Every evaluation in these namespaces (all: empty), one page of at most `limit` at a
        time (the periodic resync: with 1,000 evaluations holding verdicts, a single list would
        hold every full body at once)."""
        for ns in namespaces or [None]:
            token = None
            while True:
                kwargs = {"limit": limit, **({"_continue": token} if token else {})}
                if ns is None:
                    page = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)
                else:
                    page = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, **kwargs)
                yield page.get("items") or []
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break

    def patch_status(self, body: dict, status_patch: dict) -> dict:
        """Merge-patch status, guarded by the resourceVersion we read (Conflict if it moved)."""
        meta = body["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status_patch}
        try:
            return self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch
            )
        except ApiException as exc:
            if exc.status in (409, 404):
                raise Conflict(f"{meta['namespace']}/{meta['name']} changed") from None
            raise

    # ---- ModelEvaluationMatrices and their child ModelEvaluations -------------------------
    def get_matrix(self, namespace: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, MATRIX_PLURAL, name)
        except ApiException as exc:
            if _absent(exc):
                return None
            raise

    def list_matrices(self, namespaces: list[str] | None = None) -> list[dict]:
        """Every matrix in these namespaces (all: empty): the periodic resync (a few per namespace)."""
        items: list[dict] = []
        for ns in namespaces or [None]:
            if ns is None:
                items += self.custom.list_cluster_custom_object(GROUP, VERSION, MATRIX_PLURAL).get("items") or []
            else:
                items += self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, MATRIX_PLURAL).get(
                    "items") or []
        return items

    def patch_matrix_status(self, body: dict, status_patch: dict) -> dict:
        """Merge-patch a matrix's status, guarded by the resourceVersion we read."""
        meta = body["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status_patch}
        try:
            return self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], MATRIX_PLURAL, meta["name"], patch)
        except ApiException as exc:
            if exc.status in (409, 404):
                raise Conflict(f"{meta['namespace']}/{meta['name']} changed") from None
            raise

    def create_evaluation(self, body: dict) -> dict | None:
        """Create a child ModelEvaluation; None when one of that name exists (the caller re-reads)."""
        try:
            return self.custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"],
                                                               PLURAL, body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def delete_evaluation(self, namespace: str, name: str, uid: str) -> None:
        """Delete a child of a matrix whose candidate left it or changed (only that object: UID precondition)."""
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                        body={"preconditions": {"uid": uid}})
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def evaluations_labeled(self, namespace: str, selector: str) -> list[dict]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                         label_selector=selector).get("items") or []

    # ---- Jobs ------------------------------------------------------------------------
    def get_job(self, namespace: str, name: str) -> dict | None:
        try:
            return _json(self.batch.read_namespaced_job(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _absent(exc):
                return None
            raise

    def create_job(self, job: dict) -> bool:
        """Create if absent; False when it already existed (a restart, a retried reconcile)."""
        try:
            self.batch.create_namespaced_job(job["metadata"]["namespace"], job, _preload_content=False)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def jobs_of(self, namespace: str, evaluation: str) -> list[dict]:
        jobs = self.batch.list_namespaced_job(
            namespace, label_selector=f"{names.MANAGED_BY}={names.MANAGER},{names.LABEL_EVALUATION}={evaluation}",
            _preload_content=False,
        )
        return _json(jobs)["items"]

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a superseded Job and its pods (batch/v1 would orphan pods by default)."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background",
                                             _preload_content=False)
        except ApiException as exc:
            if not _absent(exc):
                raise

    # ---- the egress NetworkPolicy of a code evaluation's Job (quantgate.k8s.egress_policy) ----
    def create_network_policy(self, policy: dict) -> dict | None:
        """Create if absent: None when created, else the object that already holds the name."""
        meta = policy["metadata"]
        try:
            self.networking.create_namespaced_network_policy(meta["namespace"], policy, _preload_content=False)
            return None
        except ApiException as exc:
            if exc.status != 409:
                raise
        return _json(self.networking.read_namespaced_network_policy(meta["name"], meta["namespace"],
                                                                    _preload_content=False))

    def delete_network_policy(self, namespace: str, name: str) -> None:
        try:
            self.networking.delete_namespaced_network_policy(name, namespace, _preload_content=False)
        except ApiException as exc:
            if not _absent(exc):
                raise

    def get_service(self, namespace: str, name: str) -> dict | None:
        """A model endpoint's Service, or None; PermissionError where the operator may not read it."""
        try:
            return _json(self.core.read_namespaced_service(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _absent(exc):
                return None
            if exc.status == 403:
                raise PermissionError(f"the operator may not read Service {namespace}/{name}") from None
            raise

    def endpoint_slices(self, namespace: str, service: str) -> list[dict]:
        """The EndpointSlices of a Service without a selector (its addresses are pinned instead of pods)."""
        try:
            return _json(self.discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"kubernetes.io/service-name={service}", _preload_content=False))["items"]
        except ApiException as exc:
            if exc.status == 403:
                raise PermissionError(f"the operator may not list EndpointSlices in {namespace}") from None
            raise

    def apiserver_slices(self) -> list[dict]:
        """The API server's addresses: EndpointSlice `kubernetes` in `default` (the apiserver writes it)."""
        try:
            return [_json(self.discovery.read_namespaced_endpoint_slice("kubernetes", "default",
                                                                        _preload_content=False))]
        except ApiException as exc:
            if _absent(exc):
                return []
            if exc.status == 403:
                raise PermissionError("the operator may not read EndpointSlice default/kubernetes") from None
            raise

    # ---- dependencies ----------------------------------------------------------------
    def get_isvc(self, namespace: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, namespace,
                                                            KSERVE_PLURAL, name)
        except ApiException as exc:
            if _absent(exc):
                return None
            raise

    def secret_value(self, namespace: str, ref: SecretKeyRef) -> str | None:
        """The key's value, or None when the Secret or key is missing. Never logged."""
        try:
            secret = _json(self.core.read_namespaced_secret(ref.name, namespace, _preload_content=False))
        except ApiException as exc:
            if _absent(exc):
                return None
            raise
        raw = (secret.get("data") or {}).get(ref.key)
        return base64.b64decode(raw).decode() if raw is not None else None

    def configmap_value(self, namespace: str, name: str, key: str) -> str | None:
        """A ConfigMap key's text (CA bundles), or None when the ConfigMap or key is missing."""
        try:
            cm = _json(self.core.read_namespaced_config_map(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _absent(exc):
                return None
            raise
        return (cm.get("data") or {}).get(key)

    # ---- results ---------------------------------------------------------------------
    def cached_baseline(self, namespace: str, key: str) -> dict | None:
        """A baseline cache entry with this key that the operator itself wrote, as {name, uid,
        sha256}: one listed (name and UID) in the status evidence of the evaluation it names as
        its source. Anything else carrying the labels is ignored (quantgate.k8s.trust; the
        payload's SHA-256 is checked again when the results are read)."""
        from quantgate.k8s import trust

        cms = _json(self.core.list_namespaced_config_map(
            namespace,
            label_selector=f"{names.LABEL_RESULTS}=true,{names.LABEL_ROLE}=baseline,{names.LABEL_BASELINE_KEY}={key},"
                           f"{trust.LABEL_CACHE}=true",
            _preload_content=False,
        ))["items"]
        live = [c["metadata"] for c in cms if not c["metadata"].get("deletionTimestamp")]
        for meta in sorted(live, key=lambda m: (m["creationTimestamp"], m["name"])):
            source = (meta.get("annotations") or {}).get(trust.ANN_SOURCE)
            entry = trust.vouched(self.get_evaluation(namespace, source) if source else None, meta["name"],
                                  meta["uid"])
            if entry is not None:
                return entry
            log.warning("%s/%s: ignoring baseline cache entry %s: not vouched for by an operator-written status",
                        namespace, source, meta["name"])
        return None

    def configmap(self, namespace: str, name: str) -> dict | None:
        try:
            return _json(self.core.read_namespaced_config_map(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _absent(exc):
                return None
            raise

    def create_configmaps(self, cms: list[dict]) -> None:
        """Create each in order; one that already exists is left as it is (the caller re-reads)."""
        for cm in cms:
            try:
                self.core.create_namespaced_config_map(cm["metadata"]["namespace"], cm, _preload_content=False)
            except ApiException as exc:
                if exc.status != 409:
                    raise

    def pod(self, namespace: str, name: str) -> dict | None:
        """A runner pod (the creator of a results ConfigMap), or None."""
        try:
            return _json(self.core.read_namespaced_pod(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _absent(exc):
                return None
            raise

    # ---- events ----------------------------------------------------------------------
    def event(self, body: dict, type_: str, reason: str, note: str) -> None:
        meta = body["metadata"]
        event = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "eventTime": _micro_now(),
            "reportingController": "quantgate.io/operator",
            "reportingInstance": "quantgate-operator",
            "action": "Evaluate",
            "reason": reason,
            "type": type_,
            "note": note[:1024],
            "regarding": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta["name"],
                          "namespace": meta["namespace"], "uid": meta["uid"]},
        }
        try:
            self.events.create_namespaced_event(meta["namespace"], event, _preload_content=False)
        except ApiException as exc:  # an event is best effort; the status is the record
            log.warning("could not post event %s for %s/%s: HTTP %s", reason, meta["namespace"], meta["name"],
                        exc.status)


def _micro_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
