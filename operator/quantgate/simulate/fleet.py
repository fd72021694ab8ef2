"""SimulatedFleet: start every variant of a variants file as its own server process.

    with SimulatedFleet("examples/simulate/demo-fleet.yaml") as fleet:
        fleet.url("fp16")        # http://127.0.0.1:PORT  (plus the variant's routePrefix)
        fleet.stats("fp16")      # the server's /stats counters

One process per variant so that several evaluations use several cores. Each
binds a free port on 127.0.0.1. A variant with refuseConnections gets the URL of
a port nobody listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from quantgate.errors import QuantgateError
from quantgate.simulate.config import FleetConfig, load_fleet
from quantgate.simulate.index import cached_index


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connections are refused


class SimulatedFleet:
    def __init__(self, source: str | Path | dict | FleetConfig, variants: list[str] | None = None,
                 host: str = "127.0.0.1", start_timeout: float = 60.0):
        self.config = source if isinstance(source, FleetConfig) else load_fleet(source)
        self.names = variants or [v.name for v in self.config.variants]
        self.host, self.start_timeout = host, start_timeout
        self.ports: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "SimulatedFleet":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        # build once here, not in every child
        indexes = [arg for suite in dict.fromkeys(self.config.suites)
                   for arg in ("--index", str(cached_index(suite=suite)))]
        payload = self.config.model_dump_json(by_alias=True) + "\n"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            for name in self.names:
                variant = self.config.variant(name)
                if variant.refuse_connections:
                    self.ports[name] = _closed_port()
                    continue
                proc = subprocess.Popen(
                    [sys.executable, "-m", "quantgate.simulate.process", "--variant", name,
                     *indexes, "--host", self.host],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                self._procs[name] = proc
                proc.stdin.write(payload)
                proc.stdin.close()
            for name, proc in self._procs.items():
                self.ports[name] = self._wait_listening(name, proc)
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, name: str, proc: subprocess.Popen) -> int:
        deadline = time.monotonic() + self.start_timeout
        line = proc.stdout.readline()  # blocks until the child prints or exits
        if not line.startswith("LISTENING ") or time.monotonic() > deadline:
            raise QuantgateError(f"simulated variant {name} did not start (exit status {proc.poll()})")
        return int(line.split()[1])

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def url(self, name: str) -> str:
        """Base URL of a variant, including its routePrefix (what `quantgate run --endpoint` takes)."""
        prefix = self.config.variant(name).route_prefix.rstrip("/")
        return f"{self.root_url(name)}{prefix}"

    def root_url(self, name: str) -> str:
        return f"{self.config.variant(name).scheme}://{self.host}:{self.ports[name]}"

    def stats(self, name: str) -> dict:
        context = None
        if self.config.variant(name).tls_cert_file:  # the simulator's own counters: not what a test checks
            import ssl

            context = ssl._create_unverified_context()
        with urllib.request.urlopen(f"{self.root_url(name)}/stats", timeout=10, context=context) as resp:
            return json.load(resp)
