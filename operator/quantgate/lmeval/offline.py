"""Environment for running lm-eval without the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path


def offline_environment(require_offline: bool = True) -> None:
    """Point the datasets cache somewhere writable; with require_offline, make Hub access fail fast.

    The `local` suite needs nothing from the Hub; a stray download attempt should
    fail at once instead of hanging on DNS. The `leaderboard`/`tiny` suites on a
    real cluster need the Hub (or a pre-filled HF_HOME), so they pass False.
    """
    if require_offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    try:
        (home / "datasets").mkdir(parents=True, exist_ok=True)
        probe = home / "datasets" / ".quantgate-write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError:
        home = Path(os.environ.get("TMPDIR", "/tmp")) / "quantgate-hf-home"
        (home / "datasets").mkdir(parents=True, exist_ok=True)
    os.environ["HF_HOME"] = str(home)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
