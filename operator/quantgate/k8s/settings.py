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
    poll_interval_s: float = 2.0  # requeue-after of an evaluation waiting on endpoints, a slot, a baseline
    running_requeue_s: float = 30.0  # requeue-after of a Running evaluation (its Job's events come first)
    resync_s: float = 300.0  # full resync: re-list every evaluation and enqueue the unsettled ones
    backoff_base_s: float = 1.0  # a failed reconcile retries after base * 2**(failures-1) ...
    backoff_max_s: float = 60.0  # ... seconds, at most this
    preflight_failure_cache_s: float = 5.0  # a failed endpoint preflight is trusted this long
    preflight_parallel: int = 16  # endpoint preflights at once (each may wait its timeout)
    leader_election: bool = True  # one active replica: a coordination.k8s.io Lease
    lease_name: str = "quantgate-operator"
    lease_namespace: str = ""  # empty: the pod's namespace, else "default"
    lease_duration_s: float = 15.0  # a standby takes over at most this long after the leader stops renewing
    lease_renew_deadline_s: float = 0.0  # the leader exits when it could not renew this long (0: 2/3 of the duration)
    lease_retry_s: float = 0.0  # how often the leader renews and a standby tries (0: the duration / 7.5)
    leader_identity: str = ""  # empty: the host name (the pod's name)
    health_stall_s: float = 120.0  # /healthz fails when the workers had work and finished none this long
    shutdown_deadline_s: float = 10.0  # on TERM the process exits within this long, even with a reconcile stuck
    workers: int = 256  # reconcile threads, mostly waiting on the API server (each: one pooled connection)
    deciding: int = 2  # verdicts computed at once (reading, decoding and comparing both result sets)
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
    # The API server in a code evaluation's egress NetworkPolicy: these CIDRs (ports 443, 6443); empty: the
    # addresses of EndpointSlice default/kubernetes (quantgate.k8s.egress_policy)
    apiserver_cidrs: list[str] = field(default_factory=list)

    def lease_timings(self) -> tuple[float, float, float]:
        """(duration, renew deadline, retry) in seconds, the derived defaults filled in."""
        d = self.lease_duration_s
        return d, self.lease_renew_deadline_s or d * 2 / 3, self.lease_retry_s or d / 7.5

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
