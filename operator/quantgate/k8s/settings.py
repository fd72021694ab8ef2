"""Operator settings: one dataclass, filled from `quantgate operator` flags or the environment.

Every knob has an environment variable (QUANTGATE_<NAME>) so the Helm chart can set it
without templating arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields


@dataclass
class Settings:
    namespaces: list[str] = field(default_factory=list)  # empty: all namespaces
    runner_image: str = "ghcr.io/quantgate/quantgate:0.1.0"
    runner_service_account: str = "quantgate-runner"
    runner_command: list[str] = field(default_factory=lambda: ["quantgate"])
    max_concurrent: int = 10  # runner Jobs across all evaluations
    endpoint_timeout_s: float = 600.0  # WaitingForEndpoints → Failed after this
    poll_interval_s: float = 2.0  # how often waiting evaluations re-check
    workers: int = 256  # reconcile threads, mostly waiting on the API server (each: one pooled connection)
    preflight_timeout_s: float = 3.0
    preflight_cache_s: float = 10.0  # a successful endpoint preflight is trusted this long
    metrics_port: int = 8080
    metrics_host: str = "0.0.0.0"
    baseline_cache: bool = True
    results_max_bytes: int = 16 * 1024 * 1024  # a results payload as stored (gzip), all parts together
    results_max_decompressed_bytes: int = 128 * 1024 * 1024  # ... and decompressed (never inflated further)
    default_requests_cpu: str = "250m"
    default_requests_memory: str = "512Mi"
    ca_bundle_configmap: str = ""  # default caBundle of https endpoints: this ConfigMap in the evaluation's namespace
    ca_bundle_key: str = "ca.crt"
    datasets_pvc: str = ""  # default spec.datasets: a PVC in the evaluation's namespace ...
    datasets_image: str = ""  # ... or an OCI image (image volume)
    datasets_sub_path: str = ""
    kueue_queue: str = ""  # Kueue LocalQueue for runner Jobs whose spec names none ("": no Kueue)

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> "Settings":
        values = {}
        for f in fields(cls):
            raw = environ.get(f"QUANTGATE_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            if isinstance(default, bool):
                values[f.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            elif isinstance(default, list):
                values[f.name] = [p for p in raw.replace(",", " ").split() if p]
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
