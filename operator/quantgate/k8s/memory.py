"""Keep the operator's resident memory flat on glibc.

Handlers run in a thread pool; glibc gives each thread its own malloc arena and keeps freed
memory in them, so RSS grows with every decoded result set even though Python freed it.
`limit_arenas()` (call before threads start) caps the arenas; `trim()` hands freed pages back
to the OS after a large transient allocation (reading results), at most every few seconds.
Both are no-ops where glibc is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

_M_ARENA_MAX = -8
_lock = threading.Lock()
_last = 0.0


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_arenas(arenas: int = 2) -> bool:
    libc = _libc()
    return bool(libc and hasattr(libc, "mallopt") and libc.mallopt(_M_ARENA_MAX, arenas))


def trim(min_interval_s: float = 5.0) -> None:
    global _last
    libc = _libc()
    if not libc or not hasattr(libc, "malloc_trim"):
        return
    with _lock:
        now = time.monotonic()
        if now - _last < min_interval_s:
            return
        _last = now
    libc.malloc_trim(0)


def trim_periodically(interval_s: float = 30.0) -> None:
    """A daemon thread trimming every `interval_s`: frees left after bursts go back to the OS
    even when no verdict follows them."""

    def loop():
        while True:
            time.sleep(interval_s)
            trim(0)

    threading.Thread(target=loop, name="malloc-trim", daemon=True).start()
