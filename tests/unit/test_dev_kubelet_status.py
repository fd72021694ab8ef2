"""The process kubelet's status writes: regular containers' first starts share one."""

from types import SimpleNamespace

from quantgate.dev.kubelet.pods import PodWorker


def worker(tmp_path, init=(), main=("baseline", "candidate")):
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
           "spec": {"initContainers": [{"name": n} for n in init], "containers": [{"name": n} for n in main]}}
    return PodWorker(SimpleNamespace(pods_dir=tmp_path), pod)


def test_first_starts_of_regular_containers_are_reported_once_by_the_last(tmp_path):
    w = worker(tmp_path, init=("setup",))
    assert w._report_start("setup", init=True)  # init containers run alone: each start is news
    assert not w._report_start("baseline", init=False)
    assert w._report_start("candidate", init=False)
    assert w._report_start("baseline", init=False)  # a restart is reported on its own


def test_a_single_container_reports_its_start(tmp_path):
    assert worker(tmp_path, main=("only",))._report_start("only", init=False)
