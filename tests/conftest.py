"""Shared by every test: each test starts with the logging configuration the session started with.

`quantgate run` configures its loggers for the run (its own handler on `quantgate`, `lm_eval`
and `asyncio`, propagation off) and restores them afterwards; kopf's and other libraries'
set-up may change them too. A test reading log lines through pytest's caplog (which listens on
the root logger) must not depend on what earlier tests in the same process did.
"""

from __future__ import annotations

import logging

import pytest

_LOGGERS = ("quantgate", "lm_eval", "asyncio")
_AT_START = {name: (list(log.handlers), log.propagate, log.level)
             for name in _LOGGERS for log in [logging.getLogger(name)]}


def _reset() -> None:
    for name, (handlers, propagate, level) in _AT_START.items():
        log = logging.getLogger(name)
        log.handlers, log.propagate = list(handlers), propagate
        log.setLevel(level)


@pytest.fixture(autouse=True)
def _session_logging():
    _reset()
    yield
    _reset()
