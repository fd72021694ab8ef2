"""Liveness probes (httpGet) of the process kubelet: a container that fails its probe
`failureThreshold` times in a row is killed (TERM, grace, KILL) and restarted unless its pod's
restart policy is Never, as a kubelet does. As a kubelet's prober, it ticks every
`periodSeconds` from the container's start, the first tick at the start, and skips the ticks
before `initialDelaySeconds`. Pods share the host's network, so the probe asks 127.0.0.1 on the
container's port."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger("quantgate.kubelet")


def liveness_url(spec: dict) -> str | None:
    """The URL an httpGet liveness probe asks (None: the container has none)."""
    http = (spec.get("livenessProbe") or {}).get("httpGet")
    if not http:
        return None
    port = http.get("port")
    if isinstance(port, str) and not port.isdigit():
        port = next((p.get("containerPort") for p in spec.get("ports") or [] if p.get("name") == port), None)
        if port is None:
            return None
    path = http.get("path") or "/"
    return f"http://127.0.0.1:{int(port)}{path if path.startswith('/') else '/' + path}"


def check(url: str, timeout: float) -> str | None:
    """None when the endpoint answers 2xx/3xx, else what failed, worded as a kubelet's HTTP prober
    words it ("HTTP probe failed with statuscode: 503", 'Get "<url>": <error>')."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f'Get "{url}": {reason}'
    return None if 200 <= status < 400 else f"HTTP probe failed with statuscode: {status}"


def watch_liveness(spec: dict, done: threading.Event, on_failure,
                   on_unhealthy=lambda output: None) -> threading.Thread | None:
    """Probe in a daemon thread until `done` is set; call `on_unhealthy(output)` on every failed
    probe (a kubelet's Unhealthy event) and `on_failure(message)` once when the container has
    failed its probe `failureThreshold` times in a row."""
    url = liveness_url(spec)
    if url is None:
        return None
    probe = spec["livenessProbe"]
    delay = float(probe.get("initialDelaySeconds", 0))
    period = float(probe.get("periodSeconds", 10))
    timeout = float(probe.get("timeoutSeconds", 1))
    threshold = int(probe.get("failureThreshold", 3))

    def loop() -> None:
        started = tick = time.monotonic()
        failures = 0
        while True:
            if tick - started >= delay:
                output = check(url, timeout)
                failures = 0 if output is None else failures + 1
                if output is not None and not done.is_set():
                    on_unhealthy(output)
                if failures >= threshold and not done.is_set():
                    message = f"Liveness probe failed: {url} {failures} times in a row"
                    log.info("container %s: %s; killing it", spec.get("name"), message)
                    on_failure(message)
                    return
            tick = max(tick + period, time.monotonic())  # a ticker: a slow probe skips ticks
            if done.wait(max(0.0, tick - time.monotonic())):
                return

    thread = threading.Thread(target=loop, name=f"liveness-{spec.get('name')}", daemon=True)
    thread.start()
    return thread
