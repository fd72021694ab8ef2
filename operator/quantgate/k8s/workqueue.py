"""A keyed, deduplicating work queue (controller-runtime's semantics, asyncio).

* `add(key)`: a key waits in the queue at most once; adding it again while it waits is a
  no-op, adding it while a worker reconciles it marks it *dirty*, and it goes back into the
  queue when that reconcile ends, so one key is never reconciled twice at a time and an event
  during a reconcile is never lost;
* `add_after(key, seconds)`: add it later (the earliest of several pending delays wins);
* the handler returns a requeue-after in seconds (None: done until the next event); an
  exception requeues the key with capped exponential backoff (`base * 2**(failures-1)`, at
  most `cap`) and logs one line per error; a success resets the key's failure count;
* `forget(key)`: drop a deleted object's pending work and failure count.

Progress: `last_progress` is the monotonic time a worker last finished an item, found the
queue empty, or work arrived at an idle queue; `stalled(after_s)` says the workers have had work
for that long and finished none (an idle spell before the work does not count).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Hashable

log = logging.getLogger("quantgate.workqueue")

Handler = Callable[[Hashable], Awaitable[float | None]]


def describe(exc: BaseException) -> str:
    """One short, secret-free line for an error (an ApiException's status and reason, not its
    headers and body)."""
    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "reason"):
        return f"HTTP {status} {exc.reason}"
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class WorkQueue:
    def __init__(self, handler: Handler, workers: int = 16, backoff_base_s: float = 1.0,
                 backoff_cap_s: float = 60.0, name: str = "reconcile"):
        self.handler = handler
        self.workers = workers
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.name = name
        self._ready: asyncio.Queue | None = None
        self._queued: set = set()  # in _ready, not yet taken
        self._active: set = set()  # a worker is reconciling it
        self._dirty: set = set()  # added while active: requeue when that reconcile ends
        self._timers: dict = {}  # key -> (due monotonic, TimerHandle)
        self._failures: dict = {}
        self._tasks: list[asyncio.Task] = []
        self.last_progress = time.monotonic()
        self.processed = 0

    # ---- producers (event loop thread) ------------------------------------------------
    def add(self, key: Hashable) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        if not len(self):  # work after an idle spell: the stall clock starts now
            self.last_progress = time.monotonic()
        self._queued.add(key)
        self._queue().put_nowait(key)

    def add_after(self, key: Hashable, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        due = time.monotonic() + seconds
        current = self._timers.get(key)
        if current is not None and current[0] <= due:
            return  # an earlier wake-up is already set
        if current is not None:
            current[1].cancel()
        handle = asyncio.get_running_loop().call_later(seconds, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: Hashable) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()
        self._failures.pop(key, None)
        self._dirty.discard(key)
        self._queued.discard(key)  # its entry stays in the asyncio.Queue; a worker skips it

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    def pending(self) -> int:
        """Keys queued or being reconciled now (not those with a timer)."""
        return len(self)

    def stalled(self, after_s: float) -> bool:
        return len(self) > 0 and time.monotonic() - self.last_progress > after_s

    # ---- workers --------------------------------------------------------------------
    def _queue(self) -> asyncio.Queue:
        if self._ready is None:
            self._ready = asyncio.Queue()
        return self._ready

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._worker(), name=f"{self.name}-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for _due, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def _worker(self) -> None:
        queue = self._queue()
        while True:
            if queue.empty():
                self.last_progress = time.monotonic()  # idle is not stalled
            key = await queue.get()
            if key not in self._queued:  # forgotten while it waited
                continue
            self._queued.discard(key)
            self._active.add(key)
            try:
                await self._process(key)
            finally:
                self._active.discard(key)
                self.last_progress = time.monotonic()
                self.processed += 1
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)

    async def _process(self, key: Hashable) -> None:
        try:
            requeue = await self.handler(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (failures - 1))
            log.warning("%s %s failed (attempt %d), retrying in %.3gs: %s", self.name, _show(key), failures,
                        delay, describe(exc))
            self.add_after(key, delay)
            return
        self._failures.pop(key, None)
        if requeue is not None:
            self.add_after(key, requeue)


def _show(key) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)
