"""The `local` suite: lm-eval's official task configs pointed at our own small datasets.

lm-eval resolves `include:` by file path and `!function` relative to the
included YAML, so each local task is a tiny YAML that includes the installed
official one and only swaps the dataset for JSON files shipped in
quantgate/lmeval/tasks/data. The installed lm_eval path is only known at run
time, so the YAMLs are generated into a cache directory (keyed by both paths)
and loaded with `TaskManager(include_path=..., include_defaults=False)`, which
skips lm-eval's 5-second scan of its ~14,000 bundled YAMLs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from quantgate import __version__
from quantgate.api.v1alpha1 import SUITE_TASKS
from quantgate.lmeval.code_tasks import code_task_configs, dump

DATA_DIR = Path(__file__).parent / "tasks" / "data"
MMLU_SUBJECTS = {
    "elementary_mathematics": "stem",
    "astronomy": "stem",
    "formal_logic": "humanities",
    "logical_fallacies": "humanities",
    "high_school_geography": "social_sciences",
    "high_school_macroeconomics": "social_sciences",
    "nutrition": "other",
    "miscellaneous": "other",
}
LOCAL_TASKS = SUITE_TASKS  # the local suite runs the leaderboard's six (the table: quantgate.api.v1alpha1)


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def _dataset(data_dir: Path, files: dict[str, str | None]) -> dict:
    return {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(data_dir / rel) for split, rel in files.items() if rel}},
    }


def leaderboard_task_configs(official: Path, data_dir: Path, subjects) -> dict[str, dict]:
    """File name → YAML content of the six leaderboard tasks (MMLU: `subjects` and lm-eval's
    own mmlu groups) reading the datasets under `data_dir` (the layout of tasks/data)."""
    def dataset(files):
        return _dataset(data_dir, files)

    configs = {
        "gsm8k.yaml": {"include": str(official / "gsm8k" / "gsm8k.yaml"),
                       **dataset({"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"})},
        "arc_challenge.yaml": {"include": str(official / "arc" / "arc_challenge.yaml"), "validation_split": None,
                               **dataset({"train": "arc_challenge/train.jsonl", "test": "arc_challenge/test.jsonl"})},
        "hellaswag.yaml": {"include": str(official / "hellaswag" / "hellaswag.yaml"),
                           **dataset({"train": "hellaswag/train.jsonl",
                                      "validation": "hellaswag/validation.jsonl"})},
        "winogrande.yaml": {"include": str(official / "winogrande" / "default.yaml"),
                            **dataset({"train": "winogrande/train.jsonl",
                                       "validation": "winogrande/validation.jsonl"})},
        "truthfulqa_mc2.yaml": {"include": str(official / "truthfulqa" / "truthfulqa_mc2.yaml"),
                                **dataset({"validation": "truthfulqa_mc2/validation.jsonl"})},
    }
    mmlu = official / "mmlu" / "default"
    for subject in subjects:
        configs[f"mmlu_{subject}.yaml"] = {
            "include": str(mmlu / f"mmlu_{subject}.yaml"),
            **dataset({"test": f"mmlu/{subject}/test.jsonl", "dev": f"mmlu/{subject}/dev.jsonl"}),
        }
    # The group and its four subgroups exactly as lm-eval defines them (weighted by size).
    for name in ("_mmlu.yaml", "_mmlu_stem.yaml", "_mmlu_humanities.yaml", "_mmlu_social_sciences.yaml",
                 "_mmlu_other.yaml"):
        configs[name] = {"include": str(mmlu / name)}
    return configs


def local_task_configs(official: Path) -> dict[str, dict]:
    """File name → YAML content of every local task and group config."""
    configs = leaderboard_task_configs(official, DATA_DIR, MMLU_SUBJECTS)
    configs.update(code_task_configs(official, DATA_DIR))  # humaneval, mbpp (see code_tasks)
    return configs


def quantgate_cache(root: Path | None = None) -> Path:
    """quantgate's cache directory: `root`, else $QUANTGATE_CACHE, else ~/.cache/quantgate."""
    return root or Path(os.environ.get("QUANTGATE_CACHE", Path.home() / ".cache" / "quantgate"))


def write_once(parent: Path, key: str, fill) -> Path:
    """`parent/key`, written by `fill(directory)` the first time (into a staging directory renamed
    into place once complete, so that a reader never sees a half-written one)."""
    target = parent / key
    if (target / ".complete").exists():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=".staging-"))
    fill(staging)
    (staging / ".complete").write_text("")
    try:
        staging.rename(target)
    except OSError:  # another process won the race; its copy is identical
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_configs(directory: Path, configs: dict[str, dict]) -> None:
    for name, config in configs.items():
        (directory / name).write_text(dump(config))


def local_include_dir(cache_root: Path | None = None) -> Path:
    """Write (once) and return the directory of generated local task YAMLs."""
    official = lm_eval_tasks_dir()
    configs = local_task_configs(official)
    texts = {name: dump(config) for name, config in configs.items()}
    key = hashlib.sha256(f"{official}|{DATA_DIR}|{__version__}|{sorted(texts.items())}".encode()).hexdigest()[:16]
    return write_once(quantgate_cache(cache_root) / "local-tasks", key, lambda d: write_configs(d, configs))


def local_task_manager():
    """A TaskManager that knows only the local tasks (fast: no scan of lm-eval's own)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(local_include_dir()), include_defaults=False)
