"""Which local item (and which choice) a prompt is about.

Built by asking lm-eval itself for every request of a suite at 0-shot (the
`local` suite, and the full-size `local-full` one for a fleet that serves it),
so prompts, delimiters and per-task preprocessing are exactly lm-eval's. A
request's key is the text after its last blank line: lm-eval joins few-shot
examples with "\\n\\n", and our items never contain one, so the key is the same
at any number of shots. Cached as JSON (keyed by the data and lm-eval version),
because loading the tasks takes seconds (local-full: about 40 s, once) and every
simulated server needs it. local-full's item ids start with FULL_PREFIX, so that
one server can hold both indexes and plant each suite's items on their own
(quantgate.simulate.model).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

INDEX_FORMAT = 3
FULL_PREFIX = "full:"


@dataclass(frozen=True)
class Entry:
    task: str  # scoring unit: "mmlu" for every mmlu_* subject
    item: str  # unique item id within the unit, e.g. "mmlu_astronomy/3" or "12"
    choice: int | None  # None for generation requests
    cont_chars: int  # length of the continuation text (acc_norm divides by it)


def prompt_key(text: str) -> str:
    return text.rsplit("\n\n", 1)[-1]


def _data_fingerprint(suite: str = "local") -> str:
    import lm_eval

    from quantgate import __version__
    from quantgate.lmeval.local_tasks import DATA_DIR

    h = hashlib.sha256(f"{INDEX_FORMAT}|{lm_eval.__version__}|{__version__}".encode())
    if suite == "local-full":
        from quantgate.lmeval.full_tasks import data_key

        h.update(f"local-full|{FULL_PREFIX}|{data_key()}".encode())  # the generator's inputs, not its 9 MB
        return h.hexdigest()[:16]
    for f in sorted(DATA_DIR.rglob("*.jsonl")):
        h.update(str(f.relative_to(DATA_DIR)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def unit_of(task: str) -> str:
    return "mmlu" if task.startswith("mmlu_") else task


def _gold(task: str, doc: dict):
    """The correct answer of a local item: a choice index, a set of indices (mc2) or a number (gsm8k)."""
    if task == "gsm8k":
        return doc["answer"].split("####")[-1].strip()
    if task in ("humaneval", "mbpp"):
        return doc["task_id"]  # the simulator looks its completions up by problem
    if task == "arc_challenge":
        return doc["choices"]["label"].index(doc["answerKey"])
    if task == "hellaswag":
        return int(doc["label"])
    if task == "winogrande":
        return int(doc["answer"]) - 1
    if task == "truthfulqa_mc2":
        return [i for i, label in enumerate(doc["mc2_targets"]["labels"]) if label == 1]
    return int(doc["answer"])  # mmlu


def build_index(suite: str = "local") -> dict:
    """{"keys": {key: [unit, item, choice, cont_chars]}, "items": {unit: {item: {"gold", "choices"}}}}."""
    from quantgate.lmeval.code_tasks import CODE_TASKS
    from quantgate.lmeval.local_tasks import LOCAL_TASKS, local_task_manager
    from quantgate.lmeval.offline import offline_environment

    offline_environment()
    if suite == "local-full":
        from quantgate.lmeval.full_tasks import full_task_manager

        loaded, prefix = full_task_manager().load(list(LOCAL_TASKS)), FULL_PREFIX
    else:
        loaded, prefix = local_task_manager().load(list(LOCAL_TASKS + CODE_TASKS)), ""
    keys: dict[str, list] = {}
    items: dict[str, dict] = {}
    for name, task in loaded["tasks"].items():
        task.set_config(key="num_fewshot", value=0)
        task.build_all_requests()
        unit = unit_of(name)
        for inst in task.instances:
            item = prefix + (f"{name}/{inst.doc_id}" if unit != name else str(inst.doc_id))
            ctx, second = inst.arguments[0], inst.arguments[1]
            if inst.request_type == "generate_until":
                key, choice, cont = prompt_key(ctx), None, 0
            else:
                key, choice, cont = prompt_key(ctx + second), inst.idx, len(second)
            if key in keys and keys[key][:3] != [unit, item, choice]:
                raise ValueError(f"two local requests share the key {key!r}: {keys[key]} and {unit} {item}")
            keys[key] = [unit, item, choice, cont]
            entry = items.setdefault(unit, {}).setdefault(item, {"gold": _gold(name, inst.doc), "choices": 0})
            if choice is not None:
                entry["choices"] = max(entry["choices"], choice + 1)
    return {"format": INDEX_FORMAT, "keys": keys, "items": items}


def cached_index(cache_root: Path | None = None, suite: str = "local") -> Path:
    """Path of a suite's index JSON, building it on first use."""
    root = cache_root or Path(os.environ.get("QUANTGATE_CACHE", Path.home() / ".cache" / "quantgate"))
    tag = "full-" if suite == "local-full" else ""
    path = root / "simulate" / f"index-{tag}{_data_fingerprint(suite)}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-")
        with os.fdopen(fd, "w") as fh:
            json.dump(build_index(suite), fh)
        os.replace(tmp, path)
    return path


class ItemIndex:
    def __init__(self, data: dict):
        self.keys = data["keys"]
        self.items = data["items"]

    @classmethod
    def load(cls, path: Path | list[Path] | None = None) -> "ItemIndex":
        """One index file, or several (one per suite) merged; a prompt in two of them is an error."""
        paths = path if isinstance(path, list) else [path or cached_index()]
        index = cls(json.loads(Path(paths[0]).read_text()))
        for more in paths[1:]:
            index.merge(cls(json.loads(Path(more).read_text())))
        return index

    def merge(self, other: "ItemIndex") -> None:
        for key, hit in other.keys.items():
            if key in self.keys and self.keys[key][:3] != hit[:3]:
                raise ValueError(f"two suites' requests share the key {key!r}: {self.keys[key]} and {hit}")
            self.keys[key] = hit
        for unit, items in other.items.items():
            self.items.setdefault(unit, {}).update(items)

    def lookup(self, prompt_text: str) -> Entry | None:
        hit = self.keys.get(prompt_key(prompt_text))
        return Entry(*hit) if hit else None
