"""Run several `quantgate run` invocations at once, each in its own process.

Separate processes use separate cores (lm-eval and the HTTP client are Python,
bound by the GIL) and keep lm-eval's global state apart. Progress lines of the
children go straight to this process's stderr, prefixed with their label.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunJob:
    label: str
    args: list[str]  # arguments after `quantgate run`
    output: Path
    env: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    stopped: bool = False  # terminated because another job failed

    @property
    def failed(self) -> bool:
        return self.returncode not in (0, None) and not self.stopped


def run_args(endpoint: str, output: Path, *, model: str | None = None, suite: str | None = None,
             tasks: str | None = None, limit: int | None = None, concurrency: int = 32,
             label: str = "", api_key_env: str | None = None, progress_interval: float = 5.0,
             local_data: bool | str = False, fraction: float | None = None,
             request_cache: Path | None = None, extra: list[str] | tuple[str, ...] = (),
             allow_code_execution: bool = False) -> list[str]:
    args = ["--endpoint", endpoint, "--output", str(output), "--force", "--concurrency", str(concurrency),
            "--progress-interval", str(progress_interval)]
    if label:
        args += ["--label", f"[{label}]"]
    if model:
        args += ["--model", model]
    if tasks:
        args += ["--tasks", tasks]
    elif suite:
        args += ["--suite", suite]
    if limit:
        args += ["--limit", str(limit)]
    if local_data:  # True or "local": the shipped datasets; "local-full": the full-size ones
        args += ["--local-data"] + (["local-full"] if local_data == "local-full" else [])
    if allow_code_execution:
        args += ["--allow-code-execution"]
    if api_key_env:
        args += ["--api-key-env", api_key_env]
    if fraction is not None:
        args += ["--fraction", repr(fraction)]
    if request_cache is not None:
        args += ["--request-cache", str(request_cache)]
    return args + list(extra)


def run_all(jobs: list[RunJob], max_parallel: int | None = None, fail_fast: bool = True) -> list[RunJob]:
    """Run the jobs (at most max_parallel at once); on the first failure stop the others (fail_fast)."""
    pending, running = list(jobs), []
    max_parallel = max_parallel or len(jobs)
    failed = False
    try:
        while pending or running:
            while pending and len(running) < max_parallel and not failed:
                job = pending.pop(0)
                proc = subprocess.Popen([sys.executable, "-m", "quantgate.cli", "run", *job.args],
                                        stdout=subprocess.DEVNULL, env={**os.environ, **job.env})
                running.append((job, proc))
            if failed and not running:
                break
            time.sleep(0.2)
            for job, proc in list(running):
                if proc.poll() is not None:
                    job.returncode = proc.returncode
                    running.remove((job, proc))
                    if proc.returncode != 0 and fail_fast:
                        failed = True
                        for other_job, other in running:
                            other_job.stopped = True
                            other.terminate()
    finally:
        for job, proc in running:
            if proc.poll() is None:
                proc.terminate()
                job.stopped = True
            job.returncode = proc.wait()
    return jobs
