"""Kubernetes API client configuration: in-cluster when running in a pod, else kubeconfig."""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def api_client():
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # the operator's handlers run in up to 32 threads: one pooled connection each
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def core_v1():
    from kubernetes import client

    return client.CoreV1Api(api_client())


def batch_v1():
    from kubernetes import client

    return client.BatchV1Api(api_client())


def custom_objects():
    from kubernetes import client

    return client.CustomObjectsApi(api_client())
