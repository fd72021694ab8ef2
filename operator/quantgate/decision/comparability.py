"""Are two lm-eval runs comparable? The evaluation setup lm-eval records, side by side.

`run_setup(data)` extracts, from an lm-eval results object, what must agree before a drop
means anything: lm-eval's version, each task's version, a hash of each task's config as
lm-eval records it (prompt templates, metrics, delimiters, generation kwargs; file paths of
local datasets and the config's source path left out, since the documents themselves are
compared by their hashes, and the memory addresses in the names of Python functions lm-eval
writes for tasks defined in code), lm-eval's own per-task document hash (``task_hashes``), the
run's generation kwargs, the chat template's hash and the system instruction's hash.
`differences(b, c)` lists, one short phrase each, what differs; a field absent from either
side (results written by other tools, older compact results) is not compared. Few-shot
counts, limits and sample sets are checked in comparison.py.
"""

from __future__ import annotations

import hashlib
import json
import re

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")
_VOLATILE_CONFIG_KEYS = ("dataset_kwargs", "metadata", "num_fewshot")


def config_hash(config: dict) -> str:
    """sha256 (16 hex digits) of one task's config without paths and bookkeeping."""
    kept = {k: v for k, v in config.items() if k not in _VOLATILE_CONFIG_KEYS}
    version = (config.get("metadata") or {}).get("version")
    text = json.dumps([kept, version], sort_keys=True, default=str)
    text = _ADDRESS.sub(">", text)  # lm-eval writes Python functions as "<function f at 0x7f…>"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_setup(data: dict) -> dict:
    """The comparable setup of one lm-eval results object (JSON-able; see the module doc)."""
    config = data.get("config") or {}
    setup: dict = {}
    if data.get("lm_eval_version"):
        setup["lmEval"] = str(data["lm_eval_version"])
    if isinstance(data.get("versions"), dict):
        setup["versions"] = {k: str(v) for k, v in data["versions"].items()}
    if isinstance(data.get("configs"), dict):
        setup["configs"] = {k: config_hash(v) for k, v in data["configs"].items() if isinstance(v, dict)}
    if isinstance(data.get("task_hashes"), dict):
        setup["docs"] = {k: str(v)[:16] for k, v in data["task_hashes"].items()}
    if "gen_kwargs" in config:
        setup["genKwargs"] = json.dumps(config.get("gen_kwargs"), sort_keys=True, default=str)
    for key, name in (("chat_template_sha", "chatTemplate"), ("system_instruction_sha", "systemInstruction")):
        if key in data:
            setup[name] = data.get(key) or "none"
    return setup


def _per_task(name: str, what: str, b: dict, c: dict, tasks: set[str]) -> list[str]:
    bm, cm = b.get(name), c.get(name)
    if not isinstance(bm, dict) or not isinstance(cm, dict):
        return []
    diff = sorted(t for t in tasks if t in bm and t in cm and bm[t] != cm[t])
    if not diff:
        return []
    if name == "versions":
        shown = ", ".join(f"{t} {bm[t]} vs {cm[t]}" for t in diff[:3])
    else:
        shown = ", ".join(diff[:3])
    more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
    return [f"{what} differ: {shown}{more}"]


def differences(b: dict, c: dict, tasks: set[str] | None = None) -> list[str]:
    """What differs between two setups (baseline vs candidate), one phrase each."""
    out = []
    if b.get("lmEval") and c.get("lmEval") and b["lmEval"] != c["lmEval"]:
        out.append(f"lm-eval versions differ: {b['lmEval']} vs {c['lmEval']}")
    names = set(tasks) if tasks is not None else set(b.get("versions") or {}) | set(b.get("configs") or {}) | set(
        b.get("docs") or {})
    out += _per_task("versions", "task versions", b, c, names)
    out += _per_task("configs", "task configs (prompts, metrics or generation settings)", b, c, names)
    out += _per_task("docs", "evaluated documents (lm-eval task hashes)", b, c, names)
    for key, what in (("genKwargs", "generation kwargs"), ("chatTemplate", "chat templates"),
                      ("systemInstruction", "system instructions")):
        if key in b and key in c and b[key] != c[key]:
            if key == "genKwargs":
                out.append(f"{what} differ: {b[key]} vs {c[key]}")
            else:
                out.append(f"{what} differ: {'none' if b[key] == 'none' else 'sha ' + b[key][:8]} vs "
                           f"{'none' if c[key] == 'none' else 'sha ' + c[key][:8]}")
    return out
