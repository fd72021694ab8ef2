"""The `local-full` suite: the leaderboard six at their official sizes on our own items.

Like the `local` suite (quantgate.lmeval.local_tasks), each task is a tiny YAML
that includes lm-eval's official config and swaps in our datasets; here the
datasets are not shipped but generated (quantgate.lmeval.tasks.full_data, about
a second, 9 MB) at first use into $QUANTGATE_CACHE/local-full/<key>/data, next
to the YAMLs in .../tasks. The key hashes the generator's sources, the official
sizes, the local data it avoids repeating and quantgate's version: change any
of them and a fresh directory is written; otherwise every process reuses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from quantgate import __version__
from quantgate.lmeval.full_sizes import MMLU_SUBJECT_SIZES
from quantgate.lmeval.local_tasks import (DATA_DIR, leaderboard_task_configs, lm_eval_tasks_dir, quantgate_cache,
                                          write_configs, write_once)

FULL_FORMAT = 1


def data_key() -> str:
    """Hash of everything the generated data depends on."""
    from quantgate.lmeval import full_sizes
    from quantgate.lmeval.tasks import _generate_data, full_data

    h = hashlib.sha256(f"{FULL_FORMAT}|{__version__}".encode())
    for module in (full_data, _generate_data, full_sizes):
        h.update(Path(module.__file__).read_bytes())
    for f in sorted(DATA_DIR.rglob("*.jsonl")):
        h.update(str(f.relative_to(DATA_DIR)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def full_dir(cache_root: Path | None = None) -> Path:
    """Write (once) and return the local-full directory: data/ (datasets) and tasks/ (YAMLs)."""
    from quantgate.lmeval.tasks.full_data import write_full_data

    official = lm_eval_tasks_dir()
    # the YAMLs name the installed lm-eval's files: key them by its path too
    key = data_key() + "-" + hashlib.sha256(str(official).encode()).hexdigest()[:8]

    def fill(directory: Path) -> None:
        write_full_data(directory / "data")
        (directory / "tasks").mkdir()
        # the final location, not the staging one: the YAMLs are read after the rename
        write_configs(directory / "tasks", leaderboard_task_configs(official, final / "data", MMLU_SUBJECT_SIZES))

    parent = quantgate_cache(cache_root) / "local-full"
    final = parent / key
    return write_once(parent, key, fill)


def full_include_dir(cache_root: Path | None = None) -> Path:
    return full_dir(cache_root) / "tasks"


def full_data_dir(cache_root: Path | None = None) -> Path:
    return full_dir(cache_root) / "data"


def full_task_manager():
    """A TaskManager that knows only the local-full tasks."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(full_include_dir()), include_defaults=False)
