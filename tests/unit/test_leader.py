"""Leader election against an in-memory Lease API with resourceVersion checks (the real
apiserver version: tests/integration/test_operator_resilience.py and the chaos test)."""

import json
import time

import pytest
from kubernetes.client.exceptions import ApiException

from quantgate.k8s import leader


class Raw:
    def __init__(self, obj):
        self.data = json.dumps(obj).encode()


class FakeLeases:
    def __init__(self):
        self.lease = None
        self.rv = 0
        self.down = False

    def _check(self):
        if self.down:
            raise ApiException(status=503, reason="Service Unavailable")

    def read_namespaced_lease(self, name, namespace, _preload_content=True):
        self._check()
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return Raw(self.lease)

    def create_namespaced_lease(self, namespace, body, _preload_content=True):
        self._check()
        if self.lease is not None:
            raise ApiException(status=409, reason="Conflict")
        self.rv += 1
        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}

    def replace_namespaced_lease(self, name, namespace, body, _preload_content=True):
        self._check()
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.rv += 1
        self.lease = json.loads(json.dumps(body))
        self.lease["metadata"]["resourceVersion"] = str(self.rv)


@pytest.fixture
def leases(monkeypatch):
    fake = FakeLeases()
    import kubernetes.client

    monkeypatch.setattr(kubernetes.client, "CoordinationV1Api", lambda api: fake)
    return fake


def elector(identity, duration=0.3):
    return leader.LeaderElector(None, "ns", "lease", identity, duration, duration * 2 / 3, duration / 6)


def test_one_holder_at_a_time_and_the_standby_takes_over_once_renewals_stop(leases):
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    assert leases.lease["spec"]["holderIdentity"] == "a"
    assert not b.try_acquire_or_renew()  # held and fresh
    for _ in range(3):  # a keeps renewing: b never sees it expire
        time.sleep(0.15)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    time.sleep(0.35)  # a stopped renewing for longer than the lease duration (b's own clock)
    assert b.try_acquire_or_renew()
    spec = leases.lease["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()  # the old leader cannot take it back


def test_a_restarted_holder_keeps_its_lease_and_a_released_one_is_free_at_once(leases):
    a = elector("a")
    assert a.acquire()
    assert elector("a").try_acquire_or_renew()  # same identity (the same pod, restarted)
    b = elector("b")
    assert not b.try_acquire_or_renew()
    a.release()
    assert leases.lease["spec"]["holderIdentity"] == ""
    assert b.try_acquire_or_renew()


def test_a_leader_that_cannot_renew_gives_up_once_the_renew_deadline_passed(leases):
    a = elector("a", duration=0.6)
    assert a.acquire()
    lost = []
    a.keep(lambda: lost.append(time.monotonic()))
    time.sleep(0.3)
    assert not lost  # renewing fine
    leases.down = True
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lost and lost[0] - a.last_renew >= 0.4  # not before the renew deadline (2/3 of 0.6 s) ...
    assert not a.leading
    a.stop()
