"""The keyed work queue: dedup, one reconcile per key at a time, backoff, requeue-after."""

import asyncio
import logging
import time

from quantgate.k8s.workqueue import WorkQueue, describe


def run(coro):
    return asyncio.run(coro)


def test_a_key_added_many_times_while_it_waits_is_reconciled_once():
    calls = []

    async def handler(key):
        calls.append(key)

    async def main():
        q = WorkQueue(handler, workers=4)
        for _ in range(10):
            q.add(("ns", "a"))
        q.add(("ns", "b"))
        q.start()
        while q.processed < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await q.stop()

    run(main())
    assert sorted(calls) == [("ns", "a"), ("ns", "b")]


def test_one_key_is_never_reconciled_twice_at_once_and_an_add_during_it_is_not_lost():
    running, overlaps, calls = set(), [], []

    async def handler(key):
        if key in running:
            overlaps.append(key)
        running.add(key)
        calls.append(key)
        if len(calls) == 1:
            q.add(key)  # an event while the key is being reconciled
            q.add(key)
        await asyncio.sleep(0.05)
        running.discard(key)

    async def main():
        global q
        q.add("k")
        q.start()
        while q.processed < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        await q.stop()

    global q
    q = WorkQueue(handler, workers=8)
    run(main())
    assert overlaps == []
    assert calls == ["k", "k"]  # the adds during the first reconcile gave exactly one more


def test_errors_retry_with_capped_exponential_backoff_and_a_log_line_each(caplog):
    times = []

    async def handler(key):
        times.append(asyncio.get_running_loop().time())
        if len(times) <= 4:
            raise RuntimeError(f"boom {len(times)}")

    async def main():
        q = WorkQueue(handler, workers=1, backoff_base_s=0.02, backoff_cap_s=0.05)
        q.add("k")
        q.start()
        while q.processed < 5:
            await asyncio.sleep(0.01)
        await q.stop()
        return q

    log = logging.getLogger("quantgate.workqueue")
    log.addHandler(caplog.handler)  # directly: a runner test in the same process may have stopped propagation
    try:
        with caplog.at_level(logging.WARNING, logger="quantgate.workqueue"):
            q = run(main())
    finally:
        log.removeHandler(caplog.handler)
    gaps = [b - a for a, b in zip(times, times[1:])]
    tick = 0.001  # asyncio may fire a timer up to its clock resolution early
    assert gaps[0] >= 0.02 - tick and gaps[1] >= 0.04 - tick and gaps[2] >= 0.05 - tick and gaps[3] >= 0.05 - tick
    lines = list(dict.fromkeys(r.getMessage() for r in caplog.records))  # once, however it reached caplog
    assert len(lines) == 4 and "attempt 3" in lines[2] and "boom 3" in lines[2] and "0.05s" in lines[2]
    assert q._failures == {}  # the success reset the count


def test_requeue_after_brings_the_key_back_and_an_event_comes_sooner():
    calls = []

    async def handler(key):
        calls.append(asyncio.get_running_loop().time())
        return 0.1 if len(calls) == 1 else None

    async def main():
        q = WorkQueue(handler, workers=1)
        q.add("k")
        q.start()
        while q.processed < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)
        await q.stop()

    run(main())
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.1 - 0.001


def test_forget_drops_pending_work():
    calls = []

    async def handler(key):
        calls.append(key)

    async def main():
        q = WorkQueue(handler, workers=1)
        q.add("gone")
        q.add_after("later", 0.05)
        q.forget("gone")
        q.forget("later")
        q.add("kept")
        q.start()
        await asyncio.sleep(0.1)
        await q.stop()

    run(main())
    assert calls == ["kept"]


def test_describe_keeps_api_errors_to_status_and_reason():
    class ApiError(Exception):
        status, reason = 429, "Too Many Requests"

        def __str__(self):
            return "HTTP response headers: Authorization: Bearer sk-secret"

    assert describe(ApiError()) == "HTTP 429 Too Many Requests"
    assert describe(ValueError("bad\nsecond line")) == "ValueError: bad"


def test_work_after_an_idle_spell_is_not_a_stall_until_it_waits_that_long():
    async def handler(key):
        pass

    async def main():
        q = WorkQueue(handler, workers=1)
        q.last_progress = time.monotonic() - 100  # idle for 100 s, no worker running
        assert not q.stalled(50)  # nothing to do is not a stall
        q.add(("ns", "a"))
        assert not q.stalled(50), "the work just arrived"
        q.last_progress = time.monotonic() - 100  # the same work, waiting 100 s
        assert q.stalled(50)

    run(main())
