"""The process kubelet's event recorder: a repeat bumps the posted Event's count (PATCH), an
Event that has expired is posted again, and an API error is logged, never raised."""

import logging

from quantgate.dev.kubelet.events import Recorder
from quantgate.dev.rest import ApiError

POD = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"}}


class Api:
    def __init__(self, fail_post: int = 0, patch_status: int | None = None):
        self.calls = []
        self.fail_post, self.patch_status = fail_post, patch_status

    def post(self, path, body):
        self.calls.append(("POST", path, body))
        if self.fail_post:
            raise ApiError(self.fail_post, {"reason": "Forbidden", "message": "no"})

    def patch(self, path, body, content_type=None):
        self.calls.append(("PATCH", path, body))
        if self.patch_status:
            raise ApiError(self.patch_status, {"reason": "NotFound", "message": "gone"})


def test_a_repeat_bumps_the_count_of_the_event_already_posted():
    api = Api()
    recorder = Recorder(api, "node-1")
    for _ in range(3):
        recorder.record(POD, "app", "Warning", "Unhealthy", "Liveness probe failed: x")
    recorder.record(POD, "app", "Normal", "Killing", "Container app failed liveness probe")
    (post, patch1, patch2, killing) = api.calls
    assert post[:2] == ("POST", "/api/v1/namespaces/ns/events") and post[2]["count"] == 1
    name = post[2]["metadata"]["name"]
    assert name.startswith("p.")
    assert patch1[:2] == patch2[:2] == ("PATCH", f"/api/v1/namespaces/ns/events/{name}")
    assert (patch1[2]["count"], patch2[2]["count"]) == (2, 3) and set(patch2[2]) == {"count", "lastTimestamp"}
    assert killing[0] == "POST" and killing[2]["reason"] == "Killing" and killing[2]["metadata"]["name"] != name


def test_an_expired_event_is_posted_again():
    api = Api(patch_status=404)
    recorder = Recorder(api, "node-1")
    recorder.record(POD, "app", "Warning", "Unhealthy", "m")
    recorder.record(POD, "app", "Warning", "Unhealthy", "m")
    assert [c[0] for c in api.calls] == ["POST", "PATCH", "POST"]
    assert api.calls[2][2]["count"] == 2


def test_an_api_error_is_logged_not_raised(caplog):
    recorder = Recorder(Api(fail_post=403), "node-1")
    with caplog.at_level(logging.WARNING, logger="kubelet"):
        recorder.record(POD, "app", "Warning", "Unhealthy", "m")
    assert "event Warning Unhealthy for pod ns/p not posted: 403 Forbidden: no" in caplog.text
