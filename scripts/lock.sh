#!/usr/bin/env bash
# Regenerates the hash-pinned dependency locks the Dockerfile installs from (`make lock`):
#   requirements.lock        runtime deps of `quantgate` (any platform, Python 3.11), pinned to the
#                            versions in .venv so the image runs what the tests ran
#   requirements-vllm.lock   runtime deps plus the `vllm` extra (linux x86_64: vLLM's CUDA wheels)
#   requirements-build.lock  the build backend from pyproject's [build-system] (builder stage only)
# Run it after changing dependencies in pyproject.toml; tests/unit/test_dockerfile*.py checks the locks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=.venv/bin
"$bin/pip" install -q 'uv==0.13.8'
mkdir -p build
"$bin/pip" freeze --exclude-editable > build/venv-constraints.txt
compile=("$bin/uv" pip compile --quiet --python-version 3.11 --generate-hashes --custom-compile-command 'make lock')
"${compile[@]}" pyproject.toml --universal -c build/venv-constraints.txt -o requirements.lock
# vLLM pins its own numpy/torch: resolved on its own, not constrained to .venv.
"${compile[@]}" pyproject.toml --extra vllm --python-platform x86_64-manylinux_2_31 -o requirements-vllm.lock
"$bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
  > build/build-requirements.in
"${compile[@]}" build/build-requirements.in --universal -o requirements-build.lock
echo "lock: wrote requirements.lock requirements-vllm.lock requirements-build.lock"
