"""Shard results on the results channel: each index of a sharded runner Job publishes its
share (`quantgate.lmeval.merge.ShardRun` payload: lm-eval's results object and the
per-question record tails at full precision) under `<results>-<index>`; the operator reads
all N through the trust checks and merges them (quantgate.k8s.verified) into the results an
unsharded run would have published.

Same ConfigMap layout, create-only rule and checksums as `quantgate.k8s.results_channel`;
a shard head carries no baseline cache key, so no other evaluation mistakes one shard for
a complete baseline.
"""

from __future__ import annotations

import os
from pathlib import Path

from quantgate.k8s import names
from quantgate.k8s.results_channel import build_configmaps, encode, runner_identity, write_configmaps

LABEL_SHARD = "quantgate.io/shard"


def shard_name(name: str, index: int) -> str:
    return f"{name}-{index}"


def publish_shard(run_dir: Path, namespace: str, name: str, role: str) -> str:
    """Publish a shard run's payload; return the ConfigMap name it went to."""
    from quantgate.lmeval.merge import read_shard_dir

    if role not in names.ROLES:
        raise ValueError(f"role must be one of {names.ROLES}, got {role!r}")
    shard = read_shard_dir(Path(run_dir))
    job, pod = runner_identity()  # owned by the Job, stamped with the pod: checked like any results
    target = shard_name(name, shard.info["index"])
    cms = build_configmaps(
        encode(shard.to_payload()), namespace=namespace, name=target, role=role,
        evaluation=os.environ.get(names.ENV_OWNER_NAME), owner_uid=os.environ.get(names.ENV_OWNER_UID),
        extra_labels={LABEL_SHARD: f"{shard.info['index']}-of-{shard.info['count']}"},
        job=job, pod=pod,
    )
    from quantgate.k8s.client import core_v1

    write_configmaps(core_v1(), cms)
    return target


def publish_stage(run_dir: Path, namespace: str, name: str, role: str) -> None:
    """Publish a progressive stage run (`quantgate run --fraction F --after F0`) under `name`, in
    the shard payload's form (per-question records at full precision): the operator merges the
    stages of one evaluation (quantgate.lmeval.stage_delta). A stage head carries no baseline
    cache key label; the operator writes the cache entries itself."""
    from quantgate.lmeval.merge import read_shard_dir

    if role not in names.ROLES:
        raise ValueError(f"role must be one of {names.ROLES}, got {role!r}")
    run = read_shard_dir(Path(run_dir), entry="stage")
    job, pod = runner_identity()
    cms = build_configmaps(
        encode(run.to_payload()), namespace=namespace, name=name, role=role,
        evaluation=os.environ.get(names.ENV_OWNER_NAME), owner_uid=os.environ.get(names.ENV_OWNER_UID),
        job=job, pod=pod,
    )
    from quantgate.k8s.client import core_v1

    write_configmaps(core_v1(), cms)
