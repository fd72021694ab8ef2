"""Shared integration-test harness: a real control plane (quantgate dev) once per session.

Fixtures:
  cluster      session: quantgate.dev.harness.Cluster (.kubeconfig, .server, .api_client(), .kubectl(...),
               .apply(...)). Started in a temp dir and torn down at the end, or reused from
               QUANTGATE_KUBECONFIG (or from KUBECONFIG when it is a `quantgate dev` cluster's).
  namespace    function: a fresh namespace (deleted afterwards).
  sa_client    function: factory (service_account, namespace=None) -> ApiClient acting as that SA.
Helpers (import them): from quantgate.dev.harness import impersonate, wait_for, wait_for_condition, condition

Without the binaries (`make tools`) the tests skip, unless QUANTGATE_REQUIRE_CLUSTER is set (make test
sets it), in which case they fail.
"""

from __future__ import annotations

import atexit
import os

import pytest

from quantgate.dev import harness, paths


def pytest_collection_modifyitems(items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    reuse = harness.reusable_kubeconfig()
    if reuse:
        yield harness.attach(reuse)
        return
    missing = paths.missing_binaries()
    if missing:
        message = f"control-plane binaries missing ({', '.join(missing)} in {paths.bin_dir()}): run `make tools`"
        if os.environ.get("QUANTGATE_REQUIRE_CLUSTER"):
            pytest.fail(message)
        pytest.skip(message)
    started = harness.start(tmp_path_factory.mktemp("cluster") / "dev")
    atexit.register(harness.stop, started)  # also on an interrupted session
    try:
        yield started
    finally:
        harness.stop(started)


@pytest.fixture
def namespace(cluster):
    name = harness.create_namespace(cluster)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def sa_client(cluster, namespace):
    clients = []

    def make(service_account: str, ns: str | None = None):
        client = harness.impersonate(cluster, ns or namespace, service_account)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
