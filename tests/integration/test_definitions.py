"""Definitions (compared with RabbitMQ 3.10.8): GET /api/definitions[/{vhost}] in RabbitMQ's
format, POST import, a file exported by RabbitMQ 3.10.8 (data/rabbitmq-3.10.8-definitions.json:
user olduser/oldpass, vhost legacy, a durable topic exchange, a durable queue, a binding, a
policy and a vhost limit) importing into Warren with its user logging in with the old
password, a Warren-to-Warren round trip, warrenctl export_/import_definitions, Debian's
rabbitmqadmin export, and rabbitmq.conf's load_definitions read at start."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pika
import pytest

from conftest import start_warren
from helpers import close_quietly
from mgmt_helpers import Api, api, connect, fresh_mbroker, make_user, mbroker  # noqa: F401
from test_warrenctl import ok

pytestmark = pytest.mark.warren_only

HERE = os.path.dirname(os.path.abspath(__file__))
RABBIT_FILE = os.path.join(HERE, "data", "rabbitmq-3.10.8-definitions.json")


def rabbit_defs():
    with open(RABBIT_FILE) as f:
        return json.load(f)


def check_rabbit_import(b):
    api = Api(b)
    assert "legacy" in [v["name"] for v in api.get("/vhosts")]
    u = api.get("/users/olduser")
    assert u["tags"] == ["management"]
    assert u["password_hash"] == [x for x in rabbit_defs()["users"] if x["name"] == "olduser"][0]["password_hash"]
    assert api.get("/permissions/legacy/olduser")["configure"] == ".*"
    assert {"user": "olduser", "vhost": "legacy", "exchange": "amq.topic", "write": "^a",
            "read": ".*"} in api.get("/topic-permissions")
    x = api.get("/exchanges/legacy/orders")
    assert x["type"] == "topic" and x["durable"] is True
    q = api.get("/queues/legacy/orders.q")
    assert q["durable"] is True and q["arguments"] == {"x-max-length": 100}
    assert q["policy"] == "ttl" and q["effective_policy_definition"] == {"message-ttl": 60000}
    assert [b for b in api.get("/bindings/legacy") if b["source"] == "orders"][0]["routing_key"] == "order.*"
    assert api.get("/vhost-limits/legacy") == [{"vhost": "legacy", "value": {"max-queues": 50}}]
    # The user logs in over AMQP with the password it had on RabbitMQ, and the topology routes.
    conn = connect(b, "olduser", "oldpass", vhost="legacy")
    try:
        ch = conn.channel()
        ch.basic_publish("orders", "order.1", b"hello")
        deadline = time.time() + 5
        got = None
        while time.time() < deadline and got is None:
            got = ch.basic_get("orders.q", auto_ack=True)[2]
        assert got == b"hello"
    finally:
        close_quietly(conn)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(b, "olduser", "wrong", vhost="legacy")


def test_import_a_rabbitmq_export_and_log_in(fresh_mbroker):
    b = fresh_mbroker
    status, _, _ = Api(b).call("POST", "/definitions", rabbit_defs())
    assert status == 204
    check_rabbit_import(b)
    # Importing again changes nothing and succeeds.
    assert Api(b).call("POST", "/definitions", rabbit_defs())[0] == 204
    b.restart()
    check_rabbit_import(b)


def test_export_format(mbroker, api):
    make_user(api, "exp-user", "ep", vhost="/", tags="monitoring")
    api.put("/queues/%2F/exp-q", {"durable": True, "arguments": {"x-message-ttl": 5000}})
    api.put("/exchanges/%2F/exp-x", {"type": "fanout", "durable": True})
    api.put("/policies/%2F/exp-p", {"pattern": "^exp-", "definition": {"max-length": 10}})
    conn = connect(mbroker, "guest", "guest")
    try:
        conn.channel().queue_bind("exp-q", "exp-x", "k")
    finally:
        close_quietly(conn)
    d = api.get("/definitions")
    for key in ("rabbit_version", "users", "vhosts", "permissions", "topic_permissions",
                "parameters", "global_parameters", "policies", "queues", "exchanges", "bindings"):
        assert key in d, key
    u = [x for x in d["users"] if x["name"] == "exp-user"][0]
    assert set(u) >= {"name", "password_hash", "hashing_algorithm", "tags"}
    assert u["hashing_algorithm"] == "rabbit_password_hashing_sha256" and u["tags"] == ["monitoring"]
    assert {"name": "exp-q", "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-message-ttl": 5000}} in d["queues"]
    assert {"name": "exp-x", "vhost": "/", "type": "fanout", "durable": True, "auto_delete": False,
            "internal": False, "arguments": {}} in d["exchanges"]
    assert not [x for x in d["exchanges"] if x["name"] == "" or x["name"].startswith("amq.")]
    assert {"source": "exp-x", "vhost": "/", "destination": "exp-q", "destination_type": "queue",
            "routing_key": "k", "arguments": {}} in d["bindings"]
    assert {"vhost": "/", "name": "exp-p", "pattern": "^exp-", "apply-to": "all",
            "definition": {"max-length": 10}, "priority": 0} in d["policies"]
    one = api.get("/definitions/%2F")
    assert set(one) == {"rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"}
    assert {"name": "exp-q", "durable": True, "auto_delete": False,
            "arguments": {"x-message-ttl": 5000}} in one["queues"]
    assert api.call("GET", "/definitions/no-such-vhost")[0] == 404


def test_import_errors_and_access(mbroker, api):
    status, j, _ = api.call("POST", "/definitions", raw=b"{not json")
    assert status == 400 and j == {"error": "bad_request", "reason": "failed_to_parse_json"}
    status, j, _ = api.call("POST", "/definitions", {"users": [{"name": "x"}]})
    assert status == 400 and j == {"error": "bad_request", "reason": "tags_not_present"}
    assert api.call("POST", "/definitions", {"rabbit_version": "3.10.8"})[0] == 204
    # The importing administrator needs no AMQP permissions in the vhosts it fills.
    status, j, _ = api.call("POST", "/definitions", {
        "vhosts": [{"name": "no-perms"}],
        "queues": [{"name": "np-q", "vhost": "no-perms", "durable": True, "auto_delete": False,
                    "arguments": {}}]})
    assert status == 204, j
    assert api.get("/queues/no-perms/np-q")["durable"] is True
    status, j, _ = api.call("POST", "/definitions", {
        "queues": [{"name": "q", "vhost": "missing-vhost", "durable": True}]})
    assert status == 400 and j == {"error": "bad_request", "reason": ["no_such_vhost", "missing-vhost"]}
    # A binding whose ends are missing is skipped, as RabbitMQ does.
    assert api.call("POST", "/definitions", {"bindings": [
        {"source": "nox", "vhost": "/", "destination": "noq", "destination_type": "queue",
         "routing_key": "k", "arguments": {}}]})[0] == 204
    # So is one the exchange type refuses (RabbitMQ 3.10.8: 204, binding left out).
    assert api.call("PUT", "/queues/%2F/def-hq", {"durable": False})[0] == 201
    assert api.call("POST", "/definitions", {"bindings": [
        {"source": "amq.headers", "vhost": "/", "destination": "def-hq",
         "destination_type": "queue", "routing_key": "", "arguments": {"x-match": "bogus"}}]})[0] == 204
    assert [b["source"] for b in api.get("/bindings/%2F") if b["destination"] == "def-hq"] == [""]
    make_user(api, "def-mon", "dm", tags="monitoring")
    status, j, _ = Api(mbroker, "def-mon", "dm").call("GET", "/definitions")
    assert status == 401 and j["reason"] == "Not administrator user"


def test_round_trip_between_warrens_and_per_vhost_import(fresh_mbroker):
    src = Api(fresh_mbroker)
    src.put("/vhosts/rt", {"description": "round trip"})
    make_user(src, "rt-user", "rtp", vhost="rt", tags="management")
    src.put("/queues/rt/rt-q", {"durable": True})
    src.put("/exchanges/rt/rt-x", {"type": "direct", "durable": True})
    src.put("/policies/rt/rt-p", {"pattern": "^rt", "definition": {"expires": 60000}, "priority": 3})
    src.put("/vhost-limits/rt/max-connections", {"value": 7})
    conn = connect(fresh_mbroker, "guest", "guest", vhost="rt")
    try:
        conn.channel().queue_bind("rt-q", "rt-x", "rk")
    finally:
        close_quietly(conn)
    exported = src.get("/definitions")
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        other = start_warren(d, http_port=None)
        try:
            dst = Api(other)
            assert dst.call("POST", "/definitions", exported)[0] == 204
            again = dst.get("/definitions")
            for key in ("users", "vhosts", "permissions", "topic_permissions", "parameters",
                        "policies", "queues", "exchanges", "bindings"):
                key_of = lambda x: json.dumps(x, sort_keys=True)  # noqa: E731
                assert sorted(map(key_of, again[key])) == sorted(map(key_of, exported[key])), key
            connect(other, "rt-user", "rtp", vhost="rt").close()
            # The per-vhost form imports into the vhost of the path.
            dst.put("/vhosts/copy")
            one = src.get("/definitions/rt")
            assert dst.call("POST", "/definitions/copy", one)[0] == 204
            assert dst.get("/queues/copy/rt-q")["durable"] is True
            assert dst.get("/policies/copy/rt-p")["priority"] == 3
            assert [b for b in dst.get("/bindings/copy") if b["source"] == "rt-x"][0]["routing_key"] == "rk"
        finally:
            other.stop()


def test_warrenctl_export_and_import(mbroker, tmp_path):
    api = Api(mbroker)
    api.put("/queues/%2F/ctl-exported", {"durable": True})
    path = str(tmp_path / "defs.json")
    assert ok(mbroker, "export_definitions", path) == (
        'Exporting definitions in JSON to a file at "%s" ...\n' % path)
    with open(path) as f:
        d = json.load(f)
    assert "ctl-exported" in [q["name"] for q in d["queues"]]
    d["queues"].append({"name": "ctl-imported", "vhost": "/", "durable": True,
                        "auto_delete": False, "arguments": {}})
    with open(path, "w") as f:
        json.dump(d, f)
    out = ok(mbroker, "import_definitions", path)
    assert out.splitlines() == [
        'Importing definitions in JSON from a file at "%s" ...' % path,
        "Successfully started definition import. This process is asynchronous and can take "
        "some time."]
    assert api.get("/queues/%2F/ctl-imported")["durable"] is True


def test_rabbitmqadmin_export(mbroker, tmp_path):
    path = str(tmp_path / "admin-export.json")
    r = subprocess.run(["rabbitmqadmin", "-H", "127.0.0.1", "-P", str(mbroker.http_port),
                        "-u", "guest", "-p", "guest", "export", path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    with open(path) as f:
        assert "guest" in [u["name"] for u in json.load(f)["users"]]


def test_load_definitions_at_start(tmp_path):
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_warren(d, http_port=None,
                         config_text="load_definitions = %s\nloopback_users = none\n" % RABBIT_FILE)
        try:
            check_rabbit_import(b)
        finally:
            b.stop()
    # A directory: each .json file in name order (the second needs the first's vhost).
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        defs_dir = os.path.join(d, "defs")
        os.mkdir(defs_dir)
        shutil.copy(RABBIT_FILE, os.path.join(defs_dir, "1-rabbit.json"))
        with open(os.path.join(defs_dir, "2-more.json"), "w") as f:
            json.dump({"queues": [{"name": "from-dir", "vhost": "legacy", "durable": True,
                                   "auto_delete": False, "arguments": {}}]}, f)
        with open(os.path.join(defs_dir, "ignored.txt"), "w") as f:
            f.write("not json")
        b = start_warren(d, http_port=None, config_text="load_definitions = %s\n" % defs_dir)
        try:
            assert Api(b).get("/queues/legacy/from-dir")["durable"] is True
        finally:
            b.stop()
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        bad = os.path.join(d, "bad.json")
        with open(bad, "w") as f:
            f.write("not json")
        cfg = os.path.join(d, "r.conf")
        with open(cfg, "w") as f:
            f.write("load_definitions = %s\n" % bad)
        from conftest import WARREN_BIN
        r = subprocess.run([WARREN_BIN, "--config", cfg, "--data-dir", d, "--amqp-port", "0",
                            "--http-port", "0"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "cannot load definitions from %s" % bad in (r.stdout + r.stderr)
