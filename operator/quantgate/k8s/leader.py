"""Leader election with a coordination.k8s.io/v1 Lease: one active replica, the others standby.

Like client-go's leaderelection: a candidate takes the Lease when it is free, its own, or
expired, and the leader renews it every `retry_s`. Expiry is judged by the candidate's own
clock: a Lease whose record has not changed for `duration_s` since this process first saw it
is expired (clock skew between machines does not matter), as is one whose `renewTime` is
older than twice the duration by the wall clock (so an operator restarting after an outage
does not wait). Every write is an update guarded by the resourceVersion it read, so two
candidates never both win. A leader that cannot renew for `renew_deadline_s` calls
`on_lost` (the operator exits at once: a replica that may have lost the Lease must not write).
A leader that stops cleanly releases the Lease, so a standby takes over at its next try.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

log = logging.getLogger("quantgate.leader")
SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace() -> str:
    try:
        with open(SA_NAMESPACE) as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def default_identity() -> str:
    return socket.gethostname()  # the pod's name: a restarted container keeps it


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.rstrip("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


class LeaderElector:
    def __init__(self, api, namespace: str, name: str, identity: str, duration_s: float = 15.0,
                 renew_deadline_s: float = 10.0, retry_s: float = 2.0):
        from kubernetes import client

        self.api = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration_s, self.renew_deadline_s, self.retry_s = duration_s, renew_deadline_s, retry_s
        self._observed: tuple | None = None  # (record fingerprint, monotonic time first seen)
        self._stop = threading.Event()
        self.leading = False
        self.last_renew = 0.0

    # ---- one attempt --------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One round: True when this process holds the Lease afterwards."""
        from kubernetes.client.exceptions import ApiException

        now = _now()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, now, 0)}
            try:
                self.api.create_namespaced_lease(self.namespace, body, _preload_content=False)
            except ApiException as exc2:
                if exc2.status == 409:
                    return False
                raise
            return True
        import json

        lease = json.loads(lease.data)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        fingerprint = (holder, spec.get("renewTime"), lease["metadata"].get("resourceVersion"))
        mono = time.monotonic()
        if self._observed is None or self._observed[0] != fingerprint:
            self._observed = (fingerprint, mono)
        if holder and holder != self.identity and not self._expired(spec, mono):
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        acquired = _parse(spec.get("acquireTime")) or now
        if holder != self.identity:
            transitions, acquired = transitions + 1, now
        lease["spec"] = self._spec(acquired, now, transitions)
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease, _preload_content=False)
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first
                return False
            raise
        return True

    def _expired(self, spec: dict, mono: float) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.duration_s)
        if mono - self._observed[1] > duration:
            return True
        renewed = _parse(spec.get("renewTime"))
        return renewed is not None and _now() - renewed > timedelta(seconds=2 * duration)

    def _spec(self, acquired: datetime, renewed: datetime, transitions: int) -> dict:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(round(self.duration_s)),
                "acquireTime": _micro(acquired), "renewTime": _micro(renewed), "leaseTransitions": transitions}

    def _round(self) -> bool:
        try:
            return self.try_acquire_or_renew()
        except Exception as exc:
            from quantgate.k8s.workqueue import describe

            hint = (": the operator's ServiceAccount needs get/update/create on this Lease "
                    "(manifests/rbac/operator.yaml, the chart's -leader Role)") if getattr(exc, "status", None) == 403 else ""
            log.warning("lease %s/%s: %s%s", self.namespace, self.name, describe(exc), hint)
            return False

    # ---- the loops ----------------------------------------------------------------------
    def acquire(self) -> bool:
        """Block until this process leads (True) or `stop()` was called (False)."""
        told = False
        while not self._stop.is_set():
            if self._round():
                self.leading, self.last_renew = True, time.monotonic()
                log.info("lease %s/%s acquired by %s", self.namespace, self.name, self.identity)
                return True
            if not told:
                holder = (self._observed or (("?",),))[0][0]
                log.info("standby: lease %s/%s is held by %s; trying every %.0fs", self.namespace, self.name,
                         holder or "?", self.retry_s)
                told = True
            self._stop.wait(self.retry_s)
        return False

    def keep(self, on_lost) -> threading.Thread:
        """Renew every `retry_s` in a daemon thread; `on_lost()` when a renewal fails for
        `renew_deadline_s` or another holder took the Lease."""

        def loop():
            while not self._stop.wait(self.retry_s):
                if self._round():
                    self.last_renew = time.monotonic()
                elif time.monotonic() - self.last_renew > self.renew_deadline_s:
                    self.leading = False
                    log.error("lease %s/%s lost (not renewed for %.3gs): stopping", self.namespace, self.name,
                              self.renew_deadline_s)
                    on_lost()
                    return

        thread = threading.Thread(target=loop, name="lease", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def release(self) -> None:
        """Give the Lease up (clean shutdown): a standby takes it at its next try."""
        self._stop.set()
        if not self.leading:
            return
        self.leading = False
        try:
            import json

            lease = json.loads(self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False).data)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["renewTime"] = _micro(_now() - timedelta(seconds=self.duration_s * 3))
            self.api.replace_namespaced_lease(self.name, self.namespace, lease, _preload_content=False)
            log.info("lease %s/%s released", self.namespace, self.name)
        except Exception as exc:
            from quantgate.k8s.workqueue import describe

            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, describe(exc))
