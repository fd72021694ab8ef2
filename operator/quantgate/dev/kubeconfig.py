"""Kubeconfig files (self-contained: certificates embedded, so the file can be copied)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def build(server: str, ca_cert: Path, user: str, *, cert: Path | None = None,
          key: Path | None = None, token: str | None = None, namespace: str | None = None) -> dict:
    """A one-context kubeconfig for `user`, authenticating by client cert or bearer token."""
    credentials: dict = {}
    if cert and key:
        credentials = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    if token:
        credentials["token"] = token
    context = {"cluster": "quantgate-dev", "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "quantgate-dev",
                      "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "quantgate-dev", "context": context}],
        "current-context": "quantgate-dev",
    }


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
