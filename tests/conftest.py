"""Shared by every test: each test starts with the logging configuration the process started with.

`quantgate run` configures its loggers for a real process (its own handler on `quantgate`,
`lm_eval` and `asyncio`, propagation off). Tests that run the runner in-process would otherwise
leave that behind, and a later test reading its log lines through pytest's caplog (which listens on
the root logger) would see nothing, depending on test order.
"""

from __future__ import annotations

import logging

import pytest

_CONFIGURED_BY_THE_RUNNER = ("quantgate", "lm_eval", "asyncio")


@pytest.fixture(autouse=True)
def _restore_runner_loggers():
    saved = {name: (list(log.handlers), log.propagate, log.level)
             for name in _CONFIGURED_BY_THE_RUNNER for log in [logging.getLogger(name)]}
    yield
    for name, (handlers, propagate, level) in saved.items():
        log = logging.getLogger(name)
        log.handlers, log.propagate = handlers, propagate
        log.setLevel(level)
