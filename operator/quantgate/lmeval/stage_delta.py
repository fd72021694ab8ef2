"""Progressive stages that append (`quantgate run --fraction F --after F0`).

A stage evaluates the first c(F) documents of every leaf task in its seeded order
(quantgate.decision.progressive.document_order, stage_count). `--after F0` narrows a run to
the documents stage F adds to stage F0: positions [c(F0), c(F)) of that order. The runs of
one evaluation's stages 1..k (each after the previous one) then cover [0, c(F_k)) exactly
once, and `merge_stages` joins them into the run of stage k, bit for bit (the shard merge's
code, quantgate.lmeval.merge, with the stages as pieces).

Few-shot prompts: lm-eval draws a document's examples from one random generator per task
that advances with every document it builds, in document order. A run of a subset would
draw differently from the run of every document, and from the run of another subset, so
`shard.full_run_fewshot` makes every selected document draw exactly the examples it draws in
the run of all of them (it replays the draws of the documents left out before it). Every
stage, appended or not, therefore asks each document the same prompt: stage k's documents
are asked what the ordinary run asks, and a stage's answers stay valid in every later one.
"""

from __future__ import annotations

import hashlib
import json

from quantgate.errors import InputError
from quantgate.lmeval.merge import RUN_RECORD, MergeError, ShardRun, merge
from quantgate.lmeval.shard import group_recipes, keep_leaves


# ------------------------------------------------------------------ the runner's side
def restrict_to_delta(objs, samples: dict[str, list[int]], plan: list[dict]):
    """Drop the leaves a stage adds no documents to (and groups left empty); return (objs,
    samples, the manifest's `stage` entry: what merge_stages needs)."""
    pieces: dict[str, list[int]] = {}
    documents: dict[str, int] = {}
    fraction = after = None
    for entry in plan:
        fraction, after = entry.get("fraction"), entry.get("after")
        documents.update(entry.get("documents") or {})
        pieces.update(entry.get("pieces") or {})
    keep = {leaf for leaf, (start, stop) in pieces.items() if stop > start}
    if not keep:
        raise InputError(f"--after {after!r}: stage {fraction!r} adds no documents to any task; "
                         "nothing to evaluate")
    recipes = group_recipes(objs)
    kept = keep_leaves(objs, keep)
    selected = {leaf: ids for leaf, ids in samples.items() if leaf in keep}
    info = {"fraction": fraction, "after": after, "documents": documents,
            "pieces": {leaf: pieces[leaf] for leaf in sorted(keep)}, "groups": recipes,
            "plan": _plan_digest(plan)}
    return kept, selected, info


def _plan_digest(plan: list[dict]) -> str:
    """Identifies what every stage of one run shares: tasks, shots, documents per leaf."""
    shared = [[t.get("name"), t.get("numFewshot"), t.get("limit"), t.get("documents")] for t in plan]
    return hashlib.sha256(json.dumps(shared, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ the merge
def merge_stages(payloads: list[dict]):
    """Stage runs 1..k of one run (ShardRun payloads whose manifests hold a `stage` entry, in
    stage order) → (lm-eval results object, records per task, the manifest of stage k with
    the merged plan). MergeError unless they tile [0, c(F_k)) of every leaf exactly once."""
    merged, records, _, manifest = merge_stage_runs([ShardRun.from_payload(p) for p in payloads])
    return merged, records, manifest


def merge_stage_runs(runs: list[ShardRun]):
    """merge_stages on ShardRun objects (`quantgate merge` reads them from directories, with
    their raw sample lines): (results object, records, raw lines per task, manifest)."""
    if not runs:
        raise MergeError("no stages to merge")
    entries = []
    for k, run in enumerate(runs, start=1):
        entry = run.manifest.get("stage") if isinstance(run.manifest, dict) else None
        if not isinstance(entry, dict):
            raise MergeError(f"stage {k}: not a stage run (its manifest has no stage entry)")
        entries.append(entry)
    plan, documents = entries[0].get("plan"), entries[0].get("documents")
    previous = 0.0
    for k, entry in enumerate(entries, start=1):
        if entry.get("plan") != plan or entry.get("documents") != documents:
            raise MergeError(f"stage {k} belongs to another run (plan {entry.get('plan')}, expected {plan})")
        if entry.get("after") != previous:
            raise MergeError(f"stage {k} starts after share {entry.get('after')!r}, not after stage {k - 1}'s "
                             f"{previous!r}")
        previous = entry.get("fraction")
    totals: dict[str, int] = {}  # the documents of stage k per leaf, as its run planned them
    for task in runs[-1].manifest.get("tasks") or []:
        for leaf, (_start, stop) in ((task.get("pieces") or {}) if isinstance(task, dict) else {}).items():
            totals[leaf] = stop
    if not totals:
        raise MergeError(f"stage {len(runs)}: its task plan records no pieces")
    count = len(runs)
    for j, (run, entry) in enumerate(zip(runs, entries)):
        run.manifest = {**run.manifest, "shard": {"index": j, "count": count, "plan": plan, "tasks": totals,
                                                  "pieces": entry["pieces"], "groups": entry["groups"]}}
    merged, records, lines = merge(runs)
    last = runs[-1].manifest
    manifest = {k: v for k, v in last.items() if k not in ("shard", "stage")}
    manifest["tasks"] = [{k: v for k, v in t.items() if k not in ("after", "pieces")}
                         for t in last.get("tasks") or [] if isinstance(t, dict)]
    manifest["requests"] = sum(r.manifest.get("requests") or 0 for r in runs)
    return merged, records, lines, manifest


def merged_stages_compact(payloads: list[dict]) -> dict:
    """The operator's merge of stage runs (payloads from the results channel): the compact
    results document of the stage they add up to, with its run record (stage k's, the plan's
    pieces dropped). Deterministic: the same payloads give the same document."""
    import tempfile

    from quantgate.lmeval.merge import load_merged

    merged, records, manifest = merge_stages(payloads)
    with tempfile.TemporaryDirectory(prefix="quantgate-stages-") as work:
        compact = load_merged(merged, records, work).to_compact()
    compact.pop("source", None)  # the temporary directory: not part of the results
    compact["run"] = {k: manifest.get(k) for k in RUN_RECORD if manifest.get(k) is not None}
    return compact
