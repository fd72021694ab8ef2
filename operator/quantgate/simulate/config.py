"""The simulator's variants file (YAML), e.g. examples/simulate/demo-fleet.yaml.

    seed: 7
    suites: [local]              # default; add local-full to serve the full-size suite
    reference: fp16              # flips are planted relative to this variant
    variants:
      - name: fp16
        model: llama-3.1-8b      # served model name (GET /v1/models)
        size: 16.1Gi
        accuracy: {gsm8k: 0.52, mmlu: 0.66, ...}   # per task of the local suite
        flipRate: {default: 0.03, gsm8k: 0.12}     # share of items whose outcome differs from the reference
        latencyMs: 0             # knobs: see Variant
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from quantgate.core.base import CamelModel
from quantgate.errors import InputError

SCORED_TASKS = ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k", "humaneval", "mbpp")


class Variant(CamelModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: str | None = Field(None, description="Served model name; default: the variant name.")
    size: str | None = None
    accuracy: dict[str, float] = Field(default_factory=dict, description="Planted accuracy per task (0..1).")
    flip_rate: dict[str, float] = Field(default_factory=dict, description="Per task, or 'default'.")
    # behaviour knobs
    latency_ms: float = Field(0, ge=0, description="Added to every completion request.")
    per_token_ms: float = Field(0, ge=0, description="Added per generated token.")
    max_num_seqs: int = Field(256, ge=1, description="Requests served at once; the rest queue (vLLM max_num_seqs).")
    max_model_len: int = Field(32768, ge=16)
    error_rate: float = Field(0, ge=0, le=1, description="Share of completion requests answered with HTTP 500.")
    fail_after: int | None = Field(None, ge=0, description="Answer every completion after the first N with HTTP 500.")
    hang_after: int | None = Field(None, ge=0, description="Never answer completions after the first N.")
    refuse_connections: bool = Field(False, description="Do not listen at all (connection refused).")
    startup_delay_s: float = Field(0, ge=0, description="/health and /v1/models answer 503 this long after start.")
    api_key: str | None = Field(None, description="Require this bearer token on /v1/* (like vllm --api-key).")
    route_prefix: str = Field("", description="e.g. /openai: serve KServe-style /openai/v1/... routes.")
    tokenizer_endpoints: bool = Field(True, description="Serve /tokenize, /detokenize, /tokenizer_info.")
    prompt_logprobs: Literal["ok", "missing", "shifted"] = Field(
        "ok", description="Echoed prompt log-probabilities: right; missing (generated tokens only, like "
        "llama.cpp's llama-server); shifted by one position (like llama-cpp-python's server).")
    tls_cert_file: str | None = Field(None, description="Serve HTTPS with this PEM certificate (chain) ...")
    tls_key_file: str | None = Field(None, description="... and this PEM private key.")

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert_file else "http"

    @property
    def served_model(self) -> str:
        return self.model or self.name

    @model_validator(mode="after")
    def _ranges(self) -> "Variant":
        for task, value in [*self.accuracy.items(), *self.flip_rate.items()]:
            if not 0 <= value <= 1:
                raise ValueError(f"variant {self.name}: {task} must be between 0 and 1, got {value}")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(f"variant {self.name}: give both tlsCertFile and tlsKeyFile, or neither")
        return self


class FleetConfig(CamelModel):
    seed: int = 0
    suites: list[Literal["local", "local-full"]] = Field(
        default_factory=lambda: ["local"], min_length=1,
        description="Whose items the servers recognise: local (shipped), local-full (the full-size suite; its "
        "index takes about 40 s to build once and a second to load in every server).")
    reference: str | None = None
    default_accuracy: float = Field(0.5, ge=0, le=1)
    variants: list[Variant]

    @model_validator(mode="after")
    def _check(self) -> "FleetConfig":
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.reference is not None and self.reference not in names:
            raise ValueError(f"reference {self.reference!r} is not one of the variants {names}")
        return self

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise InputError(f"no variant {name!r}; the file defines {', '.join(v.name for v in self.variants)}")


def load_fleet(source: str | Path | dict) -> FleetConfig:
    """Parse a variants file (path) or an already-loaded dict; InputError on bad input."""
    if isinstance(source, dict):
        data = source
    else:
        try:
            data = yaml.safe_load(Path(source).read_text())
        except OSError as exc:
            raise InputError(f"cannot read variants file {source}: {exc.strerror}") from exc
    try:
        return FleetConfig.model_validate(data)
    except Exception as exc:  # pydantic ValidationError → one line
        first = str(exc).splitlines()
        raise InputError(f"invalid variants file {source if not isinstance(source, dict) else ''}: "
                         f"{' '.join(first[:3])}") from exc
