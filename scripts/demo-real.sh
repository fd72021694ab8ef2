#!/usr/bin/env bash
# make demo-real: SmolLM2-135M-Instruct's Q4_1 GGUF against its Q3_K_M and Q2_K requantizations,
# evaluated in process by llama.cpp (quantgate run --engine llama-cpp); prints the decision matrix
# with real scores, flips and fidelity; the generation task (gsm8k) also runs through
# llama-cpp-python's OpenAI-compatible server on loopback, its answers compared with the
# engine's. Needs `make tools-llama` (the Makefile runs it first).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m quantgate.demo.real --output demo-real-output "$@"
