"""Progress of a run: requests done / total, rate and ETA.

On a terminal one line is rewritten in place; otherwise (a Job's log) a plain
line is printed every `interval` seconds and at the end of each phase.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, interval: float = 10.0, label: str = ""):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.5 if self.tty else interval
        self.label = f"{label} " if label else ""
        self._lock = threading.Lock()
        self.phase_name = ""
        self.total = 0
        self.done = 0
        self.requests = 0  # completion requests answered, all phases
        self.first_request: float | None = None
        self.last_request: float | None = None
        self._phase_start = time.monotonic()
        self._last_print = 0.0

    def phase(self, name: str, total: int, unit: str = "requests") -> None:
        with self._lock:
            self._finish_line()
            self.phase_name, self.total, self.done = name, total, 0
            self._phase_start = self._last_print = time.monotonic()
        self.message(f"{name}: {total} {unit}")

    def advance(self, n: int = 1, request: bool = True) -> None:
        now = time.monotonic()
        with self._lock:
            self.done += n
            if request:
                self.requests += n
                self.first_request = self.first_request or now
                self.last_request = now
            if now - self._last_print >= self.interval or self.done >= self.total:
                self._last_print = now
                self._print(now)

    def _print(self, now: float) -> None:
        elapsed = max(now - self._phase_start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_s = f"{eta:.0f}s" if eta != float("inf") else "?"
        line = f"{self.label}{self.phase_name}: {self.done}/{self.total} ({rate:.1f}/s, ETA {eta_s})"
        if self.tty:
            self.stream.write("\r" + line.ljust(70))
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _finish_line(self) -> None:
        if self.tty and 0 < self.done < self.total:
            self.stream.write("\n")

    def message(self, text: str) -> None:
        self.stream.write(f"{self.label}{text}\n")
        self.stream.flush()

    @property
    def throughput(self) -> float | None:
        if self.first_request is None or self.last_request is None or self.last_request <= self.first_request:
            return None
        return self.requests / (self.last_request - self.first_request)


class SilentProgress(Progress):
    def __init__(self):
        super().__init__(stream=open("/dev/null", "w"))  # noqa: SIM115 - lives as long as the run
