"""Progress lines: plain lines in a log, done/total with rate and ETA."""

import io

from quantgate.lmeval.progress import Progress


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream=stream, interval=0, label="[int8]")
    progress.phase("loglikelihood", 3)
    for _ in range(3):
        progress.advance()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[int8] loglikelihood: 3 requests"
    assert lines[-1].startswith("[int8] loglikelihood: 3/3 (") and "ETA 0s" in lines[-1]
    assert "\r" not in stream.getvalue()
    assert progress.requests == 3


def test_lines_are_throttled_in_logs():
    stream = io.StringIO()
    progress = Progress(stream=stream, interval=3600)
    progress.phase("generate_until", 1000)
    for _ in range(999):
        progress.advance()
    progress.advance()  # the last one always prints
    assert len(stream.getvalue().splitlines()) == 2


def test_terminal_rewrites_one_line():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    progress = Progress(stream=stream)
    progress.phase("tokenizing", 2, unit="/tokenize calls")
    progress.advance(2, request=False)
    assert "\rtokenizing: 2/2" in stream.getvalue() and progress.requests == 0
