"""Materialise a pod's volumes as directories under its pod directory."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Callable

from quantgate.dev.kubelet.podspec import ConfigError, field_value, resource_value

Fetch = Callable[[str], "dict | None"]  # name -> raw ConfigMap/Secret object, None if absent
TokenFor = Callable[[str, int], str]  # (audience, expirationSeconds) -> token


def _write(directory: Path, rel: str, content: bytes, mode: int | None) -> None:
    target = (directory / rel).resolve()
    if directory.resolve() not in target.parents:
        raise ConfigError(f"volume item path {rel!r} escapes its volume")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    target.chmod(mode if mode is not None else 0o644)


def _object_files(obj: dict, secret: bool) -> dict[str, bytes]:
    files = {}
    for key, value in (obj.get("data") or {}).items():
        files[key] = base64.b64decode(value) if secret else value.encode()
    for key, value in (obj.get("binaryData") or {}).items():
        files[key] = base64.b64decode(value)
    return files


def _keyed_files(directory: Path, source: dict, fetch: Fetch, name_key: str, secret: bool,
                 default_mode: int | None) -> None:
    name = source.get(name_key) or source.get("name", "")
    obj = fetch(name)
    if obj is None:
        if source.get("optional"):
            return
        raise ConfigError(f'{"secret" if secret else "configmap"} "{name}" not found')
    files = _object_files(obj, secret)
    items = source.get("items")
    mode = source.get("defaultMode", default_mode)
    if not items:
        for key, content in files.items():
            _write(directory, key, content, mode)
        return
    for item in items:
        if item["key"] not in files:
            if source.get("optional"):
                continue
            raise ConfigError(f'key {item["key"]} not found in {name}')
        _write(directory, item["path"], files[item["key"]], item.get("mode", mode))


def _downward(directory: Path, pod: dict, items: list[dict], default_mode: int | None) -> None:
    containers = {c["name"]: c for c in pod["spec"].get("containers", [])}
    for item in items:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            ref = item["resourceFieldRef"]
            value = resource_value(containers.get(ref.get("containerName", ""), {}), ref)
        _write(directory, item["path"], value.encode(), item.get("mode", default_mode))


def materialise(volume: dict, directory: Path, pod: dict, configmaps: Fetch, secrets: Fetch,
                token_for: TokenFor) -> None:
    """Write one volume's content into `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in volume:
        return
    if "configMap" in volume:
        _keyed_files(directory, volume["configMap"], configmaps, "name", False, None)
    elif "secret" in volume:
        _keyed_files(directory, volume["secret"], secrets, "secretName", True, None)
    elif "downwardAPI" in volume:
        spec = volume["downwardAPI"]
        _downward(directory, pod, spec.get("items", []), spec.get("defaultMode"))
    elif "projected" in volume:
        spec = volume["projected"]
        mode = spec.get("defaultMode")
        for source in spec.get("sources") or []:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                content = token_for(token.get("audience", ""), token.get("expirationSeconds", 3600))
                _write(directory, token["path"], content.encode(), 0o600 if mode is None else mode)
            elif "configMap" in source:
                _keyed_files(directory, source["configMap"], configmaps, "name", False, mode)
            elif "secret" in source:
                _keyed_files(directory, source["secret"], secrets, "name", True, mode)
            elif "downwardAPI" in source:
                _downward(directory, pod, source["downwardAPI"].get("items", []), mode)
            else:
                raise ConfigError(f"unsupported projected source {sorted(source)}")
    elif "hostPath" in volume:
        # No isolation: a hostPath volume is the host path itself.
        directory.rmdir()
        os.symlink(volume["hostPath"]["path"], directory)
    else:
        kinds = sorted(k for k in volume if k != "name")
        raise ConfigError(f"volume {volume['name']}: unsupported type {kinds} (process kubelet)")
