"""Join the shards of one run (`quantgate run --shard i/N`) into the run an unsharded
`quantgate run` writes (`quantgate merge`, and the operator before it decides); the same code
joins progressive stage runs (quantgate.lmeval.stage_delta).

Every shard's per-question records carry lm-eval's per-document metric values at full
precision. The merge orders them as lm-eval does (filter, then document id) and
recomputes each task's aggregate and stderr with lm-eval's own aggregation code, then
each group's with lm-eval's size-weighted formulas, in the group's child order: the
floating-point operations are the unsharded run's, so the numbers are equal bit for bit.

Fail closed: shards of different plans or counts, a missing or repeated shard, a range
covered twice or not at all, or a shard whose own numbers the recomputation does not
reproduce exactly (an aggregation the merge does not know) are errors, never a result.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from quantgate.errors import InputError, QuantgateError

MANIFEST = "manifest.json"
BOOTSTRAP_ITERS = 100000  # simple_evaluate's default, which the runner keeps
# what a merged run's compact results record about the run (from a piece's manifest; k8s/trust checks it)
RUN_RECORD = ("model", "suite", "localData", "tasks", "lmEvalVersion", "quantgateVersion", "engine")


class MergeError(QuantgateError):
    """Shards that do not form one complete run (exit 2: fix the input)."""


@dataclass
class ShardRun:
    """One shard: its manifest (with the `shard` entry), lm-eval's results object and, per
    task, its per-question records (lm-eval's sample dicts, or only their tails:
    doc_id, filter, metrics, doc_hash and the metric values)."""

    manifest: dict
    results: dict
    records: dict[str, list[dict]] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict)  # raw sample lines, same order as records

    @property
    def info(self) -> dict:
        return self.manifest["shard"]

    def to_payload(self) -> dict:
        """A small JSON-able form for the results channel (record tails only)."""
        tails = {task: [_tail(r) for r in recs] for task, recs in self.records.items()}
        return {"manifest": self.manifest, "results": _strip_results(self.results), "records": tails}

    @classmethod
    def from_payload(cls, data: dict) -> "ShardRun":
        try:
            return cls(manifest=data["manifest"], results=data["results"], records=data["records"])
        except (KeyError, TypeError):
            raise MergeError("shard payload lacks manifest, results or records") from None


def _tail(record: dict) -> dict:
    out = {"doc_id": record["doc_id"]}
    if "filtered_resps" in record:  # per-choice loglikelihoods (decision/fidelity.py), before "filter"
        out["filtered_resps"] = record["filtered_resps"]  # as lm-eval orders them (lmeval/samples.py)
    out.update({"filter": record["filter"], "metrics": record["metrics"], "doc_hash": record["doc_hash"]})
    for name in record["metrics"]:
        out[name] = record.get(name)
    return out


def _strip_results(results: dict) -> dict:
    keep = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
            "n-samples", "config", "lm_eval_version", "model_name", "model_source", "date",
            "total_evaluation_time_seconds", "chat_template", "chat_template_sha", "system_instruction",
            "system_instruction_sha", "fewshot_as_multiturn")  # the setup compare checks (decision/comparability.py)
    return {k: results[k] for k in keep if k in results}


# ------------------------------------------------------------------ reading shard directories
def read_shard_dir(path: Path, entry: str = "shard") -> ShardRun:
    """A piece of a run: a shard (`quantgate run --shard I/N`) or, with entry="stage", a progressive
    stage run (`--fraction F --after F0`, quantgate.lmeval.stage_delta)."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise InputError(f"{path}: no manifest.json; pass directories written by `quantgate run --shard I/N`")
    manifest = _read_json(manifest_file)
    if manifest.get("complete") is not True:
        raise InputError(f"{path}: the shard's run is not complete; rerun it")
    if not isinstance(manifest.get(entry), dict):
        how = "--shard I/N" if entry == "shard" else "--fraction F --after F0"
        raise InputError(f"{path}: not a {entry} (manifest.json has no {entry} entry); "
                         f"pass the outputs of `quantgate run {how}`")
    results = _read_json(path / str(manifest.get("results")))
    run = ShardRun(manifest=manifest, results=results)
    for name in manifest.get("samples") or []:
        task = _task_of(name)
        recs, raw = [], []
        with open(path / name, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    recs.append(json.loads(line))
                    raw.append(line.rstrip("\n"))
        run.records[task] = recs
        run.lines[task] = raw
    return run


def _task_of(samples_file: str) -> str:
    # samples_<task>_<timestamp>.jsonl; lm-eval's timestamp has no underscore
    stem = samples_file[len("samples_"):-len(".jsonl")]
    return stem.rsplit("_", 1)[0]


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


# ------------------------------------------------------------------ checks
def check_complete(shards: list[ShardRun]) -> dict:
    """The common plan of the shards; MergeError unless they are exactly one run's shards."""
    if not shards:
        raise MergeError("no shards to merge")
    first = shards[0].info
    count, plan = first.get("count"), first.get("plan")
    seen: dict[int, int] = {}
    for i, s in enumerate(shards):
        info = s.info
        if info.get("count") != count or info.get("plan") != plan:
            raise MergeError(f"shard {info.get('index')}/{info.get('count')} belongs to another run "
                             f"(plan {info.get('plan')}, expected {plan} of {count} shards)")
        if info.get("index") in seen:
            raise MergeError(f"shard {info.get('index')}/{count} is given twice")
        seen[info.get("index")] = i
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise MergeError(f"shards {', '.join(f'{m}/{count}' for m in missing)} missing; "
                         f"merge all {count} shards of the run")
    for task, n in first["tasks"].items():
        covered = sorted(tuple(s.info["pieces"][task]) for s in shards if task in s.info["pieces"])
        pos = 0
        for start, stop in covered:
            if start != pos:
                raise MergeError(f"task {task}: documents {pos}..{start - 1} covered by no shard or twice")
            pos = stop
        if pos != n:
            raise MergeError(f"task {task}: the shards cover {pos} of its {n} documents")
    return first


# ------------------------------------------------------------------ aggregation (lm-eval's code)
def _aggregations(config: dict) -> dict:
    from lm_eval.api.registry import get_aggregation, get_metric_aggregation

    out = {}
    for entry in config.get("metric_list") or []:
        metric, agg = entry.get("metric"), entry.get("aggregation")
        fn = None
        if isinstance(agg, str) and agg:
            fn = get_aggregation(agg)
        elif agg is None:
            try:
                fn = get_metric_aggregation(metric)
            except (KeyError, ValueError, AttributeError):
                fn = None
        if fn is not None:
            out[metric] = fn
    return out


def unmergeable(task) -> str | None:
    """Why shards of this loaded lm-eval task could not be merged exactly (None: they can):
    a metric whose aggregation the merge, reading the task's recorded config, would not
    find as the very function lm-eval uses."""
    try:
        found = _aggregations(dict(task.dump_config()))
        used = task.aggregation()
    except Exception as exc:  # an exotic task: refuse rather than guess
        return f"its configuration cannot be read ({type(exc).__name__})"
    for metric, fn in used.items():
        if found.get(metric) is not fn:
            return f"metric {metric} aggregates with {getattr(fn, '__name__', fn)!s}, not a registered aggregation"
    return None


def _task_metrics(task: str, config: dict, records: list[dict]) -> tuple[dict, int]:
    """lm-eval's aggregate entry of one task from its records (in lm-eval's order)."""
    from lm_eval.evaluator_utils import _compute_task_aggregations

    raw: dict[tuple[str, str], list] = defaultdict(list)
    for r in records:
        for metric in r["metrics"]:
            raw[(metric, r["filter"])].append(r[metric])
    aggregations = _aggregations(config)
    fake = SimpleNamespace(task_name=task, aggregation=lambda: aggregations)
    return _compute_task_aggregations(fake, raw, BOOTSTRAP_ITERS)


def _ordered(records: list[dict]) -> list[dict]:
    """lm-eval's order: filters in the order they first appear, documents by id within each."""
    filters = list(dict.fromkeys(r["filter"] for r in records))
    rank = {f: i for i, f in enumerate(filters)}
    return sorted(records, key=lambda r: (rank[r["filter"]], r["doc_id"]))


def _group_metrics(name: str, recipe: dict, leaves: list[str], metrics: dict) -> dict:
    """A group's entry as lm-eval's Group.aggregate computes it (same formulas, same order)."""
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr, unweighted_mean_stderr

    out: dict = {"alias": recipe.get("alias") or name, "name": name}
    if not recipe.get("aggregate"):
        return out
    out["sample_len"] = sum(metrics[t].get("sample_len", 0) for t in leaves if t in metrics)
    sample_count = {}
    for agg in recipe["aggregate"]:
        filters = agg.get("filter_list")
        if filters is None:
            prefix = f"{agg['metric']},"
            filters = sorted({k[len(prefix):] for t in leaves if t in metrics for k in metrics[t]
                              if k.startswith(prefix) and "_stderr" not in k})
        for flt in filters:
            key, skey = f"{agg['metric']},{flt}", f"{agg['metric']}_stderr,{flt}"
            values, stderrs, sizes = [], [], []
            for t in leaves:
                if t in metrics and key in metrics[t]:
                    values.append(metrics[t][key])
                    sizes.append(metrics[t].get("sample_len", 0))
                    if metrics[t].get(skey) is not None:
                        stderrs.append(metrics[t][skey])
            if not values:
                continue
            out[key] = aggregate_subtask_metrics(values, sizes, agg.get("weight_by_size", True))
            sample_count[key] = sum(sizes)
            if len(stderrs) == len(values) and "N/A" not in stderrs:
                out[skey] = (pooled_sample_stderr(stderrs, sizes) if agg.get("weight_by_size", True)
                             else unweighted_mean_stderr(stderrs))
            else:
                out[skey] = "N/A"
    if sample_count:
        out["sample_count"] = sample_count
    return out


def _group_leaves(name: str, groups: dict[str, dict], present: set[str]) -> list[str]:
    out = []
    for child in groups[name]["children"]:
        if child in groups:
            out.extend(_group_leaves(child, groups, present))
        elif child in present:
            out.append(child)
    return out


def _bottom_up(groups: dict[str, dict]) -> list[str]:
    children = {c for g in groups.values() for c in g["children"]}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for child in groups[name]["children"]:
            if child in groups:
                visit(child)
        order.append(name)

    for root in (g for g in groups if g not in children):
        visit(root)
    return order


def _aggregate(records: dict[str, list[dict]], configs: dict, aliases: dict, groups: dict[str, dict],
               tasks: list[str]) -> tuple[dict, dict]:
    """(metrics per task and group, sample_len per task) computed from records."""
    metrics, lens = {}, {}
    for task in tasks:
        agg, n = _task_metrics(task, configs.get(task) or {}, _ordered(records[task]))
        metrics[task] = {"name": task, "alias": aliases.get(task, task), "sample_len": n, **agg}
        lens[task] = n
    present = set(tasks)
    for name in _bottom_up(groups):
        leaves = _group_leaves(name, groups, present)
        if leaves:
            metrics[name] = _group_metrics(name, groups[name], leaves, metrics)
    return metrics, lens


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)  # NaN == NaN


def self_check(shard: ShardRun) -> None:
    """Recompute the shard's own numbers from its records: they must equal lm-eval's exactly."""
    results = shard.results.get("results") or {}
    configs = shard.results.get("configs") or {}
    tasks = [t for t in shard.info["pieces"] if t in shard.records]
    missing = [t for t in shard.info["pieces"] if t not in shard.records]
    if missing:
        raise MergeError(f"shard {shard.info['index']}: no per-question records for {', '.join(missing)}")
    aliases = {t: (results.get(t) or {}).get("alias", t) for t in tasks}
    metrics, _ = _aggregate(shard.records, configs, aliases, shard.info["groups"], tasks)
    for name, entry in metrics.items():
        reported = results.get(name) or {}
        for key, value in entry.items():
            if "," in key and not _same(reported.get(key), value):
                raise MergeError(f"shard {shard.info['index']}: {name} {key} recomputed from its samples is "
                                 f"{value!r}, lm-eval reported {reported.get(key)!r}; this task's aggregation "
                                 "cannot be merged exactly: run it unsharded")


# ------------------------------------------------------------------ the merge
def merge(shards: list[ShardRun]) -> tuple[dict, dict[str, list[dict]], dict[str, list[str]]]:
    """(lm-eval results object, records per task, raw sample lines per task) of the whole run."""
    shards = sorted(shards, key=lambda s: s.info.get("index", 0))
    info = check_complete(shards)
    for s in shards:
        self_check(s)
    tasks = list(info["tasks"])
    groups = info["groups"]
    records: dict[str, list[dict]] = {}
    lines: dict[str, list[str]] = {}
    pairs: dict[str, list[tuple[dict, str | None]]] = {}
    configs, versions, n_shot, hib, originals, aliases = {}, {}, {}, {}, {}, {}
    for s in shards:
        res = s.results
        configs.update(res.get("configs") or {})
        versions.update(res.get("versions") or {})
        for t in s.info["pieces"]:
            n_shot[t] = (res.get("n-shot") or {}).get(t)
            hib[t] = (res.get("higher_is_better") or {}).get(t)
            originals[t] = ((res.get("n-samples") or {}).get(t) or {}).get("original")
            aliases[t] = ((res.get("results") or {}).get(t) or {}).get("alias", t)
            raw = s.lines.get(t) or [None] * len(s.records[t])
            pairs.setdefault(t, []).extend(zip(s.records[t], raw))
    for t in tasks:
        ids = [(r["filter"], r["doc_id"]) for r, _ in pairs[t]]
        if len(ids) != len(set(ids)):
            raise MergeError(f"task {t}: a document appears in two shards")
        rank = {f: i for i, f in enumerate(dict.fromkeys(f for f, _ in ids))}
        pairs[t].sort(key=lambda p: (rank[p[0]["filter"]], p[0]["doc_id"]))
        records[t] = [r for r, _ in pairs[t]]
        if all(line is not None for _, line in pairs[t]):
            lines[t] = [line for _, line in pairs[t]]
    metrics, lens = _aggregate(records, configs, aliases, groups, tasks)

    from lm_eval.evaluator_utils import _propagate_higher_is_better, _propagate_num_fewshot

    group_objs = [SimpleNamespace(name=g, child_names=groups[g]["children"]) for g in groups]
    n_shot = {t: v for t, v in n_shot.items() if v is not None}
    hib = {t: v for t, v in hib.items() if v is not None}
    _propagate_num_fewshot(group_objs, n_shot)
    _propagate_higher_is_better(group_objs, hib)
    template = shards[0].results
    merged = dict(template)
    # lm-eval's task_hashes cover one shard's documents only: a merged run has none (compare then
    # checks its documents by count and by each question's doc_hash, not by lm-eval's task hash)
    merged.pop("task_hashes", None)
    merged.update({
        "results": metrics,
        "group_subtasks": {g: list(groups[g]["children"]) for g in groups},
        "configs": dict(sorted(configs.items())),
        "versions": dict(sorted({**versions, **{g: versions.get(g, "N/A") for g in groups}}.items())),
        "n-shot": dict(sorted(n_shot.items())),
        "higher_is_better": dict(sorted(hib.items())),
        "n-samples": {t: {"original": originals[t], "effective": lens[t]} for t in tasks},
        "total_evaluation_time_seconds": str(max(float(s.results.get("total_evaluation_time_seconds") or 0)
                                                 for s in shards)),
    })
    group_entries = {g: metrics[g] for g in groups if groups[g]["aggregate"] and g in metrics}
    if group_entries:
        merged["groups"] = group_entries
    else:
        merged.pop("groups", None)
    return merged, records, lines


def piece_kind(path: Path) -> str | None:
    """"shard" or "stage" when the run directory `path` holds one piece of a larger run (a shard,
    or a progressive stage run), else None (a whole run, or no readable manifest)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return next((k for k in ("shard", "stage") if isinstance(manifest, dict) and isinstance(manifest.get(k), dict)),
                None)


def merge_dirs(dirs: list[Path], output: Path, force: bool = False) -> Path:
    """`quantgate merge`: write the merged run directory (same layout as `quantgate run`)."""
    from quantgate.lmeval.runner import _now, _write_json_atomic

    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not force:
        raise InputError(f"output directory {output} already exists; remove it or pass --force")
    if dirs and piece_kind(Path(dirs[0])) == "stage":  # progressive stage runs (quantgate.lmeval.stage_delta)
        from quantgate.lmeval.stage_delta import merge_stage_runs

        shards = sorted((read_shard_dir(Path(d), entry="stage") for d in dirs),
                        key=lambda r: r.manifest["stage"].get("after") or 0.0)
        merged, records, lines, first = merge_stage_runs(shards)
        merged_from = [{"stage": f"{r.manifest['stage'].get('after')!r}-{r.manifest['stage'].get('fraction')!r}",
                        "pieces": r.manifest["stage"].get("pieces"), "requests": r.manifest.get("requests"),
                        "durationSeconds": r.manifest.get("durationSeconds")} for r in shards]
    else:
        shards = sorted((read_shard_dir(Path(d)) for d in dirs), key=lambda s: s.info.get("index", 0))
        merged, records, lines = merge(shards)
        first = {k: v for k, v in shards[0].manifest.items() if k not in ("shard", "error")}
        merged_from = [{"shard": f"{s.info['index']}/{s.info['count']}", "plan": s.info["plan"],
                        "pieces": s.info["pieces"], "requests": s.manifest.get("requests"),
                        "durationSeconds": s.manifest.get("durationSeconds")} for s in shards]
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")
    results_name = f"results_{stamp}.json"
    with open(staging / results_name, "w", encoding="utf-8") as fh:
        json.dump(merged, fh, indent=2, ensure_ascii=False)
    sample_files = []
    for task in merged["n-samples"]:
        name = f"samples_{task}_{stamp}.jsonl"
        with open(staging / name, "w", encoding="utf-8") as fh:
            for line in lines.get(task) or [json.dumps(r, ensure_ascii=False) for r in records[task]]:
                fh.write(line + "\n")
        sample_files.append(name)
    manifest = dict(first)
    manifest.update({
        "complete": True, "startedAt": min(s.manifest.get("startedAt") or "" for s in shards),
        "finishedAt": _now(), "results": results_name, "samples": sorted(sample_files),
        "requests": sum(s.manifest.get("requests") or 0 for s in shards),
        "durationSeconds": max(s.manifest.get("durationSeconds") or 0 for s in shards),
        "throughputRps": None, "mergedFrom": merged_from,
    })
    _write_json_atomic(staging / MANIFEST, manifest)
    if output.exists():
        shutil.rmtree(output)
    staging.replace(output)
    return output


def merge_payloads(payloads: list[dict], workdir: Path):
    """The operator's merge: shard payloads (from the results channel) → RunResults."""
    shards = [ShardRun.from_payload(p) for p in payloads]
    merged, records, _ = merge(shards)
    return load_merged(merged, records, workdir)


def load_merged(merged: dict, records: dict[str, list[dict]], workdir: Path):
    """RunResults of a merged run (lm-eval's results object, records per task), via files in workdir."""
    from quantgate.lmeval.results import load_run

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = "2000-01-01T00-00-00.000000"
    with open(workdir / f"results_{stamp}.json", "w", encoding="utf-8") as fh:
        json.dump(merged, fh)
    for task, recs in records.items():
        with open(workdir / f"samples_{task}_{stamp}.jsonl", "w", encoding="utf-8") as fh:
            for r in recs:
                fh.write(json.dumps(_tail(r)) + "\n")
    return load_run(workdir / f"results_{stamp}.json")
