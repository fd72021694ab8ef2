"""Shard results on the results channel: each index of a sharded runner Job publishes its
share (`quantgate.lmeval.merge.ShardRun` payload: lm-eval's results object and the
per-question record tails at full precision) under `<results>-<index>`; the operator reads
all N through the trust checks and merges them (quantgate.k8s.verified) into the results an
unsharded run would have published. A progressive stage's run (the documents its stage adds)
travels the same way under the plain results name (`publish_piece`, kind "stage").

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


def publish_piece(run_dir: Path, namespace: str, name: str, role: str, kind: str) -> str:
    """Publish one piece of a run in the shard payload's form (lm-eval's results object and the
    per-question records at full precision); return the ConfigMap name it went to. kind "shard":
    an index of a sharded Job, under `<name>-<index>` with the shard label. kind "stage": a
    progressive stage run (`quantgate run --fraction F --after F0`) under `name`, merged with the
    evaluation's earlier stages (quantgate.lmeval.stage_delta). Neither carries a baseline cache
    key label: the operator writes the cache entries itself."""
    from quantgate.lmeval.merge import read_shard_dir

    if role not in names.ROLES:
        raise ValueError(f"role must be one of {names.ROLES}, got {role!r}")
    piece = read_shard_dir(Path(run_dir), entry=kind)
    target, labels = name, {}
    if kind == "shard":
        target = shard_name(name, piece.info["index"])
        labels = {LABEL_SHARD: f"{piece.info['index']}-of-{piece.info['count']}"}
    job, pod = runner_identity()  # owned by the Job, stamped with the pod: checked like any results
    cms = build_configmaps(
        encode(piece.to_payload()), namespace=namespace, name=target, role=role,
        evaluation=os.environ.get(names.ENV_OWNER_NAME), owner_uid=os.environ.get(names.ENV_OWNER_UID),
        extra_labels=labels, job=job, pod=pod,
    )
    from quantgate.k8s.client import core_v1

    write_configmaps(core_v1(), cms)
    return target
