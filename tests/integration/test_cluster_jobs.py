"""Job-controller features the runner relies on, driven through the process kubelet."""

from __future__ import annotations

import os

from quantgate.dev.harness import condition, get_json, wait_for, wait_for_condition


def job(name: str, command: list[str], **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, **spec, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": command}]}}}}


def test_indexed_completions_each_see_their_index(cluster, namespace):
    cluster.apply(job("indexed", ["sh", "-c", 'echo -n "index=$JOB_COMPLETION_INDEX" > /dev/termination-log'],
                      completionMode="Indexed", completions=3, parallelism=3), namespace)
    wait_for_condition(cluster, "job", "indexed", namespace, "Complete", timeout=60)
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "job-name=indexed")["items"]
    messages = sorted(p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] for p in pods)
    assert messages == ["index=0", "index=1", "index=2"]


def test_pod_failure_policy_fails_the_job_on_a_chosen_exit_code(cluster, namespace):
    cluster.apply(job("fatal", ["sh", "-c", "exit 42"], backoffLimit=5, podFailurePolicy={"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}), namespace)
    failed = wait_for_condition(cluster, "job", "fatal", namespace, "Failed", timeout=60)
    assert condition(failed, "Failed")["reason"] == "PodFailurePolicy"
    assert failed["status"]["failed"] == 1  # no retries despite backoffLimit 5


def test_active_deadline_kills_the_running_process(cluster, namespace):
    cluster.apply(job("slow", ["sleep", "300"], activeDeadlineSeconds=3), namespace)
    pod = wait_for(lambda: next((p for p in get_json(cluster, "pods", "-n", namespace, "-l", "job-name=slow")["items"]
                                 if p["status"].get("phase") == "Running"), None), timeout=60, what="running pod")
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    failed = wait_for_condition(cluster, "job", "slow", namespace, "Failed", timeout=60)
    assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2],
             timeout=40, what="the deadline-exceeded pod's process killed")
