"""Container processes: started in their own session, recorded in a pid file, killed by group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from quantgate.dev import procs

PID_FILE = "pid"


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path, container_dir: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        child = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    (container_dir / PID_FILE).write_text(f"{child.pid} {procs.start_time(child.pid) or 0}")
    return child


def signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(children: list[subprocess.Popen], grace: float) -> None:
    """TERM every group, wait up to `grace` seconds, then KILL what is left."""
    live = [c for c in children if c.poll() is None]
    for child in live:
        signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(c.poll() is None for c in live):
        time.sleep(0.05)
    for child in live:
        if child.poll() is None:
            signal_group(child, signal.SIGKILL)
    for child in live:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def kill_leftovers(kubelet_dir: Path) -> int:
    """Kill pod process groups still alive after the kubelet died (pid files under pods/)."""
    count = 0
    for pid_file in Path(kubelet_dir).glob(f"pods/*/containers/*/{PID_FILE}"):
        try:
            pid, start = (int(x) for x in pid_file.read_text().split())
        except (OSError, ValueError):
            continue
        if procs.stop(procs.Proc("pod", pid, start), grace=2.0):
            count += 1
    return count
