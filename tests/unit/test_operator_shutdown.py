"""The operator exits promptly on TERM even when a reconcile thread is stuck: kopf's cleanup arms
the shutdown deadline (QUANTGATE_SHUTDOWN_DEADLINE_S), which ends the process with exit code 1
and a line naming the stuck reconcile. Without it the stuck thread held the process until KILL.

The real `quantgate operator` runs as a subprocess against a fake API server (fake_kube_api)
that lists one unsettled evaluation; the /healthz test hook (QUANTGATE_TEST_WEDGE_FILE) wedges
its reconcile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import quantgate
from fake_kube_api import FakeKubeApi, evaluation
from quantgate.dev.harness import wait_for
from quantgate.k8s.handlers import WEDGE_ENV

pytestmark = pytest.mark.slow
PACKAGE_ROOT = str(Path(quantgate.__file__).parent.parent)  # this checkout's operator/, whichever quantgate is installed
WEDGED = "test hook: reconcile of ns/stuck wedged"
GET_STUCK = "/apis/quantgate.io/v1alpha1/namespaces/ns/modelevaluations/stuck"


@pytest.fixture
def operator(tmp_path):
    """start(deadline_s) -> (the operator process, its log file, the wedge file, the fake API),
    the process wedged on evaluation ns/stuck."""
    started = []

    def start(deadline_s: float):
        api = FakeKubeApi({"modelevaluations": [evaluation("ns", "stuck")]})
        api.kubeconfig(tmp_path / "kubeconfig")
        wedge = tmp_path / "wedge"
        wedge.touch()
        log = tmp_path / "operator.log"
        env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"), WEDGE_ENV: str(wedge),
               "QUANTGATE_SHUTDOWN_DEADLINE_S": str(deadline_s), "QUANTGATE_RESYNC_S": "3600",
               "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; from quantgate.cli import main; sys.exit(main())", "operator",
                 "--no-leader-election", "--metrics-port", "0", "--metrics-host", "127.0.0.1"],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append((proc, api))
        wait_for(lambda: WEDGED in log.read_text() or proc.poll() is not None, timeout=60,
                 what="the operator's reconcile wedged")
        assert proc.poll() is None, log.read_text()
        return proc, log, wedge, api

    yield start
    for proc, api in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        api.close()


def term(proc, timeout: float) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the operator still runs {timeout:g}s after TERM")


def test_a_wedged_operator_exits_on_term_naming_the_stuck_reconcile(operator):
    proc, log, _wedge, _api = operator(deadline_s=1)
    assert term(proc, timeout=60) == 1
    text = log.read_text()
    assert "Signal SIGTERM is received" in text, text
    assert "exiting: shutdown not finished 1s after it began; still running: reconcile ns/stuck (for " in text, text


def test_a_healthy_operator_exits_on_term_without_waiting_for_the_deadline(operator):
    proc, log, wedge, api = operator(deadline_s=30)
    wedge.unlink()  # the reconcile goes on: it reads the evaluation (404 here: gone) and finishes
    wait_for(lambda: GET_STUCK in api.paths, timeout=30, what="the reconcile reading the evaluation")
    assert term(proc, timeout=60) == 0
    text = log.read_text()
    assert "Signal SIGTERM is received" in text and "shutting down: the process exits within 30s" in text, text
    assert "exiting: shutdown not finished" not in text, text
