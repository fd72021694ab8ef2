"""Pure pod-spec logic of the process kubelet: environment, path mapping, status bodies.

A pod's containers run as local processes, so their filesystem paths cannot be mounted where the
spec says. Each container gets a root directory; every volume mount is a link under it, and
every literal occurrence of a mount path (or the termination-message path) in command, args and
env values is rewritten to the matching path under that root.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Callable

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes, as the real kubelet caps it
FALLBACK_LOG_LINES = 80

Lookup = Callable[[str], "dict[str, str] | None"]  # name -> decoded data, None if absent


class ConfigError(Exception):
    """The container cannot start yet (a referenced ConfigMap/Secret key is missing): retried."""


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names are replaced, $$ escapes, unknown refs stay."""
    def repl(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(repl, text)


def field_value(pod: dict, path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP") or "127.0.0.1",
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.podIPs": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return simple[path]
    found = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if found:
        return (meta.get(found.group(1)) or {}).get(found.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def resource_value(container: dict, ref: dict) -> str:
    kind, _, name = ref.get("resource", "").partition(".")
    resources = container.get("resources", {})
    value = (resources.get(kind) or {}).get(name) or (resources.get("limits") or {}).get(name)
    return str(value) if value is not None else "0"


def _keyed(lookup: Lookup, kind: str, ref: dict) -> str | None:
    data = lookup(ref["name"])
    optional = ref.get("optional", False)
    if data is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind} {ref["name"]}')
    return data[ref["key"]]


def container_env(pod: dict, container: dict, configmaps: Lookup, secrets: Lookup) -> dict[str, str]:
    """The container's environment from envFrom and env, in Kubernetes order."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key, lookup in (("configmap", "configMapRef", configmaps), ("secret", "secretRef", secrets)):
            ref = source.get(key)
            if not ref:
                continue
            data = lookup(ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref["name"]}" not found')
            env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if not source:
            env[name] = expand(var.get("value", ""), env)
        elif "secretKeyRef" in source:
            value = _keyed(secrets, "secret", source["secretKeyRef"])
            if value is not None:
                env[name] = value
        elif "configMapKeyRef" in source:
            value = _keyed(configmaps, "configmap", source["configMapKeyRef"])
            if value is not None:
                env[name] = value
        elif "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = resource_value(container, source["resourceFieldRef"])
        else:
            raise ConfigError(f"unsupported valueFrom for env {name}")
    return env


def decode_secret(secret: dict) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def configmap_data(configmap: dict) -> dict[str, str]:
    return dict(configmap.get("data") or {})


@dataclass
class PathMap:
    """Maps in-container absolute paths (mount points) to host paths under the container root."""

    root: str
    prefixes: list[str] = field(default_factory=list)

    def add(self, path: str) -> None:
        clean = "/" + path.strip("/")
        if clean != "/" and clean not in self.prefixes:
            self.prefixes.append(clean)
            self.prefixes.sort(key=len, reverse=True)

    def host(self, path: str) -> str:
        return self.root + "/" + path.lstrip("/")

    def rewrite(self, text: str) -> str:
        if not self.prefixes:
            return text
        pattern = "|".join(re.escape(p) for p in self.prefixes)
        # A prefix counts only as a whole path component, not inside a longer path or word.
        regex = re.compile(rf"(?<![\w./-])({pattern})(?=/|$|[^\w.-])")
        return regex.sub(lambda m: self.host(m.group(1)), text)


def termination_path(container: dict) -> str:
    return container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH


def argv(container: dict, env: dict[str, str], paths: PathMap) -> list[str]:
    words = list(container.get("command") or []) + list(container.get("args") or [])
    return [paths.rewrite(expand(word, env)) for word in words]


def termination_message(container: dict, written: str, log_tail: str, exit_code: int) -> str:
    """The file the process wrote wins; FallbackToLogsOnError uses the log tail on failure."""
    message = written
    if not message and exit_code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        message = "\n".join(log_tail.splitlines()[-FALLBACK_LOG_LINES:])
    return message.encode()[-TERMINATION_MESSAGE_LIMIT:].decode(errors="ignore")


@dataclass
class ContainerState:
    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    restarts: int = 0
    last: dict | None = None  # lastState.terminated after a restart

    def status(self, pid: int | None = None) -> dict:
        body: dict = {"name": self.name, "image": self.image, "imageID": f"process://{self.image}",
                      "restartCount": self.restarts, "ready": self.state == "running",
                      "started": self.state == "running"}
        if pid:
            body["containerID"] = f"process://{pid}"
        if self.state == "running":
            body["state"] = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            term = {"exitCode": self.exit_code, "reason": self.reason,
                    "startedAt": self.started_at or self.finished_at, "finishedAt": self.finished_at}
            if self.message:
                term["message"] = self.message
            body["state"] = {"terminated": term}
        else:
            waiting = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            body["state"] = {"waiting": waiting}
        if self.last:
            body["lastState"] = {"terminated": self.last}
        return body


def phase_of(containers: list[ContainerState], restart_policy: str) -> str:
    """Pod phase from its regular containers' states."""
    if any(c.state != "terminated" for c in containers):
        return "Running" if any(c.state == "running" for c in containers) else "Pending"
    if all(c.exit_code == 0 for c in containers):
        return "Succeeded"
    return "Failed" if restart_policy != "Always" else "Running"


def status_patch(phase: str, init: list[ContainerState], main: list[ContainerState], now: str,
                 started: str, pids: dict[str, int] | None = None, reason: str = "",
                 message: str = "") -> dict:
    pids = pids or {}
    initialized = all(c.state == "terminated" and c.exit_code == 0 for c in init)
    ready = phase == "Running" and all(c.state == "running" for c in main)
    terminal = phase in ("Succeeded", "Failed")

    def cond(kind: str, ok: bool, why: str = "") -> dict:
        body = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now}
        if why and not ok:
            body["reason"] = why
        return body

    not_ready = "PodCompleted" if terminal else "ContainersNotReady"
    status = {
        "phase": phase,
        "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": started,
        "conditions": [
            cond("PodReadyToStartContainers", not terminal),
            cond("Initialized", initialized or terminal, "ContainersNotInitialized"),
            cond("ContainersReady", ready, not_ready),
            cond("Ready", ready, not_ready),
        ],
        "containerStatuses": [c.status(pids.get(c.name)) for c in main],
    }
    if init:
        status["initContainerStatuses"] = [c.status(pids.get(c.name)) for c in init]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {"status": status}
