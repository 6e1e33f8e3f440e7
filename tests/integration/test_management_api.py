"""The management HTTP API: RabbitMQ's paths, fields, status codes and error bodies (checked
against RabbitMQ 3.10.8's management plugin) for overview, whoami, vhosts, users (with
password hashes in RabbitMQ's format), permissions, topic permissions, vhost limits, queues,
exchanges, bindings, connections, channels and consumers; tags deciding access; malformed,
unknown and oversize requests."""
import base64
import hashlib
import os
import socket

import pika
import pytest

from helpers import close_quietly
from mgmt_helpers import Api, api, connect, make_user, mbroker, seg  # noqa: F401

pytestmark = pytest.mark.warren_only


def rabbit_hash(password, salt=b"\x90\x8d\xc6\x0a"):
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def test_overview_and_whoami(api):
    o = api.get("/overview")
    for key in ("management_version", "rabbitmq_version", "product_name", "node", "cluster_name",
                "object_totals", "queue_totals", "listeners", "message_stats"):
        assert key in o
    assert set(o["object_totals"]) >= {"connections", "channels", "exchanges", "queues", "consumers"}
    assert api.get("/whoami") == {"name": "guest", "tags": ["administrator"]}


def test_login_failures_and_unknown_paths(mbroker, api):
    status, j, _ = Api(mbroker, "guest", "bad").call("GET", "/overview")
    assert status == 401 and j == {"error": "not_authorized", "reason": "Login failed"}
    status, j, _ = api.call("GET", "/no-such-thing")
    assert status == 404 and j == {"error": "Object Not Found", "reason": "Not Found"}
    status, j, _ = api.call("GET", "/vhosts/nope")
    assert status == 404 and j == {"error": "Object Not Found", "reason": "Not Found"}
    status, j, _ = api.call("PUT", "/users/x", raw=b"{not json")
    assert status == 400 and j == {"error": "bad_request", "reason": "not_json"}


def test_tags_decide_access(mbroker, api):
    make_user(api, "plain-user", "pp", vhost="/")
    make_user(api, "mgmt-user", "mp", vhost="/", tags="management")
    make_user(api, "mon-user", "op", tags="monitoring")
    status, j, _ = Api(mbroker, "plain-user", "pp").call("GET", "/overview")
    assert status == 401 and j["reason"] == "Not management user"
    m = Api(mbroker, "mgmt-user", "mp")
    assert m.get("/whoami")["tags"] == ["management"]
    status, j, _ = m.call("GET", "/users")
    assert status == 401 and j == {"error": "not_authorised", "reason": "Not administrator user"}
    status, _, _ = m.call("PUT", "/vhosts/by-mgmt")
    assert status == 401
    api.put("/vhosts/hidden")
    assert "hidden" not in [v["name"] for v in m.get("/vhosts")]
    assert "hidden" in [v["name"] for v in Api(mbroker, "mon-user", "op").get("/vhosts")]
    api.delete("/vhosts/hidden")


def test_vhosts_crud(api):
    assert api.call("PUT", "/vhosts/api-v", {"description": "d1"})[0] == 201
    assert api.call("PUT", "/vhosts/api-v", {"description": "d2", "tags": "a,b"})[0] == 204
    v = api.get("/vhosts/api-v")
    assert v["name"] == "api-v" and v["description"] == "d2" and v["tags"] == ["a", "b"]
    assert v["metadata"] == {"description": "d2", "tags": ["a", "b"]}
    # The creator gets full permissions in the new vhost, as in RabbitMQ.
    assert api.get("/permissions/api-v/guest")["configure"] == ".*"
    assert api.call("DELETE", "/vhosts/api-v")[0] == 204
    assert api.call("DELETE", "/vhosts/api-v")[0] == 404
    # "/" is %2F in paths.
    assert api.get("/vhosts/%2F")["name"] == "/"


def test_users_with_password_hash_and_tags(mbroker, api):
    assert api.call("PUT", "/users/hashed", {"password_hash": rabbit_hash("test12"),
                                            "hashing_algorithm": "rabbit_password_hashing_sha256",
                                            "tags": ["management"]})[0] == 201
    u = api.get("/users/hashed")
    assert u == {"name": "hashed", "password_hash": rabbit_hash("test12"),
                 "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"],
                 "limits": {}}
    api.put("/permissions/%2F/hashed", {"configure": ".*", "write": ".*", "read": ".*"})
    connect(mbroker, "hashed", "test12").close()
    assert Api(mbroker, "hashed", "test12").get("/whoami")["name"] == "hashed"
    # Update the password and tags: 204.
    assert api.call("PUT", "/users/hashed", {"password": "new", "tags": "administrator"})[0] == 204
    assert api.get("/users/hashed")["tags"] == ["administrator"]
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(mbroker, "hashed", "test12")
    assert [p["vhost"] for p in api.get("/users/hashed/permissions")] == ["/"]
    assert api.call("PUT", "/users/bad-algo", {"password_hash": "x", "hashing_algorithm": "nope"})[0] == 400
    assert api.call("DELETE", "/users/hashed")[0] == 204
    assert api.call("GET", "/users/hashed")[0] == 404
    assert api.call("DELETE", "/users/hashed")[0] == 404


def test_permissions_and_topic_permissions(api):
    make_user(api, "perm-user", "x")
    assert api.call("PUT", "/permissions/%2F/perm-user",
                    {"configure": "^a", "write": "^b", "read": "^c"})[0] == 201
    assert api.call("PUT", "/permissions/%2F/perm-user",
                    {"configure": "^a", "write": "^b", "read": "^d"})[0] == 204
    assert api.get("/permissions/%2F/perm-user") == {
        "user": "perm-user", "vhost": "/", "configure": "^a", "write": "^b", "read": "^d"}
    assert api.call("PUT", "/permissions/nope/perm-user",
                    {"configure": "", "write": "", "read": ""})[0] == 404
    assert api.call("PUT", "/permissions/%2F/perm-user", {"configure": "("})[0] == 400
    assert api.call("DELETE", "/permissions/%2F/perm-user")[0] == 204
    assert api.call("GET", "/permissions/%2F/perm-user")[0] == 404
    assert api.call("PUT", "/topic-permissions/%2F/perm-user",
                    {"exchange": "amq.topic", "write": "^{username}", "read": ".*"})[0] == 201
    assert api.get("/topic-permissions/%2F/perm-user") == [
        {"user": "perm-user", "vhost": "/", "exchange": "amq.topic", "write": "^{username}",
         "read": ".*"}]
    assert api.call("DELETE", "/topic-permissions/%2F/perm-user")[0] == 204
    assert api.get("/topic-permissions") == []


def test_vhost_limits(api):
    api.put("/vhosts/lim")
    assert api.call("PUT", "/vhost-limits/lim/max-queues", {"value": 2})[0] == 204
    assert api.call("PUT", "/vhost-limits/lim/max-connections", {"value": 3})[0] == 204
    assert api.get("/vhost-limits/lim") == [
        {"vhost": "lim", "value": {"max-connections": 3, "max-queues": 2}}]
    status, j, _ = api.call("PUT", "/vhost-limits/lim/max-foo", {"value": 3})
    assert status == 400 and j["error"] == "bad_request" and "Unrecognised terms" in j["reason"]
    assert api.call("DELETE", "/vhost-limits/lim/max-queues")[0] == 204
    assert api.get("/vhost-limits/lim") == [{"vhost": "lim", "value": {"max-connections": 3}}]
    api.delete("/vhosts/lim")


def test_queues_exchanges_bindings(mbroker, api):
    assert api.call("PUT", "/queues/%2F/api-q", {"durable": True, "arguments": {"x-max-length": 10}})[0] == 201
    # Redeclaring with the same arguments is fine; without them it is not (RabbitMQ 3.10.8's
    # answers, byte for byte).
    assert api.call("PUT", "/queues/%2F/api-q",
                    {"durable": True, "arguments": {"x-max-length": 10}})[0] == 204
    status, j, _ = api.call("PUT", "/queues/%2F/api-q", {"durable": True})
    assert status == 400
    assert j["reason"] == ("inequivalent arg 'x-max-length' for queue 'api-q' in vhost '/': "
                           "received none but current is the value '10' of type 'long'")
    status, j, _ = api.call("PUT", "/queues/%2F/bad-q",
                            {"durable": True, "arguments": {"x-max-priority": 1000}})
    assert status == 400
    assert j["reason"] == ("invalid arg 'x-max-priority' for queue 'bad-q' in vhost '/': "
                           "{max_value_exceeded,1000}")
    assert api.call("GET", "/queues/%2F/bad-q")[0] == 404
    status, j, _ = api.call("PUT", "/queues/%2F/api-q", {"durable": False})
    assert status == 400 and "inequivalent arg 'durable'" in j["reason"]
    assert api.call("PUT", "/exchanges/%2F/api-x", {"type": "topic", "durable": True})[0] == 201
    c = connect(mbroker, "guest", "guest")
    try:
        ch = c.channel()
        ch.queue_bind("api-q", "api-x", "a.#")
        ch.confirm_delivery()
        for _ in range(3):
            ch.basic_publish("", "api-q", b"hello")
        q = api.get("/queues/%2F/api-q")
        assert q["name"] == "api-q" and q["vhost"] == "/" and q["durable"] is True
        assert q["arguments"] == {"x-max-length": 10}
        assert q["messages"] == 3 and q["messages_ready"] == 3 and q["type"] == "classic"
        assert "api-q" in [x["name"] for x in api.get("/queues/%2F")]
        x = api.get("/exchanges/%2F/api-x")
        assert {k: x[k] for k in ("name", "vhost", "type", "durable", "auto_delete", "internal")} == {
            "name": "api-x", "vhost": "/", "type": "topic", "durable": True, "auto_delete": False,
            "internal": False}
        assert api.get("/exchanges/%2F/amq.default")["name"] == ""
        b = [b for b in api.get("/bindings/%2F") if b["destination"] == "api-q"]
        assert {"source": "", "vhost": "/", "destination": "api-q", "destination_type": "queue",
                "routing_key": "api-q", "arguments": {}, "properties_key": "api-q"} in b
        assert any(x["source"] == "api-x" and x["routing_key"] == "a.#" for x in b)
        assert api.call("DELETE", "/queues/%2F/api-q/contents")[0] == 204
        assert api.get("/queues/%2F/api-q")["messages"] == 0
        assert api.call("DELETE", "/exchanges/%2F/amq.direct")[0] == 403
        assert api.call("DELETE", "/exchanges/%2F/api-x")[0] == 204
        assert api.call("DELETE", "/queues/%2F/api-q")[0] == 204
        assert api.call("GET", "/queues/%2F/api-q")[0] == 404
    finally:
        close_quietly(c)


def test_connections_channels_consumers_and_close(mbroker, api):
    c = connect(mbroker, "guest", "guest", client_properties={"connection_name": "probe"})
    try:
        ch = c.channel()
        ch.queue_declare("cons-q")
        ch.basic_qos(prefetch_count=7)
        ch.basic_consume("cons-q", lambda *a: None, consumer_tag="tag-1")
        conns = api.get("/connections")
        mine = [x for x in conns if x["client_properties"].get("connection_name") == "probe"]
        assert len(mine) == 1
        conn = mine[0]
        assert conn["user"] == "guest" and conn["vhost"] == "/" and conn["protocol"] == "AMQP 0-9-1"
        assert conn["name"] == "%s:%d -> 127.0.0.1:%d" % (conn["peer_host"], conn["peer_port"], mbroker.port)
        assert conn["channels"] == 1 and conn["auth_mechanism"] == "PLAIN"
        assert api.get("/connections/" + seg(conn["name"]))["name"] == conn["name"]
        chans = [x for x in api.get("/channels") if x["connection_details"]["name"] == conn["name"]]
        assert len(chans) == 1 and chans[0]["name"] == conn["name"] + " (1)"
        assert chans[0]["consumer_count"] == 1 and chans[0]["prefetch_count"] == 7
        cons = [x for x in api.get("/consumers/%2F") if x["consumer_tag"] == "tag-1"]
        assert len(cons) == 1
        assert cons[0]["queue"] == {"name": "cons-q", "vhost": "/"}
        assert cons[0]["ack_required"] is True and cons[0]["prefetch_count"] == 7
        assert cons[0]["channel_details"]["name"] == conn["name"] + " (1)"
        status, _, _ = api.call("DELETE", "/connections/" + seg(conn["name"]),
                                headers={"X-Reason": "maintenance"})
        assert status == 204
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            for _ in range(50):
                c.process_data_events(0.1)
        assert e.value.reply_code == 320
        assert e.value.reply_text == "CONNECTION_FORCED - maintenance"
        assert api.call("DELETE", "/connections/" + seg(conn["name"]))[0] == 404
    finally:
        close_quietly(c)
        api.call("DELETE", "/queues/%2F/cons-q")


def test_oversize_request_gets_413(mbroker):
    body = b"x" * (20_000_000 + 10)
    s = socket.create_connection(("127.0.0.1", mbroker.http_port), timeout=10)
    try:
        head = ("PUT /api/vhosts/big HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
                    base64.b64encode(b"guest:guest").decode(), len(body)))
        s.sendall(head.encode())
        try:
            s.sendall(body[:1_000_000])
        except OSError:
            pass
        reply = s.recv(4096).decode(errors="replace")
        assert reply.startswith("HTTP/1.1 413"), reply
        assert '"error":"bad_request"' in reply
    finally:
        s.close()


def test_api_does_not_block_amqp(mbroker, api):
    # A slow HTTP client that never finishes its request does not stop AMQP traffic.
    s = socket.create_connection(("127.0.0.1", mbroker.http_port), timeout=5)
    try:
        s.sendall(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n")
        c = connect(mbroker, "guest", "guest")
        c.channel().queue_declare("", exclusive=True)
        c.close()
        assert api.get("/whoami")["name"] == "guest"
    finally:
        s.close()
