"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on loopback.

    with LlamaServer({"Q4_1": path_a, "Q2_K": path_b}, workdir) as server:
        server.url  # http://127.0.0.1:PORT; each model is served under its alias

One process serves every model through the server's own multi-model config file
(`CONFIG_FILE`): it holds one model at a time, loads another when a request names it, and
answers one request at a time whatever the model, so several processes would not evaluate
faster on a few cores; one process starts once and needs one port. The config and the
server's log are written into `workdir`.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from quantgate.errors import QuantgateError

# What `llama-cpp-python[server]` adds (llama_cpp/server imports them at start).
SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
HOST = "127.0.0.1"


class ServerFailed(QuantgateError):
    """The server could not be started."""


def missing_server_modules() -> list[str]:
    return [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def server_config(models: dict[str, Path], port: int, n_ctx: int, n_threads: int, seed: int) -> dict:
    """The server's config file: one entry per model, under its alias. Generation only:
    logits_all off (the server's default, on, makes llama.cpp compute the output layer for every
    prompt token), and its llama.cpp log off."""
    return {"host": HOST, "port": port, "models": [
        {"model": str(path), "model_alias": alias, "n_ctx": n_ctx, "n_threads": n_threads,
         "n_threads_batch": n_threads, "seed": seed, "logits_all": False, "verbose": False}
        for alias, path in models.items()]}


class LlamaServer:
    def __init__(self, models: dict[str, Path], workdir: Path, *, port: int | None = None, n_ctx: int = 2048,
                 n_threads: int | None = None, seed: int = 1234, ready_timeout_s: float = 120.0):
        self.models, self.workdir = models, Path(workdir)
        self.port, self.n_ctx, self.seed = port, n_ctx, seed
        self.n_threads = n_threads or os.cpu_count() or 1
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def check(self) -> None:
        """What would stop the server from starting, found without starting it: ServerFailed."""
        missing = missing_server_modules()
        if missing:
            raise ServerFailed(f"llama-cpp-python's server needs its [server] extra ({', '.join(missing)} missing): "
                               "run `make tools-llama` or pip install 'llama-cpp-python[server]'")
        if self.port is not None and port_in_use(self.port):
            raise ServerFailed(f"port {self.port} on {HOST} is in use; choose another port or leave it out "
                               "(a free one is picked)")

    def start(self) -> "LlamaServer":
        self.check()
        if self.port is None:
            self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "server-config.json"
        config.write_text(json.dumps(server_config(self.models, self.port, self.n_ctx, self.n_threads, self.seed),
                                     indent=2))
        with open(self.log, "w") as sink:  # a file: a full pipe would block the server
            self.proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server"], stdout=sink, stderr=sink,
                                         stdin=subprocess.DEVNULL, env={**os.environ, "CONFIG_FILE": str(config)})
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(f"llama_cpp.server exited with status {self.proc.returncode} before answering: "
                                   f"{self._last_log_line()} (log: {self.log})")
            try:
                if requests.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"llama_cpp.server did not answer on {self.url} within "
                                   f"{self.ready_timeout_s:.0f} s (log: {self.log})")
            time.sleep(0.2)

    def _last_log_line(self) -> str:
        try:
            lines = [line.strip() for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        if any("address already in use" in line.lower() for line in lines):
            return f"port {self.port} on {HOST} is in use"
        return lines[-1][:300] if lines else "no output"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
