"""Prepared Hugging Face datasets caches, for clusters without the Hub.

A cache is a `HF_DATASETS_CACHE` directory as `datasets` writes it
(`<namespace>___<name>/<config>/<version>/<hash>/` with Arrow files and dataset_info.json).
`pull` fills one by letting lm-eval construct each task online with the cache pointed there
(so it holds exactly what lm-eval asks for later); `check` constructs each task again with
the Hub offline and names every task that cannot load; `use_cache` makes a run read one.

`datasets` writes lock files next to the data even when only reading, so a read-only cache
(a PVC mounted readOnly, an image volume) is read through an overlay: the same directories,
created in writable space, whose files are symlinks to the cache's.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from quantgate.errors import InputError, QuantgateError

DATASETS_MISSING = 16
_ACTIVE: Path | None = None  # the cache this process reads, for error messages


class DatasetsMissing(QuantgateError):
    exit_code = DATASETS_MISSING


def _writable_home() -> Path:
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".quantgate-write-probe"
        probe.write_text("")
        probe.unlink()
        return home
    except OSError:
        return Path(tempfile.gettempdir()) / "quantgate-hf-home"


def mirror(source: Path, target: Path) -> int:
    """Recreate `source`'s directories under `target`, each file a symlink; return the file count."""
    count = 0
    for root, _dirs, files in os.walk(source, followlinks=True):
        rel = Path(root).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith(".lock"):
                continue
            os.symlink(Path(root) / name, target / rel / name)
            count += 1
    return count


def _looks_like_cache(directory: Path) -> bool:
    return any(p.is_dir() for p in directory.glob("*/*/*/*"))


def _point_datasets_at(cache: Path, offline: bool) -> None:
    os.environ["HF_DATASETS_CACHE"] = str(cache)
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    # `datasets` and `huggingface_hub` read these once, at import: update an earlier import too.
    if "datasets" in sys.modules:
        import datasets.config

        datasets.config.HF_DATASETS_CACHE = cache
        if offline:
            datasets.config.HF_HUB_OFFLINE = True
    if offline and "huggingface_hub" in sys.modules:
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True


def use_cache(directory: Path) -> Path:
    """Read datasets only from `directory` (through a fresh writable overlay), with the Hub offline."""
    global _ACTIVE
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"datasets cache {directory} is not a directory; prepare one with "
                         "`quantgate datasets pull --suite SUITE --to DIR`")
    if not _looks_like_cache(directory):
        raise InputError(f"datasets cache {directory} holds no prepared dataset (expected "
                         "NAMESPACE___NAME/CONFIG/VERSION/HASH directories); prepare it with `quantgate datasets pull`")
    home = _writable_home()
    home.mkdir(parents=True, exist_ok=True)
    overlay = Path(tempfile.mkdtemp(prefix="datasets-overlay-", dir=home))  # one per process: runs may share HF_HOME
    atexit.register(shutil.rmtree, overlay, True)
    mirror(directory.resolve(), overlay)
    _point_datasets_at(overlay, offline=True)
    _ACTIVE = directory
    return overlay


def missing_dataset(task: str, exc: BaseException) -> DatasetsMissing | None:
    """The one-line error for a task whose data the active cache lacks (None without a cache)."""
    if _ACTIVE is None:
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
    return DatasetsMissing(f"datasets cache {_ACTIVE} lacks the data of task {task} ({first}); add it with "
                           "`quantgate datasets pull --tasks TASK --to DIR` on a machine with Hub access")


# ------------------------------------------------------------------ pull and check
def _task_manager(local: bool):
    if local:
        from quantgate.lmeval.local_tasks import local_task_manager

        return local_task_manager()
    from lm_eval.tasks import TaskManager

    return TaskManager()


def quiet() -> None:
    """No progress bars or 'using the cached version' warnings: one line per task is the report."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def load_each(specs, local: bool = False, on_task=None) -> dict[str, str | None]:
    """Construct every task (this loads its datasets); task name → None or the one-line problem."""
    quiet()
    manager = _task_manager(local)
    problems: dict[str, str | None] = {}
    for spec in specs:
        try:
            manager.load([spec.name])
            problems[spec.name] = None
        except Exception as exc:  # datasets/hub errors of every kind: report, go on with the next task
            problems[spec.name] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
        if on_task:
            on_task(spec.name, problems[spec.name])
    return problems


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file() and not p.is_symlink())


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def pull(specs, target: Path, on_task=None) -> dict[str, str | None]:
    """Download and prepare every task's datasets into `target` (needs Hub access)."""
    target.mkdir(parents=True, exist_ok=True)
    downloads = Path(tempfile.mkdtemp(prefix="quantgate-pull-"))
    saved = {k: os.environ.get(k) for k in ("HF_HOME", "HF_DATASETS_CACHE")}
    os.environ["HF_HOME"] = str(downloads)  # raw downloads: only the prepared Arrow files are kept
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("HF_DATASETS_OFFLINE", None)
    _point_datasets_at(target, offline=False)
    try:
        return load_each(specs, on_task=on_task)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------ the local data as a cache
@dataclass(frozen=True)
class Packed:
    repo_id: str
    config: str
    files: dict[str, str]  # split → path under quantgate/lmeval/tasks/data


def local_as_hub() -> list[Packed]:
    """The datasets shipped for the `local` suite, under the official dataset ids and configs
    lm-eval's own task definitions load (same schemas, our own items)."""
    from quantgate.lmeval.local_tasks import MMLU_SUBJECTS

    packed = [
        Packed("openai/gsm8k", "main", {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}),
        Packed("allenai/ai2_arc", "ARC-Challenge", {"train": "arc_challenge/train.jsonl",
                                                    "test": "arc_challenge/test.jsonl"}),
        Packed("Rowan/hellaswag", "default", {"train": "hellaswag/train.jsonl",
                                              "validation": "hellaswag/validation.jsonl"}),
        Packed("allenai/winogrande", "winogrande_xl", {"train": "winogrande/train.jsonl",
                                                       "validation": "winogrande/validation.jsonl"}),
        Packed("truthfulqa/truthful_qa", "multiple_choice", {"validation": "truthfulqa_mc2/validation.jsonl"}),
    ]
    packed += [Packed("cais/mmlu", subject, {"test": f"mmlu/{subject}/test.jsonl", "dev": f"mmlu/{subject}/dev.jsonl"})
               for subject in MMLU_SUBJECTS]
    return packed


def pack_local(target: Path, only: list[Packed] | None = None) -> list[Path]:
    """Write the local data as a prepared cache in `target`, laid out as `pull` would lay out the
    official datasets; returns the dataset directories written."""
    from datasets.data_files import DataFilesDict
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.json.json import Json

    from quantgate.lmeval.local_tasks import DATA_DIR

    quiet()
    target.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=target))
    written = []
    try:
        for item in only or local_as_hub():
            namespace, name = item.repo_id.split("/")
            snake = camelcase_to_snakecase(name)
            files = DataFilesDict.from_patterns({split: [str(DATA_DIR / rel)] for split, rel in item.files.items()})
            builder = Json(cache_dir=str(build), dataset_name=snake, config_name=item.config, data_files=files,
                           hash="quantgate-local")
            builder.download_and_prepare()
            final = target / f"{namespace}___{snake}" / item.config / str(builder.config.version) / "quantgate-local"
            shutil.rmtree(final, ignore_errors=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(builder.cache_dir, final)
            written.append(final)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return written
