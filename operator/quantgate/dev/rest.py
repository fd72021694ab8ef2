"""A small JSON client for the Kubernetes API, for the dev cluster's own plumbing.

The process kubelet handles hundreds of pods; plain dicts over a shared urllib3 pool keep it far
lighter than the generated client's model classes.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

import urllib3

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, body: dict | str):
        self.status = status
        self.body = body if isinstance(body, dict) else {"message": str(body)}
        self.reason = self.body.get("reason", "")
        super().__init__(f"{status} {self.reason}: {self.body.get('message', body)}")


class Rest:
    def __init__(self, server: str, ca: Path, *, cert: Path | None = None, key: Path | None = None,
                 token: str | None = None, maxsize: int = 16, user_agent: str = "quantgate-dev"):
        context = ssl.create_default_context(cafile=str(ca))
        if cert and key:
            context.load_cert_chain(str(cert), str(key))
        self.server = server.rstrip("/")
        self.headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.pool = urllib3.PoolManager(ssl_context=context, maxsize=maxsize, block=False, retries=False)

    def _url(self, path: str, params: dict | None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self.server + path + ("?" + urlencode(query) if query else "")

    def request(self, method: str, path: str, body: Any = None, *, params: dict | None = None,
                content_type: str = "application/json", timeout: float = 30) -> dict:
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        response = self.pool.request(method, self._url(path, params), body=data, headers=headers,
                                     timeout=urllib3.Timeout(connect=5, read=timeout))
        text = response.data.decode(errors="replace")
        try:
            decoded = json.loads(text) if text else {}
        except json.JSONDecodeError:
            decoded = {"message": text}
        if response.status >= 400:
            raise ApiError(response.status, decoded)
        return decoded

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict, **params) -> dict:
        return self.request("POST", path, body, params=params)

    def patch(self, path: str, body: dict, content_type: str = MERGE_PATCH) -> dict:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, body: dict | None = None) -> dict:
        return self.request("DELETE", path, body)

    def watch(self, path: str, timeout_seconds: int = 300, **params) -> Iterator[dict]:
        """Yield watch events ({"type", "object"}) until the server closes the stream."""
        query = dict(params, watch="true", timeoutSeconds=timeout_seconds, allowWatchBookmarks="true")
        response = self.pool.request(
            "GET", self._url(path, query), headers=self.headers, preload_content=False,
            timeout=urllib3.Timeout(connect=5, read=timeout_seconds + 30),
        )
        try:
            if response.status >= 400:
                raise ApiError(response.status, response.read().decode(errors="replace"))
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()
