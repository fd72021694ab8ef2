"""Which CA bundle an endpoint is verified with, and the runner's share of it (pure functions).

A model source's own caBundle wins; otherwise an https endpoint gets the chart-wide default
(settings.ca_bundle_configmap, a ConfigMap of that name in the evaluation's namespace, as
trust-manager or OpenShift's CA injection distribute them); otherwise the system CAs. The
runner reads the bundle from a ConfigMap volume at CA_DIR/<role>/ca.crt.
"""

from __future__ import annotations

from quantgate.api.v1alpha1 import ConfigMapKeyRef
from quantgate.k8s.endpoints import Resolved
from quantgate.k8s.settings import Settings

CA_DIR = "/etc/quantgate/ca"
CA_FILE = "ca.crt"


def effective_ca(model: Resolved, settings: Settings) -> ConfigMapKeyRef | None:
    if model.url is None or model.insecure:
        return None
    if model.ca_bundle is not None:
        return model.ca_bundle
    if settings.ca_bundle_configmap and model.url.lower().startswith("https://"):
        return ConfigMapKeyRef(name=settings.ca_bundle_configmap, key=settings.ca_bundle_key or CA_FILE)
    return None


def runner_args(model: Resolved, settings: Settings, role: str) -> list[str]:
    if model.insecure:
        return ["--insecure-skip-verify"]
    return ["--ca-bundle", f"{CA_DIR}/{role}/{CA_FILE}"] if effective_ca(model, settings) else []


def volume(model: Resolved, settings: Settings, role: str) -> tuple[dict, dict] | None:
    """(pod volume, container mount) of the role's CA bundle, or None."""
    ca = effective_ca(model, settings)
    if ca is None:
        return None
    name = f"ca-{role}"
    return ({"name": name, "configMap": {"name": ca.name, "items": [{"key": ca.key, "path": CA_FILE}]}},
            {"name": name, "mountPath": f"{CA_DIR}/{role}", "readOnly": True})
