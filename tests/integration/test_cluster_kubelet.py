"""The process kubelet's pod semantics: init containers, volumes, path mapping, messages, logs, restarts."""

from __future__ import annotations

from quantgate.dev.harness import get_json, wait_for


def finished_pod(cluster, namespace, name):
    return wait_for(lambda: (lambda p: p if p["status"].get("phase") in ("Succeeded", "Failed") else None)(
        get_json(cluster, "pod", name, "-n", namespace)), timeout=60, what=f"pod {name} finished")


def test_init_container_volumes_and_fallback_termination_message(cluster, namespace):
    cluster.kubectl("create", "configmap", "cfg", "--from-literal=greeting=hello", "-n", namespace)
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols", "labels": {"app": "vols"}},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "scratch", "emptyDir": {}},
                        {"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "info", "downwardAPI": {"items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}],
            "initContainers": [{
                "name": "seed", "image": "busybox", "command": ["sh", "-c", "echo seeded > /scratch/seed"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            }],
            "containers": [{
                "name": "main", "image": "busybox", "workingDir": "/scratch",
                "command": ["sh", "-c"],
                "args": ["cat seed /etc/cfg/greeting /etc/info/labels; echo $(WHO); exit 3"],
                "env": [{"name": "WHO", "value": "world"}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                                 {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                                 {"name": "info", "mountPath": "/etc/info"}],
            }],
        },
    }, namespace)
    pod = finished_pod(cluster, namespace, "vols")
    assert pod["status"]["phase"] == "Failed"
    init = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert (init["exitCode"], init["reason"]) == (0, "Completed")
    main = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (main["exitCode"], main["reason"]) == (3, "Error")
    # seed file, configMap key and downward-API labels (no trailing newlines), then $(WHO) expanded
    assert main["message"] == 'seeded\nhelloapp="vols"world'
    logs = cluster.kubectl("logs", "vols", "-c", "main", "-n", namespace).stdout
    assert logs == main["message"] + "\n"


def test_on_failure_restarts_the_container_in_place(cluster, namespace):
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flaky"},
        "spec": {
            "restartPolicy": "OnFailure",
            "volumes": [{"name": "state", "emptyDir": {}}],
            "containers": [{
                "name": "main", "image": "busybox", "command": ["sh", "-c"],
                # Fails the first time, succeeds once the marker survives in the emptyDir.
                "args": ["if [ -f /state/tried ]; then echo second; else touch /state/tried; exit 7; fi"],
                "volumeMounts": [{"name": "state", "mountPath": "/state"}],
            }],
        },
    }, namespace)
    pod = finished_pod(cluster, namespace, "flaky")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 7


def test_missing_secret_holds_the_container_until_it_exists(cluster, namespace):
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waits"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox", "command": ["sh", "-c", 'test "$KEY" = late'],
            "env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}]}]},
    }, namespace)
    waiting = wait_for(lambda: (get_json(cluster, "pod", "waits", "-n", namespace)["status"]
                                .get("containerStatuses") or [{}])[0].get("state", {}).get("waiting"),
                       timeout=30, what="waiting state")
    assert waiting["reason"] == "CreateContainerConfigError"
    cluster.kubectl("create", "secret", "generic", "later", "--from-literal=k=late", "-n", namespace)
    assert finished_pod(cluster, namespace, "waits")["status"]["phase"] == "Succeeded"


def test_pod_active_deadline_fails_the_pod(cluster, namespace):
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late"},
        "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 2, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"]}]},
    }, namespace)
    pod = finished_pod(cluster, namespace, "late")
    assert (pod["status"]["phase"], pod["status"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143  # SIGTERM


def test_failed_init_container_fails_the_pod_without_starting_the_rest(cluster, namespace):
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "badinit"},
        "spec": {"restartPolicy": "Never",
                 "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "exit 4"]}],
                 "containers": [{"name": "main", "image": "busybox", "command": ["touch", "/tmp/never"]}]},
    }, namespace)
    pod = finished_pod(cluster, namespace, "badinit")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
