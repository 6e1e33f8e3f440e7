"""Health checks (compared with RabbitMQ 3.10.8): /api/aliveness-test/{vhost} and
/api/health/checks/{alarms, local-alarms, port-listener/{port}, protocol-listener/{proto},
virtual-hosts} — 200 {"status":"ok"} or 503 {"status":"failed","reason":...}."""
import tempfile

import pytest

from conftest import start_warren
from mgmt_helpers import Api, api, make_user, mbroker  # noqa: F401

pytestmark = pytest.mark.warren_only


def test_aliveness_test(mbroker, api):
    assert api.call("GET", "/aliveness-test/%2F")[:2] == (200, {"status": "ok"})
    assert api.call("GET", "/aliveness-test/%2F")[:2] == (200, {"status": "ok"})  # queue exists
    q = api.get("/queues/%2F/aliveness-test")
    assert q["durable"] is False and q["messages"] == 0
    status, j, _ = api.call("GET", "/aliveness-test/no-such-vhost")
    assert status == 404 and j == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.call("POST", "/aliveness-test/%2F")[0] == 405
    api.put("/vhosts/alive-other")
    make_user(api, "alive-mgmt", "am", vhost="/", tags="management")
    m = Api(mbroker, "alive-mgmt", "am")
    assert m.call("GET", "/aliveness-test/%2F")[:2] == (200, {"status": "ok"})
    assert m.call("GET", "/aliveness-test/alive-other")[0] == 401


def test_health_checks_ok(mbroker, api):
    assert api.call("GET", "/health/checks/alarms")[:2] == (200, {"status": "ok"})
    assert api.call("GET", "/health/checks/local-alarms")[:2] == (200, {"status": "ok"})
    assert api.call("GET", "/health/checks/virtual-hosts")[:2] == (200, {"status": "ok"})
    status, j, _ = api.call("GET", "/health/checks/port-listener/%d" % mbroker.port)
    assert (status, j) == (200, {"status": "ok", "port": mbroker.port})
    status, j, _ = api.call("GET", "/health/checks/port-listener/%d" % mbroker.http_port)
    assert status == 200
    status, j, _ = api.call("GET", "/health/checks/port-listener/1")
    assert status == 503
    assert j == {"status": "failed", "reason": "No active listener", "missing": 1,
                 "ports": sorted([mbroker.port, mbroker.http_port])}
    status, j, _ = api.call("GET", "/health/checks/port-listener/abc")
    assert (status, j) == (400, {"error": "bad_request", "reason": "Invalid port"})
    status, j, _ = api.call("GET", "/health/checks/protocol-listener/amqp091")
    assert (status, j) == (200, {"status": "ok", "protocol": "amqp"})
    assert api.call("GET", "/health/checks/protocol-listener/stomp")[0] == 503
    status, j, _ = api.call("GET", "/health/checks/nope")
    assert status == 404 and j == {"error": "Object Not Found", "reason": "Not Found"}
    make_user(api, "health-mon", "hm", tags="monitoring")
    assert Api(mbroker, "health-mon", "hm").call("GET", "/health/checks/alarms")[0] == 200


def test_alarm_checks_fail_during_an_alarm():
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_warren(d, http_port=None, config_text="vm_memory_high_watermark.absolute = 1MB\n")
        try:
            api = Api(b)
            for check, reason in (("alarms", "resource alarm(s) in effect in the cluster"),
                                  ("local-alarms", "resource alarm(s) in effect on the node")):
                status, j, _ = api.call("GET", "/health/checks/" + check)
                assert status == 503, j
                assert j["status"] == "failed" and j["reason"] == reason
                assert [a["resource"] for a in j["alarms"]] == ["memory"]
            # The aliveness test does not publish through the blocked path, so it still passes.
            assert api.call("GET", "/aliveness-test/%2F")[0] == 200
        finally:
            b.stop()
