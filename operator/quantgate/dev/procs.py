"""Detached processes recorded by (pid, start time), so a recycled pid is never signalled."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    start: int  # /proc/<pid>/stat start time, in clock ticks since boot

    def to_dict(self) -> dict:
        return asdict(self)


def start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after the closing paren are plain.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited
        return None
    return int(fields[19])


def alive(proc: Proc) -> bool:
    return start_time(proc.pid) == proc.start


def spawn(name: str, argv: list[str], log: Path, *, env: dict | None = None,
          cwd: Path | None = None) -> Proc:
    """Start `argv` in its own session (so it outlives us and its group can be killed)."""
    with open(log, "ab") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=cwd,
        )
    return Proc(name, child.pid, start_time(child.pid) or 0)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


def stop(proc: Proc, grace: float = 10.0) -> bool:
    """TERM the process group, KILL it after `grace` seconds; True if something was running."""
    if not alive(proc):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            os.kill(proc.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(proc.pid)
            if not alive(proc):
                _reap(proc.pid)  # it may have turned zombie just after the first waitpid
                return True
            time.sleep(0.05)
    _reap(proc.pid)
    return True
