"""Events the process kubelet posts about its pods, as a kubelet's event recorder does: core/v1
Events in the pod's namespace whose involvedObject is the pod (with `spec.containers{name}` as
fieldPath for a container), source component "kubelet" on this node.

A repeat of an event (same pod, container, type, reason and message) bumps the count and
lastTimestamp of the one already posted instead of creating another, as a kubelet's event
correlator does; a new one is named `<pod>.<hex nanoseconds>` like a kubelet's. Posting is best
effort, as on a kubelet: an API error is logged, never raised into the pod's work."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from quantgate.dev.node import now
from quantgate.dev.rest import ApiError

log = logging.getLogger("kubelet")
REMEMBERED = 4096  # events whose count a repeat bumps (a kubelet's correlator keeps as many)


class Recorder:
    def __init__(self, api, node: str):
        self.api, self.node = api, node
        self._lock = threading.Lock()
        self._posted: OrderedDict[tuple, tuple[str, int]] = OrderedDict()  # key -> (event name, count)

    def record(self, pod: dict, container: str | None, type: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        key = (meta["uid"], container, type, reason, message)
        with self._lock:
            name, count = self._posted.pop(key, (None, 0))
            count += 1
            if name is None:
                name = f"{meta['name']}.{time.time_ns():x}"
            self._posted[key] = (name, count)
            while len(self._posted) > REMEMBERED:
                self._posted.popitem(last=False)
        path = f"/api/v1/namespaces/{meta['namespace']}/events"
        stamp = now()
        try:
            if count > 1:
                try:
                    self.api.patch(f"{path}/{name}", {"count": count, "lastTimestamp": stamp})
                    return
                except ApiError as exc:
                    if exc.status != 404:  # gone (events expire): post it again
                        raise
            self.api.post(path, self._event(pod, container, name, type, reason, message, stamp, count))
        except Exception as exc:
            log.warning("event %s %s for pod %s/%s not posted: %s", type, reason, meta["namespace"], meta["name"],
                        exc)

    def _event(self, pod: dict, container: str | None, name: str, type: str, reason: str, message: str,
               stamp: str, count: int) -> dict:
        meta = pod["metadata"]
        involved = {"apiVersion": "v1", "kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                    "uid": meta["uid"]}
        if container is not None:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": meta["namespace"]},
                "involvedObject": involved, "type": type, "reason": reason, "message": message,
                "source": {"component": "kubelet", "host": self.node},
                "reportingComponent": "kubelet", "reportingInstance": self.node,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": count}
