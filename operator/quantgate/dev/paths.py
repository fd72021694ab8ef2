"""Where the dev cluster finds its binaries, keeps its state and finds the project's virtualenv."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def cache_dir() -> Path:
    return Path(os.environ.get("QUANTGATE_CACHE", Path.home() / ".cache" / "quantgate"))


def bin_dir() -> Path:
    """Stable links made by scripts/build-tools.sh (override with QUANTGATE_BIN)."""
    return Path(os.environ.get("QUANTGATE_BIN", cache_dir() / "bin"))


def default_state_dir() -> Path:
    return cache_dir() / "dev"


def binary(name: str) -> Path:
    return bin_dir() / name


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if not os.access(binary(name), os.X_OK)]


def venv_bin() -> Path:
    """The bin/ of the virtualenv running this Python: pods' `python` and `quantgate` resolve here."""
    return Path(sys.prefix) / "bin"
