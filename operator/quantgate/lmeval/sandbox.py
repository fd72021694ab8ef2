"""Run one untrusted Python program (model-written code plus its tests) in a sandbox.

    outcome = run_program(source)            # Outcome(status="passed"|"failed"|"timeout", ...)

Every call gets its own child process, started through a small bootstrap (`_BOOT`, run with
`python -I -S`) that confines itself before it execs the program:

* environment: only PATH, HOME/TMPDIR (the working directory) and LANG; nothing of the
  runner's (no API key, no KUBERNETES_* variables, no kubeconfig);
* a throwaway working directory (mode 0700), removed afterwards;
* resource limits: CPU seconds, address space, file size, open files, no core dumps, and a
  process count; a wall-clock limit enforced by the parent;
* a new session; afterwards every process the program left behind is killed.

What else the bootstrap can do depends on the privileges of the runner (`isolation()` probes
it once and says which applies; docs/security.md, "Code execution sandbox"):

* **root** (the dev machine, a privileged runner): a network namespace of its own (no
  interfaces up: not even loopback reaches the host), a mount namespace in which /tmp,
  /var/tmp and /dev/shm are the working directory and /var/run/secrets, /run/secrets are
  empty, and a uid/gid of its own (so RLIMIT_NPROC really caps the process count, the
  runner's files and /proc/<pid>/environ are out of reach, and a `kill(-1)` as that uid
  ends everything the program started, however it detached);
* **an unprivileged user** who may create user namespaces: user + network + mount
  namespaces (same mounts as above);
* **neither** (a pod under the restricted Pod Security profile): limits, scrubbed
  environment, working directory and session only. There the pod carries the rest: the
  runner Job's egress NetworkPolicy (quantgate.k8s.egress_policy: its model endpoints, the API
  server, DNS for endpoints given by name), no ServiceAccount token in the evaluating
  container, and a runner that makes itself non-dumpable (`harden_runner`).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from quantgate.errors import QuantgateError

# A uid/gid range nothing else on a host uses: each sample gets a fresh id from it (root mode).
SANDBOX_ID_BASE = 1_700_000_000
SANDBOX_ID_SPAN = 100_000_000

# Runs as `python -I -S -c _BOOT <json>`: confine, then exec the program. Exit 111 = setup failed.
_BOOT = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWUSER, NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_BIND, MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV = 4096, 16384, 1 << 18, 2, 4
def fail(what):
    os.write(2, ("sandbox setup failed: %s (errno %d)\n" % (what, ctypes.get_errno())).encode())
    os._exit(111)
def mount(src, dst, fstype, flags, data=None):
    if libc.mount(src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None,
                  flags, data.encode() if data else None) != 0:
        fail("mount " + dst)
work, mode = cfg["work"], cfg["mode"]
if mode in ("root", "userns"):
    flags = NEWNS | NEWNET | (NEWUSER if mode == "userns" else 0)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(flags) != 0:
        fail("unshare")
    if mode == "userns":
        with open("/proc/self/setgroups", "w") as f: f.write("deny")
        with open("/proc/self/uid_map", "w") as f: f.write("0 %d 1" % uid)
        with open("/proc/self/gid_map", "w") as f: f.write("0 %d 1" % gid)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    for d in ("/var/tmp", "/dev/shm", "/tmp"):  # /tmp last: the source path lies under it
        if os.path.isdir(d):
            mount(work, d, None, MS_BIND | MS_REC)
    for d in ("/var/run/secrets", "/run/secrets"):
        if os.path.isdir(d) and not os.path.islink(d):
            mount("none", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
    prefix = cfg["prefix"]
    hidden = next((a for a in cfg["closed"] if os.path.isdir(a)), None)
    if hidden and mode == "root":
        # The interpreter lies under a directory the sandbox uid may not enter (/root/.pyenv):
        # cover that directory with an empty tmpfs and bind only the interpreter's prefix into it.
        fd = os.open(prefix, os.O_PATH | os.O_DIRECTORY)
        mount("none", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
        os.makedirs(prefix, mode=0o755, exist_ok=True)
        mount("/proc/self/fd/%d" % fd, prefix, None, MS_BIND | MS_REC)
        os.close(fd)
    work = "/tmp"
os.chdir(work)
for name, value in cfg["limits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
if mode == "root":
    os.setgroups([])
    os.setgid(cfg["id"])
    os.setuid(cfg["id"])
os.execve(cfg["python"], [cfg["python"], "-I", "-S", "-B", "program.py"], cfg["env"])
"""
# kill(-1) as the sandbox uid reaches every process of that uid (detached or not); a process forking
# during the sweep can be missed, so stop them all first and repeat until nothing is left.
_KILL_ALL = r"""
import os, signal, sys
i = int(sys.argv[1])
os.setgroups([]); os.setgid(i); os.setuid(i)
for _ in range(100):
    try:
        os.kill(-1, signal.SIGSTOP)
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        break
"""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 10
    wall_seconds: float = 20.0
    memory_bytes: int = 1024 * 1024 * 1024
    file_bytes: int = 1024 * 1024
    processes: int = 16
    open_files: int = 64


@dataclass(frozen=True)
class Outcome:
    status: Literal["passed", "failed", "timeout"]
    returncode: int | None
    stderr_tail: str  # last lines of the program's stderr (for debugging; may hold anything the code printed)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class SandboxUnavailable(QuantgateError):
    pass


@lru_cache(maxsize=1)
def isolation() -> Literal["root", "userns", "none"]:
    """Which confinement works here: probed once by running the bootstrap on a trivial program.

    As root only "root" is acceptable: anything else would leave the program root on the host
    (a user namespace maps it to uid 0; kill(-1) would reach every process). Raises
    SandboxUnavailable then, so code execution fails closed.
    """
    if os.geteuid() == 0:
        probe = _start("pass\n", Limits(), "root")
        if probe.status != "passed":
            raise SandboxUnavailable("cannot sandbox model code: running as root but unable to give it a network "
                                     f"and mount namespace and a uid of its own ({probe.stderr_tail.strip()[-200:]}); "
                                     "run the runner as an unprivileged user or with CAP_SYS_ADMIN")
        return "root"
    if _start("pass\n", Limits(), "userns").status == "passed":
        return "userns"
    return "none"


def _limits(limits: Limits, mode: str) -> dict[str, int]:
    out = {"RLIMIT_CPU": limits.cpu_seconds, "RLIMIT_AS": limits.memory_bytes,
           "RLIMIT_FSIZE": limits.file_bytes, "RLIMIT_NOFILE": limits.open_files, "RLIMIT_CORE": 0}
    if mode == "root":
        # Counted per real uid: only meaningful when the program has a uid of its own. Without one it
        # would count the runner's own threads too, so the cap is the runner's count plus the limit.
        out["RLIMIT_NPROC"] = limits.processes
    else:
        out["RLIMIT_NPROC"] = _tasks_of_uid(os.getuid()) + limits.processes
    return out


def _tasks_of_uid(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def live_pids_of_uid(uid: int) -> list[int]:
    """Processes of `uid` that still run (zombies excluded: they wait for init to reap them)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    stat = Path(f"/proc/{entry.name}/stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                        pids.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return pids


def _interpreter() -> str:
    """The base interpreter (not a venv's symlink): the program runs with -I -S, stdlib only."""
    return os.path.realpath(sys.executable)


def _closed_ancestors(path: str) -> list[str]:
    """Ancestors of `path` that others may not enter (mode without o+x), outermost first."""
    out, current = [], "/"
    for part in Path(path).parts[1:]:
        current = os.path.join(current, part)
        try:
            if not os.stat(current).st_mode & 0o001:
                out.append(current)
        except OSError:
            break
    return out


def run_program(source: str, limits: Limits | None = None) -> Outcome:
    """Run `source` confined as well as this host allows; passed iff it exits 0 in time."""
    return _start(source, limits or Limits(), isolation())


def _start(source: str, limits: Limits, mode: str) -> Outcome:
    sid = SANDBOX_ID_BASE + secrets.randbelow(SANDBOX_ID_SPAN)
    base = Path(tempfile.mkdtemp(prefix="quantgate-sandbox-"))
    work = base / "work"
    work.mkdir(mode=0o700)
    (work / "program.py").write_text(source)
    if mode == "root":
        os.chmod(base, 0o711)
        for path in (work, work / "program.py"):
            os.chown(path, sid, sid)
    cfg = {
        "work": str(work), "mode": mode, "id": sid, "python": _interpreter(),
        "prefix": os.path.realpath(sys.base_prefix), "closed": _closed_ancestors(os.path.realpath(sys.base_prefix)),
        "limits": _limits(limits, mode),
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp" if mode != "none" else str(work),
                "TMPDIR": "/tmp" if mode != "none" else str(work), "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1"},
    }
    stderr_path = base / "stderr"
    status: Literal["passed", "failed", "timeout"]
    try:
        with stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, json.dumps(cfg)], cwd=str(base),
                env={"PATH": cfg["env"]["PATH"], "LANG": "C.UTF-8"}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, close_fds=True, start_new_session=True)
            try:
                code = proc.wait(timeout=limits.wall_seconds)
                status = "passed" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                code, status = None, "timeout"
            finally:
                _kill_everything(proc, sid if mode == "root" else None)
        tail = stderr_path.read_bytes()[-2000:].decode("utf-8", "replace")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return Outcome(status=status, returncode=code, stderr_tail=tail)


def _kill_everything(proc: subprocess.Popen, sid: int | None) -> None:
    """Kill the program's session and, with a uid of its own, every process of that uid."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    if sid is not None and live_pids_of_uid(sid):
        subprocess.run([sys.executable, "-I", "-S", "-c", _KILL_ALL, str(sid)], env={}, check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def harden_runner() -> None:
    """Make the runner non-dumpable: its /proc/<pid>/environ and memory become unreadable to other
    processes of the same uid (the sandboxed program, where it cannot get a uid of its own)."""
    PR_SET_DUMPABLE = 4
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
