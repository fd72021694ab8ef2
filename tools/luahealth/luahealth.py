"""Build and call the luahealth harness (Argo CD's health-script runtime) from Python tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def go_binary() -> str | None:
    return shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)


def build() -> Path:
    """Builds the harness once per source version into ~/.cache/quantgate/bin (or $QUANTGATE_CACHE/bin)."""
    go = go_binary()
    if go is None:
        raise FileNotFoundError("Go is not installed; tools/luahealth needs it")
    digest = hashlib.sha256(b"".join((HERE / f).read_bytes() for f in ("go.mod", "go.sum", "main.go")))
    cache = Path(os.environ.get("QUANTGATE_CACHE", Path.home() / ".cache/quantgate"))
    binary = cache / "bin" / f"luahealth-{digest.hexdigest()[:12]}"
    if not binary.exists():
        env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod")
        tmp = binary.with_suffix(f".tmp{os.getpid()}")
        subprocess.run([go, "build", "-trimpath", "-o", str(tmp), "."], cwd=HERE, env=env, check=True)
        tmp.replace(binary)
    return binary


def run(binary: Path, script: Path, objects: list[dict], open_libs: bool = False) -> list[dict]:
    """Health of each object: {"status", "message"} or {"error"} (a Lua error; Argo CD shows Unknown)."""
    cmd = [str(binary)] + (["-open-libs"] if open_libs else []) + [str(script)]
    out = subprocess.run(cmd, input=json.dumps(objects), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
