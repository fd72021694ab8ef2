"""Pack llama-cpp-python's Python package and the llama.cpp libraries built from its sdist into
a wheel (scripts/build-llama.sh). Usage: llama_wheel.py SDIST_DIR LIB_DIR OUT_DIR

The libraries carry RUNPATH $ORIGIN (the sdist's CMakeLists sets it), so they find each other
in llama_cpp/lib/; wheels hold no symlinks, so each library is stored under every name that is
looked up (lib<name>.so for llama_cpp's loader, the soname for the dynamic linker).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import sys
import zipfile
from pathlib import Path

LIBS = ("llama", "ggml", "ggml-base", "ggml-cpu")


def _metadata(sdist: Path) -> str:
    return (sdist / "PKG-INFO").read_text()


def main(sdist: Path, libdir: Path, out: Path) -> Path:
    meta = _metadata(sdist)
    version = next(line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Version:"))
    files: dict[str, bytes] = {}
    for path in sorted((sdist / "llama_cpp").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[f"llama_cpp/{path.relative_to(sdist / 'llama_cpp').as_posix()}"] = path.read_bytes()
    for name in LIBS:
        real = (libdir / f"lib{name}.so").resolve(strict=True)
        data = real.read_bytes()
        files[f"llama_cpp/lib/lib{name}.so"] = data
        files[f"llama_cpp/lib/lib{name}.so.0"] = data  # the soname the other libraries name
    info = f"llama_cpp_python-{version}.dist-info"
    files[f"{info}/METADATA"] = meta.encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: quantgate scripts/llama_wheel.py\n"
                              b"Root-Is-Purelib: false\nTag: py3-none-linux_x86_64\n")
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([f"{info}/RECORD", "", ""])
    files[f"{info}/RECORD"] = record.getvalue().encode()
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"llama_cpp_python-{version}-py3-none-linux_x86_64.whl"
    partial = wheel.with_suffix(".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    partial.replace(wheel)
    return wheel


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print("usage: llama_wheel.py SDIST_DIR LIB_DIR OUT_DIR", file=sys.stderr)
        sys.exit(2)
    print(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
