"""The management API's message endpoints, binding paths, message rates, pagination, sorting
and columns, /api/nodes and the Prometheus counters, driven with urllib, pika, Debian's
rabbitmqadmin and prometheus_client's parser. Request and answer shapes and error texts were
checked against RabbitMQ 3.10.8's management plugin."""
import base64
import json
import os
import subprocess
import tempfile
import time
import urllib.request

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import start_warren
from helpers import close_quietly, wait_for
from mgmt_helpers import Api, connect, make_user, rates_broker, seg

pytestmark = pytest.mark.warren_only


@pytest.fixture(scope="module")
def sbroker():
    """Rates sampled every 300 ms, so that they show quickly."""
    yield from rates_broker(300)


@pytest.fixture
def api(sbroker):
    return Api(sbroker)


def publish(api, payload, routing_key, exchange="amq.default", vhost="/", properties=None,
            encoding="string"):
    return api.call("POST", "/exchanges/%s/%s/publish" % (seg(vhost), seg(exchange)),
                    {"properties": properties or {}, "routing_key": routing_key,
                     "payload": payload, "payload_encoding": encoding})


def publish_amqp(broker, queue, bodies):
    """Publishes `bodies` to `queue` over AMQP with confirms (all in when it returns)."""
    conn = connect(broker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for body in bodies:
            ch.basic_publish("", queue, body)
    finally:
        close_quietly(conn)


def get(api, queue, count=1, ackmode="ack_requeue_true", encoding="auto", vhost="/", **extra):
    body = {"count": count, "ackmode": ackmode, "encoding": encoding}
    body.update(extra)
    return api.call("POST", "/queues/%s/%s/get" % (seg(vhost), seg(queue)), body)


# ---- publish and get ----

def test_publish_and_get_round_trip(api):
    api.put("/queues/%2F/pg-q", {"durable": False})
    status, j, _ = publish(api, "hello", "pg-q")
    assert (status, j) == (200, {"routed": True})
    props = {"delivery_mode": 2, "headers": {"a": 1, "l": [1, "x"], "t": {"b": True}},
             "content_type": "text/plain", "priority": 3, "correlation_id": "c",
             "reply_to": "r", "expiration": "60000", "message_id": "m",
             "timestamp": 1700000000, "type": "t", "user_id": "guest", "app_id": "a"}
    status, j, _ = publish(api, base64.b64encode(b"\xff\x00bin").decode(), "pg-q",
                           properties=props, encoding="base64")
    assert (status, j) == (200, {"routed": True})
    status, msgs, _ = get(api, "pg-q", count=5)
    assert status == 200 and len(msgs) == 2
    first, second = msgs
    assert first == {"payload_bytes": 5, "redelivered": False, "exchange": "",
                     "routing_key": "pg-q", "message_count": 1, "properties": [],
                     "payload": "hello", "payload_encoding": "string"}
    assert second["properties"] == props
    # Not UTF-8: "auto" shows it in base64.
    assert second["payload_encoding"] == "base64"
    assert base64.b64decode(second["payload"]) == b"\xff\x00bin"
    assert second["message_count"] == 0
    # ack_requeue_true put both back, marked redelivered.
    status, msgs, _ = get(api, "pg-q", count=1, encoding="base64", truncate=2)
    assert status == 200
    assert msgs[0]["redelivered"] is True
    assert base64.b64decode(msgs[0]["payload"]) == b"he" and msgs[0]["payload_bytes"] == 5
    assert api.get("/queues/%2F/pg-q")["messages"] == 2
    # ack_requeue_false takes them for good.
    status, msgs, _ = get(api, "pg-q", count=10, ackmode="ack_requeue_false")
    assert status == 200 and len(msgs) == 2
    assert api.get("/queues/%2F/pg-q")["messages"] == 0
    status, msgs, _ = get(api, "pg-q", count=3)
    assert (status, msgs) == (200, [])


def test_published_message_reaches_an_amqp_consumer(sbroker, api):
    api.put("/queues/%2F/pg-amqp", {"durable": True})
    api.call("POST", "/bindings/%2F/e/amq.topic/q/pg-amqp", {"routing_key": "a.*"})
    status, j, _ = publish(api, "via-topic", "a.b", exchange="amq.topic",
                           properties={"delivery_mode": 2, "headers": {"h": "v"}})
    assert (status, j) == (200, {"routed": True})
    conn = connect(sbroker, "guest", "guest")
    try:
        ch = conn.channel()
        method, props, body = ch.basic_get("pg-amqp", auto_ack=True)
        assert body == b"via-topic"
        assert method.exchange == "amq.topic" and method.routing_key == "a.b"
        assert props.delivery_mode == 2 and props.headers == {"h": "v"}
    finally:
        close_quietly(conn)


def test_persistent_publish_survives_restart(sbroker):
    api = Api(sbroker)
    api.put("/queues/%2F/pg-durable", {"durable": True})
    status, j, _ = publish(api, "kept", "pg-durable", properties={"delivery_mode": 2})
    assert (status, j) == (200, {"routed": True})
    sbroker.restart()
    api = Api(sbroker)
    status, msgs, _ = get(api, "pg-durable", ackmode="ack_requeue_false")
    assert status == 200 and [m["payload"] for m in msgs] == ["kept"]


def test_publish_errors(api):
    status, j, _ = publish(api, "x", "nowhere")
    assert (status, j) == (200, {"routed": False})
    status, j, _ = api.call("POST", "/exchanges/%2F/amq.default/publish",
                            {"routing_key": "q", "payload": "x"})
    assert (status, j["reason"]) == (400, "[{key_missing,properties},{key_missing,payload_encoding}]")
    status, j, _ = publish(api, "x", "q", encoding="rot13")
    assert (status, j["reason"]) == (400, ["unsupported_encoding", "rot13"])
    status, j, _ = publish(api, "x", "q", properties={"delivery_mode": "two"})
    assert (status, j["reason"]) == (400, ["not_int", "delivery_mode"])
    status, j, _ = publish(api, "x", "q", exchange="no-such-x")
    assert (status, j["reason"]) == (400, "404 NOT_FOUND - no exchange 'no-such-x' in vhost '/'")
    status, j, _ = publish(api, "x", "q", properties={"user_id": "someone-else"})
    assert status == 400
    assert j["reason"] == ("406 PRECONDITION_FAILED - user_id property set to 'someone-else' "
                           "but authenticated user was 'guest'")
    status, j, _ = api.call("POST", "/exchanges/%2F/amq.default/publish", raw=b"{nope")
    assert (status, j["reason"]) == (400, "not_json")
    status, _, _ = api.call("GET", "/exchanges/%2F/amq.default/publish")
    assert status == 405


def test_get_errors(api):
    api.put("/queues/%2F/ge-q", {"durable": False})
    status, j, _ = api.call("POST", "/queues/%2F/ge-q/get", {"count": 1})
    assert (status, j["reason"]) == (400, "[{key_missing,ackmode},{key_missing,encoding}]")
    status, j, _ = get(api, "ge-q", encoding="hex")
    assert (status, j["reason"]) == (400, "Unsupported encoding. Please use auto or base64.")
    status, j, _ = get(api, "ge-q", ackmode="maybe")
    assert status == 400 and "ackmode" in j["reason"]
    status, j, _ = get(api, "ge-q", count="many")
    assert (status, j["reason"]) == (400, ["not_integer", '"many"'])
    status, j, _ = get(api, "no-such-q")
    assert (status, j) == (404, {"error": "not_found",
                                 "reason": "NOT_FOUND - no queue 'no-such-q' in vhost '/'"})


def test_reject_requeue_false_dead_letters(api):
    api.put("/queues/%2F/rj-dlq", {"durable": False})
    api.put("/queues/%2F/rj-q", {"durable": False, "arguments": {
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "rj-dlq"}})
    publish(api, "bad", "rj-q")
    status, msgs, _ = get(api, "rj-q", ackmode="reject_requeue_false")
    assert status == 200 and msgs[0]["payload"] == "bad"
    assert api.get("/queues/%2F/rj-q")["messages"] == 0
    status, msgs, _ = get(api, "rj-dlq", ackmode="ack_requeue_false")
    assert [m["payload"] for m in msgs] == ["bad"]
    assert msgs[0]["properties"]["headers"]["x-death"][0]["reason"] == "rejected"


def test_publish_and_get_need_permissions(sbroker, api):
    make_user(api, "pg-reader", "pw", vhost="/", conf="", write="", read=".*", tags="management")
    reader = Api(sbroker, "pg-reader", "pw")
    api.put("/queues/%2F/perm-q", {"durable": False})
    status, j, _ = publish(reader, "x", "perm-q")
    # RabbitMQ answers a refused publish with 400 and the AMQP code in the text.
    assert status == 400
    assert j["reason"] == ("403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' "
                           "refused for user 'pg-reader'")
    status, msgs, _ = get(reader, "perm-q")
    assert (status, msgs) == (200, [])


def test_get_of_many_messages_in_turns(sbroker, api):
    """More than 1,000 messages are taken in turns between which AMQP work goes on; the
    answer still has them all, in order, and requeues them all."""
    api.put("/queues/%2F/many-get", {"durable": False})
    publish_amqp(sbroker, "many-get", [b"%d" % i for i in range(2500)])
    status, msgs, _ = get(api, "many-get", count=3000)
    assert status == 200
    assert [m["payload"] for m in msgs] == [str(i) for i in range(2500)]
    assert msgs[-1]["message_count"] == 0
    assert api.get("/queues/%2F/many-get")["messages"] == 2500
    status, msgs, _ = get(api, "many-get", count=2500, ackmode="ack_requeue_false")
    assert status == 200 and len(msgs) == 2500 and all(m["redelivered"] for m in msgs)
    assert api.get("/queues/%2F/many-get")["messages"] == 0


def test_get_waits_for_a_paged_out_head(api):
    api.put("/queues/%2F/lazy-q", {"durable": True, "arguments": {"x-queue-mode": "lazy"}})
    for i in range(50):
        assert publish(api, "m%d" % i, "lazy-q", properties={"delivery_mode": 2})[1] == {"routed": True}
    wait_for(lambda: api.get("/queues/%2F/lazy-q")["messages_paged_out"] > 0, timeout=10)
    status, msgs, _ = get(api, "lazy-q", count=50, ackmode="ack_requeue_false")
    assert status == 200
    assert [m["payload"] for m in msgs] == ["m%d" % i for i in range(50)]


def test_publish_checks_as_a_channel_does(sbroker, api):
    """Topic permissions, queue limits, max_message_size and CC/BCC apply to an API publish
    as to a channel's (texts as RabbitMQ 3.10.8 answers them)."""
    make_user(api, "pg-topic", "pw", vhost="/", tags="management")
    api.put("/topic-permissions/%2F/pg-topic", {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"})
    topic = Api(sbroker, "pg-topic", "pw")
    api.put("/queues/%2F/pg-tq", {"durable": False})
    api.call("POST", "/bindings/%2F/e/amq.topic/q/pg-tq", {"routing_key": "#"})
    assert publish(topic, "ok", "a.b", exchange="amq.topic")[1] == {"routed": True}
    status, j, _ = publish(topic, "no", "b.x", exchange="amq.topic")
    assert (status, j["reason"]) == (400, "403 ACCESS_REFUSED - access to topic 'b.x' in exchange "
                                          "'amq.topic' in vhost '/' refused for user 'pg-topic'")
    make_user(api, "pg-ro", "pw", vhost="/", conf="", write="", read=".*", tags="management")
    status, j, _ = publish(Api(sbroker, "pg-ro", "pw"), "x", "pg-tq")
    assert (status, j["reason"]) == (400, "403 ACCESS_REFUSED - access to exchange 'amq.default' "
                                          "in vhost '/' refused for user 'pg-ro'")
    api.put("/queues/%2F/pg-full", {"durable": False, "arguments": {
        "x-max-length": 1, "x-overflow": "reject-publish"}})
    assert publish(api, "1", "pg-full")[1] == {"routed": True}
    status, j, _ = publish(api, "2", "pg-full")
    assert (status, j["reason"]) == (400, "rejected Unable to publish message. Check queue limits.")
    api.put("/queues/%2F/pg-cc", {"durable": False})
    api.put("/queues/%2F/pg-bcc", {"durable": False})
    assert publish(api, "copied", "pg-tq-none", properties={
        "headers": {"CC": ["pg-cc"], "BCC": ["pg-bcc"]}})[1] == {"routed": True}
    cc = get(api, "pg-cc", ackmode="ack_requeue_false")[1]
    bcc = get(api, "pg-bcc", ackmode="ack_requeue_false")[1]
    assert [m["payload"] for m in cc] == ["copied"] and [m["payload"] for m in bcc] == ["copied"]
    assert cc[0]["properties"]["headers"] == {"CC": ["pg-cc"]}  # BCC is removed


def test_publish_respects_max_message_size():
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_warren(d, http_port=None, config_text="max_message_size = 1000\n")
        try:
            api = Api(b)
            api.put("/queues/%2F/big", {"durable": False})
            status, j, _ = publish(api, "x" * 1001, "big")
            assert (status, j["reason"]) == (400, "406 PRECONDITION_FAILED - message size 1001 is "
                                                  "larger than configured max size 1000")
            assert publish(api, "x" * 1000, "big")[1] == {"routed": True}
        finally:
            b.stop()


def test_get_on_another_connections_exclusive_queue(sbroker, api):
    conn = connect(sbroker, "guest", "guest")
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        status, j, _ = get(api, q)
        assert status == 400
        assert j["reason"].startswith("405 RESOURCE_LOCKED - cannot obtain exclusive access to "
                                      "locked queue '%s' in vhost '/'" % q)
    finally:
        close_quietly(conn)


def test_names_that_are_not_utf8_and_pathological_filters(sbroker, api):
    """A queue name that is not UTF-8 is shown with replacement characters, never a failed
    answer; a backtracking regex is cut off by PCRE's limits and the broker answers."""
    assert api.call("PUT", "/queues/%2F/bad%C0%80name%FF", {"durable": False})[0] == 201
    listed = api.get("/queues/%2F?columns=name")
    assert any("name" in q["name"] and "\ufffd" in q["name"] for q in listed)
    page = api.get("/queues/%2F?page=1&columns=name&name=bad")
    assert page["filtered_count"] == 1
    api.put("/queues/%2F/" + "a" * 200, {"durable": False})
    status, j, _ = api.call("GET", "/queues/%2F?page=1&use_regex=true&name=%5E%28a%2B%29%2Bb%24")
    assert status == 200 and j["filtered_count"] == 0
    assert api.get("/overview")["node"]
    api.delete("/queues/%2F/" + "a" * 200)
    api.delete("/queues/%2F/bad%C0%80name%FF")


# ---- bindings ----

def test_binding_paths(api):
    api.put("/exchanges/%2F/bp-x", {"type": "direct", "durable": False})
    api.put("/exchanges/%2F/bp-x2", {"type": "fanout", "durable": False})
    api.put("/queues/%2F/bp-q", {"durable": False})
    status, _, _ = api.call("POST", "/bindings/%2F/e/bp-x/q/bp-q", {"routing_key": "k1"})
    assert status == 201
    req = urllib.request.Request(api.base + "/bindings/%2F/e/bp-x/q/bp-q",
                                 data=json.dumps({"routing_key": "k2", "arguments": {"x": 1}}).encode(),
                                 method="POST", headers={"Authorization": api.auth,
                                                         "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201
        location = r.headers["Location"]
    assert location.startswith("bp-q/k2~")
    listed = api.get("/bindings/%2F/e/bp-x/q/bp-q")
    assert [(b["routing_key"], b["arguments"]) for b in listed] == [("k1", {}), ("k2", {"x": 1})]
    props = listed[1]["properties_key"]
    assert location == "bp-q/" + props
    one = api.get("/bindings/%2F/e/bp-x/q/bp-q/" + seg(props))
    assert one == listed[1]
    assert api.get("/bindings/%2F/e/bp-x/q/bp-q/k1")["routing_key"] == "k1"
    # Exchange to exchange.
    assert api.call("POST", "/bindings/%2F/e/bp-x/e/bp-x2", {"routing_key": "k3"})[0] == 201
    assert [b["destination"] for b in api.get("/bindings/%2F/e/bp-x/e/bp-x2")] == ["bp-x2"]
    # The per-exchange and per-queue views; the default binding comes first for a queue.
    source = api.get("/exchanges/%2F/bp-x/bindings/source")
    assert sorted((b["destination"], b["routing_key"]) for b in source) == [
        ("bp-q", "k1"), ("bp-q", "k2"), ("bp-x2", "k3")]
    dest = api.get("/exchanges/%2F/bp-x2/bindings/destination")
    assert [(b["source"], b["routing_key"]) for b in dest] == [("bp-x", "k3")]
    qb = api.get("/queues/%2F/bp-q/bindings")
    assert [(b["source"], b["routing_key"]) for b in qb] == [("", "bp-q"), ("bp-x", "k1"), ("bp-x", "k2")]
    # Routing follows the bindings made through the API.
    assert publish(api, "r", "k2", exchange="bp-x")[1] == {"routed": True}
    # Delete by properties key.
    assert api.call("DELETE", "/bindings/%2F/e/bp-x/q/bp-q/k1")[0] == 204
    assert api.call("DELETE", "/bindings/%2F/e/bp-x/q/bp-q/k1")[0] == 404
    assert api.call("DELETE", "/bindings/%2F/e/bp-x/e/bp-x2/k3")[0] == 204
    assert [b["routing_key"] for b in api.get("/bindings/%2F/e/bp-x/q/bp-q")] == ["k2"]
    assert publish(api, "r", "k1", exchange="bp-x")[1] == {"routed": False}


def test_binding_path_errors(api):
    api.put("/queues/%2F/be-q", {"durable": False})
    status, j, _ = api.call("POST", "/bindings/%2F/e/no-x/q/be-q", {"routing_key": "k"})
    assert (status, j) == (404, {"error": "not_found", "reason": "no exchange 'no-x' in vhost '/'"})
    status, j, _ = api.call("POST", "/bindings/%2F/e/amq.direct/q/no-q", {"routing_key": "k"})
    assert (status, j) == (404, {"error": "not_found", "reason": "no queue 'no-q' in vhost '/'"})
    status, j, _ = api.call("POST", "/bindings/%2F/e/amq.default/q/be-q", {"routing_key": "k"})
    assert (status, j["reason"]) == (401, "Access refused.")
    status, _, _ = api.call("GET", "/bindings/%2F/e/amq.direct/q/be-q/never")
    assert status == 404
    status, _, _ = api.call("GET", "/bindings/%2F/x/amq.direct/q/be-q")
    assert status == 404
    make_user(api, "be-ro", "pw", vhost="/", conf="", write="", read=".*", tags="management")
    status, j, _ = Api(api_broker(api), "be-ro", "pw").call(
        "POST", "/bindings/%2F/e/amq.direct/q/be-q", {"routing_key": "k"})
    assert (status, j["reason"]) == (401, "Access refused.")


def api_broker(api):
    class B:
        http_port = int(api.base.split(":")[2].split("/")[0])
    return B


def test_binding_with_argument_types_json_cannot_carry_is_deleted(sbroker, api):
    import decimal
    api.put("/exchanges/%2F/typed-x", {"type": "headers", "durable": False})
    api.put("/queues/%2F/typed-q", {"durable": False})
    conn = connect(sbroker, "guest", "guest")
    try:
        conn.channel().queue_bind("typed-q", "typed-x", "", arguments={
            "x-match": "all", "d": decimal.Decimal("1.5"), "raw": b"bytes"})
    finally:
        close_quietly(conn)
    listed = api.get("/bindings/%2F/e/typed-x/q/typed-q")
    assert len(listed) == 1
    props = listed[0]["properties_key"]
    assert api.call("DELETE", "/bindings/%2F/e/typed-x/q/typed-q/" + seg(props))[0] == 204
    assert api.get("/bindings/%2F/e/typed-x/q/typed-q") == []


# ---- rates ----

def test_message_rates_follow_traffic(sbroker, api):
    api.put("/queues/%2F/rate-q", {"durable": False})
    conn = connect(sbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(200):
            ch.basic_publish("", "rate-q", b"x" * 10)
        got = 0
        for method, _, _ in ch.consume("rate-q", inactivity_timeout=5):
            assert method is not None
            ch.basic_ack(method.delivery_tag)
            got += 1
            if got == 200:
                break
        ch.cancel()
        wait_for(lambda: api.get("/queues/%2F/rate-q").get("message_stats", {}).get("ack") == 200,
                 timeout=10)
        q = api.get("/queues/%2F/rate-q")
        ms = q["message_stats"]
        assert ms["publish"] == 200 and ms["deliver"] == 200 and ms["deliver_get"] == 200
        assert ms["ack"] == 200 and ms["redeliver"] == 0
        assert set(ms["publish_details"]) == {"rate"}
        overview = api.get("/overview")
        assert overview["rates_mode"] == "basic"
        o = overview["message_stats"]
        assert o["publish"] >= 200 and o["confirm"] >= 200 and o["ack"] >= 200
        assert o["deliver_get"] >= 200
        assert "messages_details" in overview["queue_totals"]
        # Channel counters.
        chans = [c for c in api.get("/channels") if c["message_stats"]["publish"] == 200]
        assert len(chans) == 1 and chans[0]["message_stats"]["confirm"] == 200
        # A rate is the change over the last sample: it shows while messages flow, then goes
        # back to 0 when they stop.
        def publishing_rate_seen():
            for _ in range(20):
                ch.basic_publish("", "rate-q", b"y")
            return api.get("/queues/%2F/rate-q")["message_stats"]["publish_details"]["rate"] > 0
        wait_for(publishing_rate_seen, timeout=10)
        wait_for(lambda: api.get("/queues/%2F/rate-q")["message_stats"]["publish_details"]["rate"] == 0,
                 timeout=10)
    finally:
        close_quietly(conn)
    # Exchanges: publish_in and publish_out.
    api.put("/exchanges/%2F/rate-x", {"type": "fanout", "durable": False})
    api.call("POST", "/bindings/%2F/e/rate-x/q/rate-q", {"routing_key": ""})
    for _ in range(3):
        publish(api, "p", "", exchange="rate-x")
    x = api.get("/exchanges/%2F/rate-x")
    assert x["message_stats"]["publish_in"] == 3 and x["message_stats"]["publish_out"] == 3
    assert "message_stats" not in api.get("/exchanges/%2F/amq.headers")


def test_byte_counters_and_rates(sbroker, api):
    api.put("/vhosts/bytes")
    api.put("/permissions/bytes/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    api.put("/queues/bytes/bytes-q", {"durable": False})
    conn = connect(sbroker, "guest", "guest", vhost="bytes")
    try:
        ch = conn.channel()
        def sending():
            for _ in range(20):
                ch.basic_publish("", "bytes-q", b"z" * 1000)
            conn.process_data_events(0)
            mine = [c for c in api.get("/connections") if c["vhost"] == "bytes"]
            return len(mine) == 1 and mine[0]["recv_oct_details"]["rate"] > 1000
        wait_for(sending, timeout=10)
        c = [c for c in api.get("/connections") if c["vhost"] == "bytes"][0]
        # At least the bodies came in; the handshake and replies went out.
        assert c["recv_oct"] > 20 * 1000 and c["send_oct"] > 0
        assert c["recv_cnt"] > 0 and c["send_cnt"] > 0
        v = api.get("/vhosts/bytes")
        assert v["recv_oct"] >= c["recv_oct"] and v["messages"] >= 20
        assert v["message_stats"]["publish"] >= 20
    finally:
        close_quietly(conn)


# ---- pagination, sorting, columns ----

def test_pagination_sorting_and_columns(sbroker):
    api = Api(sbroker)
    api.put("/vhosts/pages")
    api.put("/permissions/pages/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    for name in ["pa-b", "pa-a", "pa-c", "other"]:
        api.put("/queues/pages/" + name, {"durable": False})
    for i in range(3):
        publish(api, "m", "pa-c", vhost="pages")
    publish(api, "m", "pa-a", vhost="pages")
    page = api.get("/queues/pages?page=1&page_size=2")
    assert {k: page[k] for k in ("filtered_count", "item_count", "page", "page_count",
                                 "page_size", "total_count")} == {
        "filtered_count": 4, "item_count": 2, "page": 1, "page_count": 2, "page_size": 2,
        "total_count": 4}
    assert [q["name"] for q in page["items"]] == ["other", "pa-a"]
    page = api.get("/queues/pages?page=2&page_size=2&columns=name,messages")
    assert page["items"] == [{"name": "pa-b", "messages": 0}, {"name": "pa-c", "messages": 3}]
    # The name filter: a case-insensitive substring, or a regex with use_regex.
    page = api.get("/queues/pages?page=1&name=PA-&sort=name&sort_reverse=true&columns=name")
    assert page["filtered_count"] == 3 and page["total_count"] == 4
    assert page["items"] == [{"name": "pa-c"}, {"name": "pa-b"}, {"name": "pa-a"}]
    page = api.get("/queues/pages?page=1&name=%5Epa-%5Bab%5D%24&use_regex=true&columns=name")
    assert [q["name"] for q in page["items"]] == ["pa-a", "pa-b"]
    # Sort on a count and on a nested field, without pagination (a plain list).
    listed = api.get("/queues/pages?sort=messages&sort_reverse=true&columns=name,messages")
    assert listed[:2] == [{"name": "pa-c", "messages": 3}, {"name": "pa-a", "messages": 1}]
    listed = api.get("/queues/pages?sort=message_stats.publish&columns=name,message_stats.publish")
    assert listed[-1] == {"name": "pa-c", "message_stats": {"publish": 3}}
    # Other list endpoints take the same parameters.
    xs = api.get("/exchanges/pages?page=1&page_size=3&columns=name,type")
    assert xs["item_count"] == 3 and set(xs["items"][0]) <= {"name", "type"}
    users = api.get("/users?columns=name")
    assert {"name": "guest"} in users
    conns = api.get("/connections?page=1")
    assert "items" in conns
    # Errors, as RabbitMQ words them.
    # One empty page past the end is allowed, as RabbitMQ's sublist allows it.
    assert api.get("/queues/pages?page=3&page_size=2")["items"] == []
    status, j, _ = api.call("GET", "/queues/pages?page=9&page_size=2")
    assert (status, j) == (400, {"error": "page_out_of_range",
                                 "reason": "Page out of range, page: 9 page size: 2, len: 4"})
    status, j, _ = api.call("GET", "/queues/pages?page=1&page_size=501")
    assert (status, j["error"]) == (400, "invalid_pagination_parameters")
    status, j, _ = api.call("GET", "/queues/pages?page=x")
    assert (status, j["reason"]) == (400, "Pagination parameters are invalid")
    status, j, _ = api.call("GET", "/queues/pages?page=1&name=(&use_regex=true")
    assert (status, j["reason"]) == (400, "Pagination parameters are invalid")


def test_a_page_of_many_queues(sbroker):
    """20,000 queues: a page is built from names alone, and AMQP keeps flowing while a full
    list is built (checked as answers, not timed)."""
    api = Api(sbroker)
    api.put("/vhosts/many")
    api.put("/permissions/many/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    defs = {"queues": [{"name": "m%05d" % i, "vhost": "many", "durable": False,
                        "auto_delete": False, "arguments": {}} for i in range(20000)]}
    status, _, _ = api.call("POST", "/definitions", defs)
    assert status in (201, 204)
    page = api.get("/queues/many?page=200&page_size=100&columns=name")
    assert page["total_count"] == 20000 and page["page_count"] == 200
    assert page["items"][0] == {"name": "m19900"} and len(page["items"]) == 100
    page = api.get("/queues/many?page=1&page_size=5&name=m1234&columns=name")
    assert [q["name"] for q in page["items"]] == ["m12340", "m12341", "m12342", "m12343", "m12344"]
    full = api.get("/queues/many?columns=name")
    assert len(full) == 20000 and full[0] == {"name": "m00000"}


# ---- nodes and Prometheus ----

def test_nodes(sbroker, api):
    nodes = api.get("/nodes")
    assert len(nodes) == 1
    node = nodes[0]
    for field in ("name", "type", "running", "mem_used", "mem_limit", "mem_alarm", "disk_free",
                  "disk_free_limit", "disk_free_alarm", "fd_used", "fd_total", "sockets_used",
                  "uptime", "os_pid", "processors", "partitions"):
        assert field in node, field
    assert node["running"] is True and node["mem_alarm"] is False
    assert node["mem_used"] > 0 and node["mem_limit"] > node["mem_used"]
    assert node["os_pid"] == str(sbroker.proc.pid)
    assert api.get("/nodes/" + seg(node["name"]))["name"] == node["name"]
    assert api.call("GET", "/nodes/nobody@nowhere")[0] == 404
    make_user(api, "nodes-mgmt", "pw", vhost="/", tags="management")
    status, j, _ = Api(sbroker, "nodes-mgmt", "pw").call("GET", "/nodes")
    assert (status, j["reason"]) == (401, "Not monitor user")


def test_prometheus_counters(sbroker, api):
    def scrape():
        url = "http://127.0.0.1:%d/metrics" % sbroker.http_port
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    before = scrape()
    api.put("/queues/%2F/prom-q", {"durable": False})
    conn = connect(sbroker, "guest", "guest")
    try:
        ch = conn.channel()
        for _ in range(5):
            ch.basic_publish("", "prom-q", b"p")
        ch.basic_publish("", "prom-nowhere", b"p")
        for _ in range(5):
            method, _, _ = ch.basic_get("prom-q", auto_ack=False)
            ch.basic_ack(method.delivery_tag)
        assert ch.basic_get("prom-q")[0] is None
    finally:
        close_quietly(conn)
    after = scrape()
    delta = lambda name: after[name] - before.get(name, 0)  # noqa: E731
    # prometheus_client reports a counter's samples with their _total suffix.
    assert delta("rabbitmq_global_messages_received_total") == 6
    assert delta("rabbitmq_global_messages_routed_total") == 5
    assert delta("rabbitmq_global_messages_unroutable_dropped_total") == 1
    assert delta("rabbitmq_global_messages_delivered_get_manual_ack_total") == 5
    assert delta("rabbitmq_global_messages_get_empty_total") == 1
    assert delta("rabbitmq_global_messages_acknowledged_total") == 5
    assert delta("rabbitmq_global_messages_delivered_total") == 5
    assert delta("rabbitmq_connections_opened_total") == 1
    assert delta("rabbitmq_queues_created_total") == 1


# ---- rabbitmqadmin ----

def admin(broker, *args):
    r = subprocess.run(["rabbitmqadmin", "-H", "127.0.0.1", "-P", str(broker.http_port),
                        "-u", "guest", "-p", "guest"] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_rabbitmqadmin_declare_publish_get_list_delete(sbroker, api, tmp_path):
    assert "queue declared" in admin(sbroker, "declare", "queue", "name=adm-q", "durable=true")
    assert "exchange declared" in admin(sbroker, "declare", "exchange", "name=adm-x", "type=topic")
    assert "binding declared" in admin(sbroker, "declare", "binding", "source=adm-x",
                                       "destination=adm-q", "routing_key=a.#")
    assert "Message published" in admin(sbroker, "publish", "exchange=adm-x", "routing_key=a.b",
                                        "payload=from rabbitmqadmin", "properties={\"delivery_mode\":2}")
    assert "Message published but NOT routed" in admin(sbroker, "publish", "exchange=adm-x",
                                                       "routing_key=z", "payload=lost")
    out = json.loads(admin(sbroker, "-f", "raw_json", "get", "queue=adm-q", "ackmode=ack_requeue_true"))
    assert out[0]["payload"] == "from rabbitmqadmin" and out[0]["routing_key"] == "a.b"
    assert out[0]["properties"] == {"delivery_mode": 2}
    queues = json.loads(admin(sbroker, "-f", "raw_json", "list", "queues", "name", "messages"))
    assert {"name": "adm-q", "messages": 1} in queues
    bindings = json.loads(admin(sbroker, "-f", "raw_json", "list", "bindings"))
    assert any(b["source"] == "adm-x" and b["destination"] == "adm-q" for b in bindings)
    assert "adm-q" in admin(sbroker, "list", "queues")
    overview = admin(sbroker, "show", "overview")
    assert "Warren" in overview or "3.13" in overview
    nodes = json.loads(admin(sbroker, "-f", "raw_json", "list", "nodes"))
    assert len(nodes) == 1
    export = str(tmp_path / "adm.json")
    admin(sbroker, "export", export)
    with open(export) as f:
        assert "adm-q" in [q["name"] for q in json.load(f)["queues"]]
    out = json.loads(admin(sbroker, "-f", "raw_json", "get", "queue=adm-q", "ackmode=ack_requeue_false"))
    assert out[0]["payload"] == "from rabbitmqadmin"
    assert api.get("/queues/%2F/adm-q")["messages"] == 0
    assert "binding deleted" in admin(sbroker, "delete", "binding", "source=adm-x",
                                      "destination=adm-q", "destination_type=queue",
                                      "properties_key=a.#")
    assert api.get("/bindings/%2F/e/adm-x/q/adm-q") == []
    assert "queue deleted" in admin(sbroker, "delete", "queue", "name=adm-q")
    assert "exchange deleted" in admin(sbroker, "delete", "exchange", "name=adm-x")
    assert api.call("GET", "/queues/%2F/adm-q")[0] == 404
