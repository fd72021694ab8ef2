"""Requantize a GGUF file with llama.cpp's own quantizer (through llama-cpp-python's binding).

    python -m quantgate.engines.llama_quantize IN.gguf OUT.gguf Q2_K

Quantizing an already quantized file needs `allow_requantize`; the result is a further
compressed version of the input, not of the original full-precision weights.
"""

from __future__ import annotations

import os
import sys
import time

TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M", "Q3_K_S", "Q3_K_L", "Q2_K")


def quantize(source: str, target: str, kind: str, threads: int | None = None) -> None:
    import llama_cpp

    name = f"LLAMA_FTYPE_MOSTLY_{kind.upper()}"
    if kind.upper() not in TYPES or not hasattr(llama_cpp, name):
        raise SystemExit(f"llama_quantize: unknown type {kind!r}; use one of {', '.join(TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, name)
    params.allow_requantize = True
    params.nthread = threads or os.cpu_count() or 1
    partial = target + ".part"
    rc = llama_cpp.llama_model_quantize(source.encode(), partial.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_quantize: llama.cpp failed to quantize {source} to {kind} (code {rc})")
    os.replace(partial, target)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m quantgate.engines.llama_quantize IN.gguf OUT.gguf TYPE", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    quantize(*argv)
    print(f"llama: quantized {argv[0]} to {argv[2]} in {time.monotonic() - t0:.1f}s: {argv[1]} "
          f"({os.path.getsize(argv[1])} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
