"""A bounded exit: once the operator starts shutting down (kopf's cleanup, which a TERM starts),
the process ends within a deadline even when a reconcile thread is stuck.

A thread cannot be stopped from outside, and Python joins every non-daemon thread (kopf's
executor threads among them) before the process exits, so one stuck reconcile would keep the
process alive until the kubelet's KILL. `arm(deadline_s, ...)` starts a daemon timer; if the
process is still alive when it runs out, it logs what is still running and ends the process
with `os._exit(1)`. A shutdown that finishes in time exits normally before that.

`Inflight` records the work running in worker threads (what the timer's line names).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable

log = logging.getLogger("quantgate.operator")
EXIT_CODE = 1
_armed = threading.Event()


class Inflight:
    """What worker threads are running now, with when each began (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, float]] = {}
        self._ids = itertools.count()

    @contextmanager
    def running(self, what: str):
        token = next(self._ids)
        with self._lock:
            self._running[token] = (what, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                del self._running[token]

    def describe(self) -> list[str]:
        """'<what> (for Ns)', the longest-running first."""
        now = time.monotonic()
        with self._lock:
            items = sorted(self._running.values(), key=lambda item: item[1])
        return [f"{what} (for {now - began:.0f}s)" for what, began in items]


def arm(deadline_s: float, stuck: Callable[[], list[str]], exit=os._exit) -> bool:
    """Start the deadline (once per process; False when it already runs). `stuck()` names the
    work still running when it expires."""
    if _armed.is_set():
        return False
    _armed.set()
    log.info("shutting down: the process exits within %gs even if work is stuck", deadline_s)
    timer = threading.Timer(deadline_s, _expire, (deadline_s, stuck, exit))
    timer.daemon = True
    timer.name = "shutdown-deadline"
    timer.start()
    return True


def _expire(deadline_s: float, stuck: Callable[[], list[str]], exit) -> None:
    try:
        what = stuck() or _live_threads() or ["nothing named (kopf's own shutdown did not finish)"]
    except Exception as exc:  # the line and the exit matter more than its detail
        what = [f"unknown ({type(exc).__name__})"]
    log.error("exiting: shutdown not finished %gs after it began; still running: %s", deadline_s, "; ".join(what))
    exit(EXIT_CODE)


def _live_threads() -> list[str]:
    return [f"thread {t.name}" for t in threading.enumerate()
            if not t.daemon and t is not threading.main_thread() and t.is_alive()]
