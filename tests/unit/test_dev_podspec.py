"""Pure pod-spec logic of the process kubelet (no cluster needed)."""

from __future__ import annotations

import base64

import pytest

from quantgate.dev.kubelet import podspec
from quantgate.dev.kubelet.podspec import ConfigError, ContainerState, PathMap

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
       "spec": {"nodeName": "n", "serviceAccountName": "sa"}, "status": {}}


def test_expand_replaces_known_vars_keeps_unknown_and_unescapes_dollars():
    env = {"A": "x", "B": "y"}
    assert podspec.expand("$(A)-$(B)-$(C)-$$(A)-$$", env) == "x-y-$(C)-$(A)-$"


@pytest.mark.parametrize(("text", "expected"), [
    ("/data", "/R/data"),
    ("/data/out.json", "/R/data/out.json"),
    ("--out=/data/x", "--out=/R/data/x"),
    ("/database", "/database"),            # not a whole path component
    ("/srv/data/x", "/srv/data/x"),         # /data inside another path
    ("/var/run/secrets/kubernetes.io/serviceaccount/token",
     "/R/var/run/secrets/kubernetes.io/serviceaccount/token"),
    ("open('/dev/termination-log')", "open('/R/dev/termination-log')"),
])
def test_path_map_rewrites_whole_mount_paths_only(text, expected):
    paths = PathMap("/R")
    for mount in ("/data", "/var/run/secrets/kubernetes.io/serviceaccount", "/dev/termination-log"):
        paths.add(mount)
    assert paths.rewrite(text) == expected


def test_path_map_prefers_the_longest_mount():
    paths = PathMap("/R")
    paths.add("/a")
    paths.add("/a/b")
    assert paths.prefixes == ["/a/b", "/a"]
    assert paths.rewrite("/a/b/c /a/c") == "/R/a/b/c /R/a/c"


def _lookups():
    configmaps = {"cfg": {"MODE": "fast", "level": "3"}}
    secrets = {"db": {"password": "pw"}}
    return configmaps.get, secrets.get


def test_container_env_resolves_every_source_in_kubernetes_order():
    cms, secrets = _lookups()
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "db"}}],
        "env": [
            {"name": "password", "value": "overridden-$(CFG_MODE)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        ],
    }
    env = podspec.container_env(POD, container, cms, secrets)
    assert env == {"CFG_MODE": "fast", "CFG_level": "3", "password": "overridden-fast", "PW": "pw",
                   "LEVEL": "3", "NS": "ns", "APP": "a"}


@pytest.mark.parametrize("ref", [
    {"secretKeyRef": {"name": "missing", "key": "k"}},
    {"secretKeyRef": {"name": "db", "key": "missing"}},
    {"configMapKeyRef": {"name": "cfg", "key": "missing"}},
])
def test_missing_required_reference_is_a_config_error(ref):
    cms, secrets = _lookups()
    with pytest.raises(ConfigError):
        podspec.container_env(POD, {"env": [{"name": "X", "valueFrom": ref}]}, cms, secrets)


def test_decode_secret():
    secret = {"data": {"a": base64.b64encode(b"1").decode()}, "stringData": {"b": "2"}}
    assert podspec.decode_secret(secret) == {"a": "1", "b": "2"}


def test_argv_expands_then_rewrites():
    paths = PathMap("/R")
    paths.add("/out")
    container = {"command": ["run", "--dir=$(DIR)"], "args": ["$(MISSING)"]}
    assert podspec.argv(container, {"DIR": "/out/x"}, paths) == ["run", "--dir=/R/out/x", "$(MISSING)"]


def test_termination_message_prefers_the_file_and_falls_back_to_logs_only_on_error():
    fallback = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    assert podspec.termination_message(fallback, "written", "log", 1) == "written"
    assert podspec.termination_message(fallback, "", "a\nb\n", 1) == "a\nb"
    assert podspec.termination_message(fallback, "", "a\nb\n", 0) == ""
    assert podspec.termination_message({}, "", "a\nb\n", 1) == ""
    assert len(podspec.termination_message({}, "x" * 10000, "", 0)) == podspec.TERMINATION_MESSAGE_LIMIT


def _state(state, code=0):
    return ContainerState("c", "img", state=state, exit_code=code)


@pytest.mark.parametrize(("states", "policy", "phase"), [
    ([_state("running"), _state("terminated")], "Never", "Running"),
    ([_state("waiting")], "Never", "Pending"),
    ([_state("terminated"), _state("terminated")], "Never", "Succeeded"),
    ([_state("terminated"), _state("terminated", 2)], "Never", "Failed"),
    ([_state("terminated", 2)], "Always", "Running"),
])
def test_phase_of(states, policy, phase):
    assert podspec.phase_of(states, policy) == phase


def test_status_patch_for_a_failed_pod():
    main = [ContainerState("c", "img", state="terminated", exit_code=1, reason="Error", message="boom",
                           started_at="t0", finished_at="t1")]
    body = podspec.status_patch("Failed", [], main, "t1", "t0", {"c": 42})["status"]
    assert body["phase"] == "Failed" and body["podIP"] == "127.0.0.1"
    terminated = body["containerStatuses"][0]["state"]["terminated"]
    assert terminated == {"exitCode": 1, "reason": "Error", "startedAt": "t0", "finishedAt": "t1",
                          "message": "boom"}
    assert body["containerStatuses"][0]["containerID"] == "process://42"
    ready = next(c for c in body["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
