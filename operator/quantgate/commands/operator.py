"""`quantgate operator`: run the ModelEvaluation operator (kopf) with metrics on :8080."""

from __future__ import annotations

import sys

from quantgate.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "operator",
        help="run the ModelEvaluation operator",
        description="Watch ModelEvaluations, run their runner Jobs and write verdicts into their status. "
        "Every flag also reads QUANTGATE_<FLAG> from the environment.",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", dest="namespaces", metavar="NS",
                       help="watch this namespace (repeatable); default: all namespaces")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces (default)")
    p.add_argument("--max-concurrent", type=int, help="runner Jobs at once across evaluations (default 10)")
    p.add_argument("--endpoint-timeout", type=float, dest="endpoint_timeout_s", metavar="SECONDS",
                   help="fail an evaluation whose endpoints are not ready after this long (default 600)")
    p.add_argument("--poll-interval", type=float, dest="poll_interval_s", metavar="SECONDS",
                   help="how often waiting evaluations re-check (default 2)")
    p.add_argument("--preflight-cache", type=float, dest="preflight_cache_s", metavar="SECONDS",
                   help="trust a successful endpoint preflight this long (default 10; 0: ask every time)")
    p.add_argument("--workers", type=int, help="reconcile threads (default 256)")
    p.add_argument("--deciding", type=int, help="verdicts computed at once: each decodes two full result sets, "
                   "tens of MiB for a full suite (default 2)")
    p.add_argument("--runner-image", help="image of runner Jobs (default: the operator's release image)")
    p.add_argument("--runner-service-account", help="ServiceAccount of runner Jobs (default quantgate-runner)")
    p.add_argument("--runner-command", help="runner entrypoint, space-separated (default: quantgate)")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz (default 8080; 0: any)")
    p.add_argument("--metrics-host", help="address to bind (default 0.0.0.0)")
    p.add_argument("--no-baseline-cache", action="store_true", help="always run the baseline again")
    p.add_argument("--resync", type=float, dest="resync_s", metavar="SECONDS",
                   help="re-list every evaluation this often and reconcile the unsettled ones (default 300)")
    p.add_argument("--running-requeue", type=float, dest="running_requeue_s", metavar="SECONDS",
                   help="look at a Running evaluation at least this often (default 30)")
    p.add_argument("--no-leader-election", action="store_true",
                   help="do not take the Lease (only when exactly one replica can ever run)")
    p.add_argument("--lease-namespace", help="namespace of the leader Lease (default: the pod's, else default)")
    p.add_argument("--lease-duration", type=float, dest="lease_duration_s", metavar="SECONDS",
                   help="a standby takes over this long after the leader stopped renewing (default 15)")
    p.add_argument("--leader-identity", help="this replica's name in the Lease (default: the host name)")
    p.add_argument("--shutdown-deadline", type=float, dest="shutdown_deadline_s", metavar="SECONDS",
                   help="on TERM, exit within this long even if a reconcile is stuck (default 10)")
    p.set_defaults(func=run)


def settings_from(args):
    from quantgate.k8s.settings import Settings

    overrides = {k: getattr(args, k, None) for k in (
        "max_concurrent", "workers", "deciding", "endpoint_timeout_s", "poll_interval_s", "preflight_cache_s", "runner_image", "runner_service_account",
        "metrics_port", "metrics_host", "resync_s", "running_requeue_s", "lease_namespace", "lease_duration_s",
        "leader_identity", "shutdown_deadline_s")}
    if args.namespaces:
        overrides["namespaces"] = args.namespaces
    if args.all_namespaces:
        overrides["namespaces"] = []
    if args.runner_command:
        overrides["runner_command"] = args.runner_command.split()
    if args.no_baseline_cache:
        overrides["baseline_cache"] = False
    if args.no_leader_election:
        overrides["leader_election"] = False
    settings = Settings.from_env(**overrides)
    if settings.max_concurrent < 1:
        raise InputError("--max-concurrent must be at least 1")
    if settings.workers < 1:
        raise InputError("--workers must be at least 1")
    if settings.deciding < 1:
        raise InputError("--deciding must be at least 1")
    if settings.endpoint_timeout_s <= 0 or settings.poll_interval_s <= 0:
        raise InputError("--endpoint-timeout and --poll-interval must be positive")
    if settings.preflight_cache_s < 0:
        raise InputError("--preflight-cache must be 0 or more seconds")
    if settings.resync_s <= 0 or settings.running_requeue_s <= 0:
        raise InputError("--resync and --running-requeue must be positive")
    if settings.shutdown_deadline_s <= 0:
        raise InputError("--shutdown-deadline must be positive")
    duration, deadline, retry = settings.lease_timings()
    if not 0 < retry < deadline < duration:
        raise InputError("lease timings need 0 < retry < renew deadline < --lease-duration "
                         "(QUANTGATE_LEASE_RETRY_S, QUANTGATE_LEASE_RENEW_DEADLINE_S)")
    return settings


def run(args) -> int:
    import asyncio
    import logging

    from quantgate.k8s import memory

    memory.limit_arenas()  # before any thread starts (see quantgate.k8s.memory)
    # The event loop thread (watch streams, kopf's queues) competes for the GIL with up to
    # `workers` reconcile threads; a shorter switch interval lets it in sooner under a burst.
    sys.setswitchinterval(0.001)
    settings = settings_from(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one "Handler succeeded" per event is noise
    logging.getLogger("kopf._core.reactor.observation").addFilter(OptionalKServe())

    import kopf

    from quantgate import metrics
    from quantgate.k8s import handlers

    handlers.configure(settings)
    memory.trim_periodically()
    try:
        server = metrics.serve(settings.metrics_host, settings.metrics_port, healthy=handlers.healthy)
    except OSError as exc:
        raise InputError(f"cannot serve metrics on port {settings.metrics_port}: {exc.strerror}; "
                         "choose another with --metrics-port") from None
    logging.getLogger("quantgate.operator").info("metrics on http://%s:%d/metrics", settings.metrics_host,
                                                 server.server_port)
    elector = _lead(settings) if settings.leader_election else None
    try:
        asyncio.run(kopf.operator(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
        ))
    finally:
        handlers.arm_shutdown_deadline()  # armed already when kopf's cleanup ran (TERM)
        if elector is not None:
            elector.release()
        server.shutdown()
    return 0


def _lead(settings):
    """Block until this replica holds the Lease; keep renewing it. Losing it ends the process
    at once (exit 1: the pod restarts as a standby) so a replica that may no longer lead
    never writes."""
    import logging
    import os

    from quantgate.k8s import leader
    from quantgate.k8s.client import api_client

    elector = leader.LeaderElector(
        api_client(settings.workers), settings.lease_namespace or leader.default_namespace(), settings.lease_name,
        settings.leader_identity or leader.default_identity(), *settings.lease_timings())
    elector.acquire()

    def lost():
        logging.getLogger("quantgate.leader").error("exiting: no longer the leader")
        logging.shutdown()
        os._exit(1)

    elector.keep(lost)
    return elector


class OptionalKServe:
    """KServe is optional: without its CRD kopf warns "Unresolved resources cannot be served"
    for InferenceServices, which reads like a broken install. Say what it means, at INFO."""

    def filter(self, record) -> bool:
        import logging

        text = record.getMessage()
        kserve = text.count("any_name='inferenceservices'")  # kopf names each as Selector(group=..., ...)
        if text.startswith("Unresolved resources") and kserve and text.count("Selector(") == kserve:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = ("KServe is not installed (no InferenceService CRD): evaluations that use "
                                       "inferenceServiceRef wait as InferenceServiceNotFound; endpoint and vllm "
                                       "models are not affected"), None
        return True
