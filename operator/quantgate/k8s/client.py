"""Kubernetes API client configuration: in-cluster when running in a pod, else kubeconfig."""

from __future__ import annotations

import os
import threading
import time
from functools import lru_cache


@lru_cache(maxsize=1)
def api_client(pool: int = 256):
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # the operator's reconciles run in `pool` threads: one pooled connection each
    configuration.connection_pool_maxsize = pool
    if configuration.refresh_api_key_hook is not None:
        configuration.refresh_api_key_hook = _at_most_every(REFRESH_S, configuration.refresh_api_key_hook)
    return client.ApiClient(configuration)


# The client calls its credential refresh hook before every request; for a kubeconfig token
# that re-applies the whole kubeconfig each time (about a tenth of the operator's CPU under a
# profiler in the operator bench). Credentials that expire are renewed minutes before expiry (the loader's own 5-minute
# margin; in-cluster tokens are re-read every minute), so once a minute is enough.
REFRESH_S = 60.0


def _at_most_every(seconds: float, hook):
    lock = threading.Lock()
    last = [float("-inf")]

    def refresh(configuration) -> None:
        with lock:
            if time.monotonic() - last[0] < seconds:
                return
            hook(configuration)
            configuration.refresh_api_key_hook = refresh  # the kubeconfig loader re-installs its own
            last[0] = time.monotonic()
    return refresh


def core_v1():
    from kubernetes import client

    return client.CoreV1Api(api_client())
