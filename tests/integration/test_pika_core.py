"""Core AMQP 0-9-1 behaviour through pika's BlockingConnection, as RabbitMQ 3.10 does it.

Covers: connection handshake and tuning, server capabilities, authentication and vhost
failures; channels (many, flow, channel_max, isolation of channel errors); exchanges of
every type, reserved names, predeclared exchanges, exchange-to-exchange bindings,
alternate exchanges, internal exchanges; routing (direct, fanout, topic, headers,
default); queues (server names, passive, equivalence, exclusive, auto-delete, bind,
purge, delete); basic (properties round trip, large and empty bodies split into frames,
consumers and tags, cancel notification, round robin, QoS, ack/nack/reject/recover,
requeue on close, mandatory returns); publisher confirms; transactions.

Every error test checks the reply code and RabbitMQ's reply text, then proves that the
connection (or, for connection errors, the broker) still works.
"""
import datetime
import decimal
import struct
import threading
import time

import pika
import pika.exceptions as pexc
import pytest

from helpers import (
    RawClient, close_quietly, reply_text, collect_deliveries, drain_bodies, fresh_health_check,
    message_count, pika_connect, pika_get, round_trip, settle, wait_message_count,
)

LOCKED_TEXT = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in "
               "vhost '/'. It could be originally declared on another connection or the "
               "exclusive property value does not match that of the original declaration.")
DEFAULT_EX_TEXT = "ACCESS_REFUSED - operation not permitted on the default exchange"


# ----------------------------------------------------------------------------- fixtures

from pika_fixtures import ch, channel_closed, conn, janitor  # noqa: F401 (fixtures)


def temp_queue(ch, **kw):
    return ch.queue_declare("", exclusive=True, **kw).method.queue


def publish_n(ch, exchange, key, n, prefix="m"):
    bodies = [("%s%d" % (prefix, i)).encode() for i in range(n)]
    for b in bodies:
        ch.basic_publish(exchange, key, b)
    return bodies


def consume_into(ch, queue, store, **kw):
    return ch.basic_consume(queue, lambda c, m, p, b: store.append((m, p, b)), **kw)


# ----------------------------------------------------------------------------- connection

def test_connect_and_client_close(broker):
    c = pika_connect(broker)
    assert c.is_open
    c.close()
    assert c.is_closed
    fresh_health_check(broker)


def test_idle_connection_keeps_working_after_its_buffers_are_released(broker):
    """After a second without traffic the broker gives back an idle connection's empty
    buffers (Connection::trim_if_idle); the connection, an idle consumer on it and a
    multi-frame message must all work after that, in both directions."""
    c = pika.BlockingConnection(broker.pika_params(heartbeat=0))
    try:
        ch = c.channel()
        q = temp_queue(ch)
        got = []
        consume_into(ch, q, got)
        c.sleep(2.5)  # the broker's tick trims after a second idle (ticks every 200 ms)
        big = bytes(range(256)) * 2048  # 512 KiB: several frames and a grown read buffer
        ch.basic_publish("", q, big)
        ch.basic_publish("", q, b"small")
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            c.process_data_events(0.1)
        assert [b for _, _, b in got] == [big, b"small"]
        c.sleep(2.5)  # idle again: trimmed a second time
        ch.basic_publish("", q, b"again")
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            c.process_data_events(0.1)
        assert got[2][2] == b"again"
    finally:
        close_quietly(c)


def test_server_properties_product_and_version(conn):
    props = conn._impl.server_properties
    assert isinstance(props["product"], str) and props["product"]
    assert isinstance(props["version"], str) and props["version"]
    assert isinstance(props["capabilities"], dict)


@pytest.mark.parametrize("cap", [
    "publisher_confirms", "exchange_exchange_bindings", "basic.nack",
    "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
    "authentication_failure_close", "per_consumer_qos", "direct_reply_to"])
def test_server_capability(conn, cap):
    assert conn._impl.server_properties["capabilities"][cap] is True


def test_pika_capability_accessors(conn):
    assert conn.publisher_confirms_supported
    assert conn.basic_nack_supported
    assert conn.consumer_cancel_notify_supported
    assert conn.exchange_exchange_bindings_supported


def test_negotiated_defaults_when_client_accepts_server_values(broker):
    c = pika_connect(broker, heartbeat=None)  # None: take the broker's heartbeat
    try:
        p = c._impl.params
        assert (p.channel_max, p.frame_max, p.heartbeat) == (2047, 131072, 60)
    finally:
        c.close()


def test_server_offers_heartbeat_60(broker):
    offered = []

    def choose(_conn, server_value):
        offered.append(server_value)
        return server_value

    c = pika_connect(broker, heartbeat=choose)
    try:
        assert offered == [60]
        assert c._impl.params.heartbeat == 60
    finally:
        c.close()


def test_client_heartbeat_zero_disables_heartbeat(broker):
    c = pika_connect(broker, heartbeat=0)
    try:
        p = c._impl.params
        assert (p.channel_max, p.frame_max, p.heartbeat) == (2047, 131072, 0)
        round_trip(c)
    finally:
        c.close()


def test_client_smaller_values_are_used(broker):
    c = pika_connect(broker, heartbeat=10, frame_max=8192, channel_max=100)
    try:
        p = c._impl.params
        assert (p.channel_max, p.frame_max, p.heartbeat) == (100, 8192, 10)
        round_trip(c)
    finally:
        c.close()


def test_raw_tune_offer(broker):
    raw = RawClient(broker.host, broker.port)
    try:
        f = raw.handshake()
        assert raw.tune == (2047, 131072, 60)
        assert f.method == (10, 41)  # connection.open-ok
    finally:
        raw.close_socket()


def test_server_sends_heartbeats_when_negotiated(broker):
    raw = RawClient(broker.host, broker.port, timeout=3)
    try:
        assert raw.handshake(heartbeat=1).method == (10, 41)
        start = time.monotonic()
        f = raw.read_method(skip_heartbeats=False)
        assert f.type == 8 and f.channel == 0 and f.payload == b""
        assert time.monotonic() - start < 2.5
    finally:
        raw.close_socket()


def test_wrong_password_refused(broker):
    with pytest.raises((pexc.ProbableAuthenticationError, pexc.AuthenticationError)) as ei:
        pika_connect(broker, credentials=pika.PlainCredentials("guest", "wrong"))
    text = str(ei.value)
    # RabbitMQ: (403) 'ACCESS_REFUSED - Login was refused using authentication mechanism
    # PLAIN. For details see the broker logfile.'
    assert "403" in text
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in text
    fresh_health_check(broker)


def test_unknown_user_refused(broker):
    with pytest.raises((pexc.ProbableAuthenticationError, pexc.AuthenticationError)) as ei:
        pika_connect(broker, credentials=pika.PlainCredentials("no-such-user", "x"))
    assert "ACCESS_REFUSED" in str(ei.value)


def test_unknown_vhost_not_allowed(broker):
    with pytest.raises(pexc.ProbableAccessDeniedError) as ei:
        pika_connect(broker, virtual_host="no-such-vhost")
    text = str(ei.value)
    assert "530" in text
    assert "NOT_ALLOWED - vhost no-such-vhost not found" in text
    fresh_health_check(broker)


def test_raw_unknown_vhost_connection_close(broker):
    raw = RawClient(broker.host, broker.port)
    try:
        f = raw.handshake(vhost="no-such-vhost")
        assert f.method == (10, 50)
        assert f.close_reply() == (530, "NOT_ALLOWED - vhost no-such-vhost not found", 10, 40)
    finally:
        raw.close_socket()


def test_connection_close_from_client_releases_resources(broker, uniq):
    c = pika_connect(broker)
    c.channel().queue_declare(uniq, exclusive=True)
    c.close()
    fresh_health_check(broker)


# ----------------------------------------------------------------------------- channels

def test_open_many_channels(conn):
    chans = [conn.channel() for _ in range(50)]
    assert len({c.channel_number for c in chans}) == 50
    for c in chans[::7]:
        q = temp_queue(c)
        c.basic_publish("", q, b"x")
        assert pika_get(c, q)[2] == b"x"
    for c in chans:
        c.close()
    round_trip(conn)


def test_channel_close_and_reuse_number(conn):
    c1 = conn.channel(channel_number=7)
    c1.close()
    c2 = conn.channel(channel_number=7)
    q = temp_queue(c2)
    c2.basic_publish("", q, b"again")
    assert pika_get(c2, q)[2] == b"again"


def test_channel_flow_active_true(ch):
    assert ch.flow(True) is True


def test_channel_flow_active_false_is_not_implemented(broker, conn, ch):
    with pytest.raises(pexc.ConnectionClosedByBroker) as ei:
        ch.flow(False)
    assert (ei.value.reply_code, ei.value.reply_text) == (540, "NOT_IMPLEMENTED - active=false")
    fresh_health_check(broker)


def test_channel_error_closes_only_that_channel(conn, uniq):
    good = conn.channel()
    bad = conn.channel()
    q = temp_queue(good)
    with pytest.raises(pexc.ChannelClosedByBroker):
        bad.queue_declare(uniq + "-missing", passive=True)
    assert bad.is_closed and good.is_open and conn.is_open
    good.basic_publish("", q, b"still works")
    assert pika_get(good, q)[2] == b"still works"
    round_trip(conn)


def test_channel_number_above_channel_max_is_accepted(broker):
    # RabbitMQ 3.10 does not check the channel *number* against channel_max, only the
    # number of open channels.
    raw = RawClient(broker.host, broker.port)
    try:
        raw.handshake(channel_max=10)
        f = raw.open_channel(3000)
        assert (f.channel, f.method) == (3000, (20, 11))
    finally:
        raw.close_socket()


def test_opening_more_channels_than_channel_max_closes_connection(broker):
    raw = RawClient(broker.host, broker.port)
    try:
        raw.handshake(channel_max=3)
        for n in (1, 2, 3):
            assert raw.open_channel(n).method == (20, 11)
        f = raw.open_channel(4)
        assert (f.channel, f.method) == (0, (10, 50))
        assert f.close_reply() == (
            530, "NOT_ALLOWED - number of channels opened (3) has reached the "
                 "negotiated channel_max (3)", 0, 0)
    finally:
        raw.close_socket()
    fresh_health_check(broker)


def test_pika_channel_beyond_negotiated_channel_max(broker):
    c = pika_connect(broker, channel_max=2)
    try:
        c.channel()
        c.channel()
        # an explicit number bypasses pika's own allocation limit
        with pytest.raises(pexc.ConnectionClosedByBroker) as ei:
            c.channel(channel_number=3)
        assert (ei.value.reply_code, ei.value.reply_text) == (
            530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated "
                 "channel_max (2)")
    finally:
        close_quietly(c)
    fresh_health_check(broker)


# ----------------------------------------------------------------------------- exchanges

@pytest.mark.parametrize("etype", ["direct", "fanout", "topic", "headers"])
def test_exchange_declare_each_type(ch, uniq, janitor, etype):
    x = janitor.exchange(uniq)
    assert ch.exchange_declare(x, etype).method.NAME == "Exchange.DeclareOk"
    ch.exchange_declare(x, etype)  # equivalent redeclare
    ch.exchange_declare(x, etype, passive=True)
    # a passive declare checks existence only: a different type is not an error
    ch.exchange_declare(x, "fanout" if etype != "fanout" else "direct", passive=True)


def test_exchange_passive_missing(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq, passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % uniq)
    round_trip(conn)


def test_exchange_redeclare_different_type(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct")
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "fanout")
    channel_closed(ei, 406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' "
                            "in vhost '/': received 'fanout' but current is 'direct'" % x)
    round_trip(conn)


def test_exchange_redeclare_different_durable(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "topic", durable=False)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "topic", durable=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange "
                            "'%s' in vhost '/': received 'true' but current is 'false'" % x)
    round_trip(conn)


def test_exchange_declare_reserved_prefix(conn, ch):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare("amq.foo", "direct")
    channel_closed(ei, 403, "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved "
                            "prefix 'amq.*'")
    round_trip(conn)


def test_exchange_passive_reserved_missing_is_404(conn, ch):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare("amq.foo", passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no exchange 'amq.foo' in vhost '/'")


def test_redeclare_predeclared_exchange_equivalently(ch):
    # Non-passive redeclare of amq.direct works when equivalent (durable=True) ...
    ch.exchange_declare("amq.direct", "direct", durable=True)


def test_redeclare_predeclared_exchange_non_durable(conn, ch):
    # ... and fails the equivalence check (not the reserved-name check) otherwise.
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare("amq.direct", "direct")
    channel_closed(ei, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange "
                            "'amq.direct' in vhost '/': received 'false' but current is 'true'")
    round_trip(conn)


@pytest.mark.parametrize("name", ["amq.direct", "amq.fanout", "amq.topic", "amq.headers",
                                  "amq.match"])
def test_delete_predeclared_exchange_refused(conn, ch, name):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_delete(name)
    channel_closed(ei, 403, "ACCESS_REFUSED - deletion of system exchange '%s' in vhost '/' "
                            "not allowed" % name)
    conn.channel().exchange_declare(name, passive=True)


@pytest.mark.parametrize("op", ["declare", "passive", "delete"])
def test_default_exchange_operations_refused(conn, ch, op):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        if op == "declare":
            ch.exchange_declare("", "direct")
        elif op == "passive":
            # even a passive declare of the nameless exchange is refused
            ch.exchange_declare("", "direct", passive=True)
        else:
            ch.exchange_delete("")
    channel_closed(ei, 403, DEFAULT_EX_TEXT)
    round_trip(conn)


def test_delete_missing_exchange_succeeds(ch, uniq):
    assert ch.exchange_delete(uniq).method.NAME == "Exchange.DeleteOk"
    assert ch.is_open


def test_delete_exchange_if_unused_when_bound(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct")
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_delete(x, if_unused=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % x)
    conn.channel().exchange_declare(x, passive=True)


def test_delete_exchange_if_unused_when_unbound(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct")
    ch.exchange_delete(x, if_unused=True)
    with pytest.raises(pexc.ChannelClosedByBroker):
        ch.exchange_declare(x, passive=True)


def test_delete_exchange_if_unused_as_e2e_source(conn, ch, uniq, janitor):
    src = janitor.exchange(uniq + "-s")
    dst = janitor.exchange(uniq + "-d")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_delete(src, if_unused=True)
    assert ei.value.reply_code == 406


def test_exchange_delete_removes_bindings(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "fanout")
    q = temp_queue(ch)
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")
    ch.basic_publish(x, "", b"after")
    settle(ch.connection)
    assert message_count(ch, q) == 0


def test_unknown_exchange_type_is_connection_error(broker, conn, ch, uniq):
    # RabbitMQ closes the *connection* with 503 COMMAND_INVALID.
    with pytest.raises(pexc.ConnectionClosedByBroker) as ei:
        ch.exchange_declare(uniq, "no-such-type")
    assert ei.value.reply_code == 503
    assert ei.value.reply_text == "COMMAND_INVALID - unknown exchange type 'no-such-type'"
    assert conn.is_closed
    fresh_health_check(broker)


def test_unknown_exchange_type_passive_missing_is_404(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq, "no-such-type", passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % uniq)


def test_publish_to_internal_exchange_refused(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "fanout", internal=True)
    ch.basic_publish(x, "", b"x")
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    channel_closed(ei, 403, "ACCESS_REFUSED - cannot publish to internal exchange '%s' in "
                            "vhost '/'" % x)
    round_trip(conn)


def test_internal_exchange_reachable_through_e2e_binding(ch, uniq, janitor):
    src = janitor.exchange(uniq + "-s")
    internal = janitor.exchange(uniq + "-i")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(internal, "direct", internal=True)
    ch.exchange_bind(internal, src, "k")
    q = temp_queue(ch)
    ch.queue_bind(q, internal, "k")
    ch.basic_publish(src, "k", b"via-internal")
    assert pika_get(ch, q)[2] == b"via-internal"


def test_exchange_to_exchange_bind_and_unbind(ch, uniq, janitor):
    src = janitor.exchange(uniq + "-s")
    dst = janitor.exchange(uniq + "-d")
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "direct")
    ch.exchange_bind(dst, src, "a.*")
    q = temp_queue(ch)
    ch.queue_bind(q, dst, "a.b")
    ch.basic_publish(src, "a.b", b"1")
    ch.basic_publish(src, "a.c", b"no")  # passes src, not dst's binding
    ch.basic_publish(src, "x.b", b"no")  # stopped at src
    assert pika_get(ch, q)[2] == b"1"
    ch.exchange_unbind(dst, src, "a.*")
    ch.basic_publish(src, "a.b", b"2")
    settle(ch.connection)
    assert message_count(ch, q) == 0


def test_e2e_fanout_chain_delivers_once_per_queue(ch, uniq, janitor):
    a = janitor.exchange(uniq + "-a")
    b = janitor.exchange(uniq + "-b")
    ch.exchange_declare(a, "fanout")
    ch.exchange_declare(b, "fanout")
    ch.exchange_bind(b, a)
    q = temp_queue(ch)
    ch.queue_bind(q, a)
    ch.queue_bind(q, b)  # reachable twice: still one copy
    ch.basic_publish(a, "", b"once")
    assert pika_get(ch, q)[2] == b"once"
    settle(ch.connection)
    assert message_count(ch, q) == 0


@pytest.mark.parametrize("side", ["source", "destination"])
def test_e2e_bind_missing_exchange(conn, ch, uniq, side):
    missing = uniq + "-missing"
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        if side == "source":
            ch.exchange_bind("amq.fanout", missing)
        else:
            ch.exchange_bind(missing, "amq.fanout")
    channel_closed(ei, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % missing)
    round_trip(conn)


def test_e2e_unbind_missing_succeeds(ch, uniq):
    ch.exchange_unbind("amq.fanout", uniq + "-missing", "k")
    assert ch.is_open


def test_alternate_exchange_routes_unroutable(ch, uniq, janitor):
    ae = janitor.exchange(uniq + "-ae")
    x = janitor.exchange(uniq)
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    routed, spill = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(routed, x, "k")
    ch.queue_bind(spill, ae)
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish(x, "k", b"routed", mandatory=True)
    ch.basic_publish(x, "other", b"spilled", mandatory=True)
    assert pika_get(ch, routed)[2] == b"routed"
    assert pika_get(ch, spill)[2] == b"spilled"
    settle(ch.connection)
    assert returned == []  # routed by the AE: not returned
    assert message_count(ch, routed) == 0 and message_count(ch, spill) == 0


def test_alternate_exchange_missing_means_unroutable(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": uniq + "-nope"})
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m.reply_code, b)))
    ch.basic_publish(x, "k", b"lost", mandatory=True)
    collect_deliveries(ch.connection, returned, 1)
    assert returned == [(312, b"lost")]


@pytest.mark.parametrize("name,etype", [("amq.direct", "direct"), ("amq.fanout", "fanout"),
                                        ("amq.topic", "topic"), ("amq.headers", "headers"),
                                        ("amq.match", "headers")])
def test_predeclared_exchange_exists_and_routes(ch, name, etype):
    ch.exchange_declare(name, etype, passive=True)
    q = temp_queue(ch)
    if etype == "headers":
        ch.queue_bind(q, name, "", arguments={"x-match": "all", "k": q})
        props = pika.BasicProperties(headers={"k": q})
    else:
        ch.queue_bind(q, name, q if etype != "topic" else q.replace(".", "_") + ".#")
        props = None
    key = q if etype != "topic" else q.replace(".", "_") + ".x"
    ch.basic_publish(name, key, b"via " + name.encode(), properties=props)
    assert pika_get(ch, q)[2] == b"via " + name.encode()


# ----------------------------------------------------------------------------- routing

def test_direct_routing(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct")
    q1, q2 = temp_queue(ch), temp_queue(ch)
    ch.queue_bind(q1, x, "red")
    ch.queue_bind(q1, x, "green")
    ch.queue_bind(q2, x, "red")
    ch.basic_publish(x, "red", b"r")
    ch.basic_publish(x, "green", b"g")
    ch.basic_publish(x, "blue", b"b")
    ch.basic_publish(x, "RED", b"R")  # case sensitive
    assert sorted(drain_bodies(ch, q1, 2)) == [b"g", b"r"]
    assert drain_bodies(ch, q2, 1) == [b"r"]
    settle(ch.connection)
    assert message_count(ch, q1) == 0 and message_count(ch, q2) == 0


def test_direct_duplicate_binding_is_one_copy(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct")
    q = temp_queue(ch)
    ch.queue_bind(q, x, "k")
    ch.queue_bind(q, x, "k")
    ch.basic_publish(x, "k", b"one")
    assert drain_bodies(ch, q, 1) == [b"one"]
    settle(ch.connection)
    assert message_count(ch, q) == 0


def test_fanout_routing_ignores_key(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "fanout")
    qs = [temp_queue(ch) for _ in range(3)]
    for i, q in enumerate(qs):
        ch.queue_bind(q, x, "binding-key-%d" % i)
    ch.basic_publish(x, "whatever", b"all")
    for q in qs:
        assert pika_get(ch, q)[2] == b"all"


TOPIC_KEYS = ["", "a", "b", "x", "a.b", "a.x", "b.x", ".x", "a.b.c", "a.x.b", "a.x.y.b",
              "a..b", "a.b.b", ".", "a.", "ab", "a.b.x"]
TOPIC_CASES = {
    "#": TOPIC_KEYS,
    "a.#.b": ["a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"],
    "*.x": ["a.x", "b.x", ".x"],
    "a.*": ["a.b", "a.x", "a."],
    "a.#": ["a", "a.b", "a.x", "a.b.c", "a.x.b", "a.x.y.b", "a..b", "a.b.b", "a.", "a.b.x"],
    "#.b": ["b", "a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"],
    # the empty routing key has no words at all: '*' does not match it
    "*": ["a", "b", "x", "ab"],
    "a.*.b": ["a.x.b", "a..b", "a.b.b"],
    "": [""],
    "a..b": ["a..b"],
    "*.*": ["a.b", "a.x", "b.x", ".x", ".", "a."],
    "#.#": TOPIC_KEYS,
    "#.*": [k for k in TOPIC_KEYS if k != ""],
    "a": ["a"],
    "a.b": ["a.b"],
}


@pytest.mark.parametrize("pattern", list(TOPIC_CASES), ids=lambda p: "p<%s>" % p)
def test_topic_routing(ch, uniq, janitor, pattern):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "topic")
    q = temp_queue(ch)
    ch.queue_bind(q, x, pattern)
    for k in TOPIC_KEYS:
        ch.basic_publish(x, k, ("<%s>" % k).encode())
    want = [("<%s>" % k).encode() for k in TOPIC_CASES[pattern]]
    got = drain_bodies(ch, q, len(want))
    settle(ch.connection, 0.1)
    got += drain_bodies(ch, q, 100, timeout=0)
    assert got == want


def test_topic_overlapping_bindings_one_copy(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "topic")
    q = temp_queue(ch)
    for p in ("a.*", "#", "a.b", "*.b"):
        ch.queue_bind(q, x, p)
    ch.basic_publish(x, "a.b", b"one")
    assert drain_bodies(ch, q, 1) == [b"one"]
    settle(ch.connection)
    assert message_count(ch, q) == 0


HEADER_BINDINGS = {
    "all": {"x-match": "all", "a": 1, "b": "two"},
    "any": {"x-match": "any", "a": 1, "b": "two"},
    "default": {"a": 1, "b": "two"},  # x-match defaults to all
    "allx": {"x-match": "all-with-x", "a": 1, "x-foo": "bar"},
    "anyx": {"x-match": "any-with-x", "x-foo": "bar"},
    "all-ignores-x": {"x-match": "all", "a": 1, "x-foo": "bar"},
    "any-ignores-x": {"x-match": "any", "x-foo": "bar"},
    "empty": {},
    "any-empty": {"x-match": "any"},
    "void": {"x-match": "all", "v": None},
    "string-one": {"x-match": "all", "a": "1"},
    "bool": {"x-match": "all", "f": True},
}
HEADER_MESSAGES = [
    ("ab", {"a": 1, "b": "two"}),
    ("a", {"a": 1}),
    ("b", {"b": "two"}),
    ("a-wrong", {"a": 2, "b": "two"}),
    ("a-str", {"a": "1", "b": "two"}),
    ("xfoo", {"x-foo": "bar"}),
    ("a-xfoo", {"a": 1, "x-foo": "bar"}),
    ("none", None),
    ("empty", {}),
    ("extra", {"a": 1, "b": "two", "c": 3}),
    ("v", {"v": None}),
    ("f", {"f": True}),
    ("f-int", {"f": 1}),
]
ALL_HEADER_MESSAGES = [n for n, _ in HEADER_MESSAGES]
HEADER_EXPECTED = {
    "all": ["ab", "extra"],
    "any": ["ab", "a", "b", "a-wrong", "a-str", "a-xfoo", "extra"],
    "default": ["ab", "extra"],
    "allx": ["a-xfoo"],
    "anyx": ["xfoo", "a-xfoo"],
    # plain all/any skip x- keys in the binding: x-foo is not required ...
    "all-ignores-x": ["ab", "a", "a-xfoo", "extra"],
    # ... and a binding with only x- keys matches nothing under any
    "any-ignores-x": [],
    "empty": ALL_HEADER_MESSAGES,
    "any-empty": [],
    "void": ["v"],
    "string-one": ["a-str"],  # types matter: 1 != "1"
    "bool": ["f"],  # true != 1
}


@pytest.mark.parametrize("binding", list(HEADER_BINDINGS))
def test_headers_routing(ch, uniq, janitor, binding):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "headers")
    q = temp_queue(ch)
    ch.queue_bind(q, x, "ignored", arguments=HEADER_BINDINGS[binding])
    for name, headers in HEADER_MESSAGES:
        ch.basic_publish(x, "rk", name.encode(), properties=pika.BasicProperties(headers=headers))
    want = [n.encode() for n in ALL_HEADER_MESSAGES if n in HEADER_EXPECTED[binding]]
    got = drain_bodies(ch, q, len(want))
    settle(ch.connection, 0.1)
    got += drain_bodies(ch, q, 100, timeout=0)
    assert got == want


def test_headers_invalid_x_match(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "headers")
    q = temp_queue(ch)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, "", arguments={"x-match": "bogus"})
    channel_closed(ei, 406, 'PRECONDITION_FAILED - Invalid x-match field value <<"bogus">>; '
                            'expected all, any, all-with-x, or any-with-x')
    round_trip(conn)


def test_headers_unbind_with_arguments(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "headers")
    q = temp_queue(ch)
    args = {"x-match": "any", "k": "v"}
    ch.queue_bind(q, x, "", arguments=args)
    ch.queue_unbind(q, x, "", arguments=args)
    ch.basic_publish(x, "", b"x", properties=pika.BasicProperties(headers={"k": "v"}))
    settle(ch.connection)
    assert message_count(ch, q) == 0


def test_default_exchange_routes_by_queue_name(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    ch.basic_publish("", q, b"direct to queue")
    ch.basic_publish("", q + "-nope", b"dropped")
    assert pika_get(ch, q)[2] == b"direct to queue"
    settle(ch.connection)
    assert message_count(ch, q) == 0


@pytest.mark.parametrize("op", ["bind", "unbind"])
def test_binding_to_default_exchange_refused(conn, ch, op):
    q = temp_queue(ch)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        if op == "bind":
            ch.queue_bind(q, "", "other")
        else:
            ch.queue_unbind(q, "", q)
    channel_closed(ei, 403, DEFAULT_EX_TEXT)
    round_trip(conn)


# ----------------------------------------------------------------------------- queues

def test_server_named_queue(ch):
    ok = ch.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-")
    assert len(ok.queue) > len("amq.gen-")
    assert (ok.message_count, ok.consumer_count) == (0, 0)
    other = ch.queue_declare("", exclusive=True).method.queue
    assert other != ok.queue


def test_queue_passive_missing(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(uniq, passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % uniq)
    round_trip(conn)


def test_queue_passive_empty_name(conn, ch):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no queue '' in vhost '/'")


def test_long_reply_text_truncated_to_255_bytes(conn, ch):
    # RabbitMQ cuts reply texts at 252 bytes and appends "..." (a shortstr holds 255).
    name = "q" * 250
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(name, passive=True)
    text = ei.value.reply_text
    assert len(text.encode()) == 255
    assert text == ("NOT_FOUND - no queue '%s' in vhost '/'" % name)[:252] + "..."
    round_trip(conn)


def test_queue_declare_ok_counts(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 3)
    assert wait_message_count(ch, q, 3) == 3
    c2 = conn.channel()
    c2.basic_consume(q, lambda *a: None, consumer_tag="c-a")
    c2.basic_consume(q, lambda *a: None, consumer_tag="c-b")
    ok = ch.queue_declare(q, passive=True).method
    assert ok.consumer_count == 2
    ok = ch.queue_declare(q).method  # non-passive redeclare reports the same
    assert ok.consumer_count == 2 and ok.queue == q


def test_queue_declare_ok_message_count_excludes_unacked(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 3)
    wait_message_count(ch, q, 3)
    m, _, _ = ch.basic_get(q, auto_ack=False)
    assert m is not None
    assert message_count(ch, q) == 2


@pytest.mark.parametrize("first,second,arg,recv,cur", [
    (dict(durable=False), dict(durable=True), "durable", "true", "false"),
    (dict(durable=True), dict(durable=False), "durable", "false", "true"),
    (dict(auto_delete=False), dict(auto_delete=True), "auto_delete", "true", "false"),
    (dict(arguments={"x-max-length": 5}), dict(arguments={"x-max-length": 6}),
     "x-max-length", "6", "5"),
])
def test_queue_redeclare_inequivalent(conn, ch, uniq, janitor, first, second, arg, recv, cur):
    q = janitor.queue(uniq)
    ch.queue_declare(q, **first)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, **second)
    channel_closed(ei, 406, "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in "
                            "vhost '/': received '%s' but current is '%s'" % (arg, q, recv, cur))
    round_trip(conn)


def test_queue_redeclare_exclusive_mismatch_is_locked(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True)
    channel_closed(ei, 405, LOCKED_TEXT % q)
    round_trip(conn)


def test_queue_unknown_x_argument_ignored(ch, uniq, janitor):
    q = janitor.queue(uniq)
    assert ch.queue_declare(q, arguments={"x-no-such-arg": "v"}).method.queue == q


@pytest.mark.parametrize("arg,value,detail", [
    ("x-max-length", "abc", '"expected integer, got longstr"'),
    ("x-max-length", -1, "{value_negative,-1}"),
    ("x-message-ttl", "abc", '"expected integer, got longstr"'),
], ids=["max-length-str", "max-length-neg", "ttl-str"])
def test_queue_invalid_known_argument(conn, ch, uniq, janitor, arg, value, detail):
    q = janitor.queue(uniq)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={arg: value})
    channel_closed(ei, 406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost "
                            "'/': %s" % (arg, q, detail))
    round_trip(conn)


def test_queue_declare_reserved_prefix(conn, ch):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("amq.foo")
    channel_closed(ei, 403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix "
                            "'amq.*'")
    round_trip(conn)


@pytest.mark.parametrize("op", ["declare", "passive", "consume", "get", "purge", "delete",
                                "bind"])
def test_exclusive_queue_locked_for_other_connection(broker, conn, ch, uniq, op):
    q = uniq
    ch.queue_declare(q, exclusive=True)
    other = pika_connect(broker)
    try:
        och = other.channel()
        with pytest.raises(pexc.ChannelClosedByBroker) as ei:
            if op == "declare":
                och.queue_declare(q, exclusive=True)
            elif op == "passive":
                och.queue_declare(q, passive=True)
            elif op == "consume":
                och.basic_consume(q, lambda *a: None)
            elif op == "get":
                och.basic_get(q)
            elif op == "purge":
                och.queue_purge(q)
            elif op == "delete":
                och.queue_delete(q)
            else:
                och.queue_bind(q, "amq.fanout")
        channel_closed(ei, 405, LOCKED_TEXT % q)
        round_trip(other)
    finally:
        close_quietly(other)
    ch.queue_declare(q, passive=True)  # the owner still has it


def test_exclusive_queue_accepts_publish_from_other_connection(broker, ch, uniq):
    ch.queue_declare(uniq, exclusive=True)
    other = pika_connect(broker)
    try:
        other.channel().basic_publish("", uniq, b"from outside")
    finally:
        close_quietly(other)
    assert pika_get(ch, uniq)[2] == b"from outside"


def test_exclusive_queue_deleted_when_connection_closes(broker, ch, uniq):
    owner = pika_connect(broker)
    owner.channel().queue_declare(uniq, exclusive=True)
    owner.close()
    deadline = time.monotonic() + 2
    while True:
        probe = ch.connection.channel()
        try:
            probe.queue_declare(uniq, passive=True)
        except pexc.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline, "exclusive queue survived its connection"
        time.sleep(0.02)


def test_exclusive_queue_survives_channel_close(conn, uniq):
    c1 = conn.channel()
    c1.queue_declare(uniq, exclusive=True)
    c1.close()
    conn.channel().queue_declare(uniq, passive=True)


def test_auto_delete_queue_deleted_after_last_consumer_cancels(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, auto_delete=True)
    ch.queue_declare(q, passive=True)  # no consumer yet: still there
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    ch.basic_cancel(t2)
    deadline = time.monotonic() + 2
    while True:
        probe = conn.channel()
        try:
            probe.queue_declare(q, passive=True)
        except pexc.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_auto_delete_queue_deleted_when_consumer_channel_closes(conn, uniq, janitor):
    q = janitor.queue(uniq)
    c1 = conn.channel()
    c1.queue_declare(q, auto_delete=True)
    c1.basic_consume(q, lambda *a: None)
    c1.close()
    deadline = time.monotonic() + 2
    while True:
        probe = conn.channel()
        try:
            probe.queue_declare(q, passive=True)
        except pexc.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_queue_bind_and_unbind(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct")
    q = temp_queue(ch)
    assert ch.queue_bind(q, x, "k").method.NAME == "Queue.BindOk"
    ch.basic_publish(x, "k", b"bound")
    assert pika_get(ch, q)[2] == b"bound"
    assert ch.queue_unbind(q, x, "k").method.NAME == "Queue.UnbindOk"
    ch.basic_publish(x, "k", b"unbound")
    settle(ch.connection)
    assert message_count(ch, q) == 0


def test_queue_bind_missing_exchange(conn, ch, uniq):
    q = temp_queue(ch)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, uniq + "-x", "k")
    channel_closed(ei, 404, "NOT_FOUND - no exchange '%s-x' in vhost '/'" % uniq)
    round_trip(conn)


def test_queue_bind_missing_queue(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_bind(uniq, "amq.direct", "k")
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % uniq)
    round_trip(conn)


def test_queue_unbind_missing_things_succeeds(ch, uniq):
    # RabbitMQ 3.x: unbinding a missing queue, exchange or binding is a no-op.
    ch.queue_unbind(uniq, uniq + "-x", "k")
    q = temp_queue(ch)
    ch.queue_unbind(q, "amq.direct", "never-bound")
    assert ch.is_open


def test_queue_purge_returns_count(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 5)
    wait_message_count(ch, q, 5)
    assert ch.queue_purge(q).method.message_count == 5
    assert message_count(ch, q) == 0
    assert ch.queue_purge(q).method.message_count == 0


def test_queue_purge_keeps_unacked(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 3)
    wait_message_count(ch, q, 3)
    m, _, _ = ch.basic_get(q)
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_reject(m.delivery_tag, requeue=True)
    assert wait_message_count(ch, q, 1) == 1


def test_queue_purge_missing(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_purge(uniq)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % uniq)


def test_queue_delete_if_unused(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    conn.channel().basic_consume(q, lambda *a: None)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_delete(q, if_unused=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % q)
    conn.channel().queue_declare(q, passive=True)


def test_queue_delete_if_empty(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    wait_message_count(ch, q, 1)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_delete(q, if_empty=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q)
    assert message_count(conn.channel(), q) == 1


def test_queue_delete_if_unused_and_if_empty_ok_when_both_hold(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    assert ch.queue_delete(q, if_unused=True, if_empty=True).method.message_count == 0


def test_queue_delete_returns_message_count(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 4)
    wait_message_count(ch, q, 4)
    assert ch.queue_delete(q).method.message_count == 4
    with pytest.raises(pexc.ChannelClosedByBroker):
        ch.queue_declare(q, passive=True)


def test_queue_delete_missing_succeeds(ch, uniq):
    assert ch.queue_delete(uniq).method.message_count == 0
    assert ch.is_open


def test_queue_delete_removes_bindings(ch, uniq, janitor):
    x = janitor.exchange(uniq + "-x")
    q = janitor.queue(uniq)
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    ch.queue_declare(q)
    ch.basic_publish(x, "", b"x")
    settle(ch.connection)
    assert message_count(ch, q) == 0


# ----------------------------------------------------------------------------- basic

ALL_HEADERS = {
    "str": "hello",
    "unicode": "h\u00e9llo \u2603",
    "int": 42,
    "negative": -7,
    "big": 2 ** 40,
    "true": True,
    "false": False,
    "nested": {"inner": "v", "n": 1, "deeper": {"x": "y"}},
    "list": ["a", 1, True, {"k": "v"}, ["nested"]],
    "bytes": b"\x00\x01\xff",
    "void": None,
    "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "decimal": decimal.Decimal("1.25"),
    "empty-str": "",
    "empty-table": {},
    "empty-list": [],
}


def full_properties():
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers=dict(ALL_HEADERS),
        delivery_mode=2,
        priority=7,
        correlation_id="corr-1",
        reply_to="reply-queue",
        expiration="60000",
        message_id="msg-1",
        timestamp=1700000000,
        type="my.type",
        user_id="guest",
        app_id="warren-tests",
        cluster_id="cluster-1",
    )


def assert_full_properties(p):
    assert p.content_type == "application/json"
    assert p.content_encoding == "gzip"
    assert p.headers == ALL_HEADERS
    assert p.delivery_mode == 2
    assert p.priority == 7
    assert p.correlation_id == "corr-1"
    assert p.reply_to == "reply-queue"
    assert p.expiration == "60000"
    assert p.message_id == "msg-1"
    assert p.timestamp == 1700000000
    assert p.type == "my.type"
    assert p.user_id == "guest"
    assert p.app_id == "warren-tests"
    assert p.cluster_id == "cluster-1"


def test_publish_get_all_properties(ch):
    q = temp_queue(ch)
    ch.basic_publish("", q, b"payload", properties=full_properties())
    m, p, body = pika_get(ch, q)
    assert body == b"payload"
    assert_full_properties(p)
    assert (m.exchange, m.routing_key, m.redelivered, m.message_count) == ("", q, False, 0)


def test_consume_delivers_all_properties(conn, ch):
    q = temp_queue(ch)
    ch.basic_publish("", q, b"payload", properties=full_properties())
    got = []
    consume_into(ch, q, got, auto_ack=True)
    collect_deliveries(conn, got, 1)
    m, p, body = got[0]
    assert body == b"payload"
    assert_full_properties(p)
    assert (m.exchange, m.routing_key, m.redelivered) == ("", q, False)


def test_absent_properties_stay_absent(ch):
    q = temp_queue(ch)
    ch.basic_publish("", q, b"bare")
    _m, p, _b = pika_get(ch, q)
    for name in ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                 "type", "user_id", "app_id", "cluster_id"):
        assert getattr(p, name) is None, name


def test_user_id_mismatch_refused(conn, ch):
    ch.basic_publish("", "nowhere", b"x", properties=pika.BasicProperties(user_id="bob"))
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - user_id property set to 'bob' but "
                            "authenticated user was 'guest'")
    round_trip(conn)


def test_get_empty(ch):
    q = temp_queue(ch)
    assert ch.basic_get(q) == (None, None, None)


def test_get_reports_remaining_count_and_tags(ch):
    q = temp_queue(ch)
    publish_n(ch, "", q, 3)
    wait_message_count(ch, q, 3)
    tags, counts = [], []
    for _ in range(3):
        m, _, _ = ch.basic_get(q, auto_ack=False)
        tags.append(m.delivery_tag)
        counts.append(m.message_count)
    assert tags == [1, 2, 3]
    assert counts == [2, 1, 0]


def test_get_missing_queue(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.basic_get(uniq)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % uniq)
    round_trip(conn)


def test_fifo_order(ch):
    q = temp_queue(ch)
    bodies = publish_n(ch, "", q, 50)
    assert drain_bodies(ch, q, 50) == bodies


FRAME_MAX = 131072
BODY_FRAME = FRAME_MAX - 8  # frame header (7) + frame end (1)


@pytest.mark.parametrize("size", [
    0, 1, BODY_FRAME - 1, BODY_FRAME, BODY_FRAME + 1, FRAME_MAX, 2 * BODY_FRAME,
    2 * BODY_FRAME + 1, 1024 * 1024, 5 * 1024 * 1024 + 3])
def test_body_sizes_default_frame_max(conn, ch, size):
    q = temp_queue(ch)
    body = bytes((i * 7 + size) % 251 for i in range(size))
    ch.basic_publish("", q, body)
    m, _, got = pika_get(ch, q)
    assert m is not None and len(got) == size and got == body
    # and through a consumer
    ch.basic_publish("", q, body)
    store = []
    consume_into(ch, q, store, auto_ack=True)
    collect_deliveries(conn, store, 1, timeout=5)
    assert store[0][2] == body


@pytest.mark.parametrize("size", [4087, 4088, 4089, 8176, 100000])
def test_body_sizes_small_frame_max(broker, size):
    c = pika_connect(broker, frame_max=4096)
    try:
        ch = c.channel()
        q = temp_queue(ch)
        body = bytes(i % 256 for i in range(size))
        ch.basic_publish("", q, body, properties=pika.BasicProperties(headers={"h": "x" * 100}))
        m, p, got = pika_get(ch, q)
        assert got == body and p.headers == {"h": "x" * 100}
    finally:
        c.close()


def test_raw_body_frames_respect_negotiated_frame_max(broker):
    raw = RawClient(broker.host, broker.port)
    try:
        raw.handshake(frame_max=4096)
        assert raw.open_channel(1).method == (20, 11)
        q = raw.declare_temp_queue(1)
        body = bytes(i % 253 for i in range(10000))
        raw.publish(1, "", q, body, frame_max=4096)
        raw.basic_get(1, q)
        f = raw.read_method()
        assert f.method == (60, 71)  # get-ok
        h = raw.read_method()
        assert h.type == 2 and struct.unpack(">HHQ", h.payload[:12]) == (60, 0, 10000)
        got = b""
        sizes = []
        while len(got) < 10000:
            f = raw.read_method()
            assert f.type == 3
            sizes.append(len(f.payload))
            got += f.payload
        assert got == body
        assert sizes == [4088, 4088, 1824]  # full frames of frame_max - 8
    finally:
        raw.close_socket()


# Field-table value types RabbitMQ 3.10 accepts in headers ('L' too, an unsigned 64-bit
# int that py-amqp sends for large ints); property bytes come back verbatim.
FIELD_VALUES = {
    "t": b"\x01", "b": b"\xff", "B": b"\xff", "s": b"\xff\xfe", "u": b"\xff\xfe",
    "I": b"\xff\xff\xff\xfe", "i": b"\xff\xff\xff\xfe", "l": b"\xff" * 8, "L": b"\xff" * 8,
    "f": struct.pack(">f", 1.5), "d": struct.pack(">d", 2.5), "D": b"\x02\x00\x00\x01\x00",
    "S": b"\x00\x00\x00\x02hi", "x": b"\x00\x00\x00\x02\x00\xff",
    "A": b"\x00\x00\x00\x04t\x01b\x02", "T": b"\x00" * 7 + b"\x05",
    "F": b"\x00\x00\x00\x03\x01zV", "V": b"",
}


def _headers_props(field_type, value):
    table = b"\x01k" + field_type.encode() + value
    return struct.pack(">I", len(table)) + table


@pytest.mark.parametrize("field_type", list(FIELD_VALUES), ids=lambda t: "type-" + t)
def test_raw_header_field_type_passthrough(broker, field_type):
    raw = RawClient(broker.host, broker.port)
    try:
        raw.handshake()
        raw.open_channel(1)
        q = raw.declare_temp_queue(1)
        props = _headers_props(field_type, FIELD_VALUES[field_type])
        raw.publish(1, "", q, b"z", flags=0x2000, props=props)
        raw.basic_get(1, q)
        assert raw.read_method().method == (60, 71)
        h = raw.read_method()
        assert h.type == 2
        assert h.payload[12:] == struct.pack(">H", 0x2000) + props
        assert raw.read_method().payload == b"z"
    finally:
        raw.close_socket()


@pytest.mark.parametrize("field_type", ["U", "Z"])
def test_raw_unknown_header_field_type_closes_connection(broker, field_type):
    # RabbitMQ decodes the headers of every publish; an unknown type (including pika's
    # 'U') makes it close the connection with 541 INTERNAL_ERROR, class/method 0/0.
    raw = RawClient(broker.host, broker.port)
    try:
        raw.handshake()
        raw.open_channel(1)
        q = raw.declare_temp_queue(1)
        raw.publish(1, "", q, b"z", flags=0x2000, props=_headers_props(field_type, b"\x00\x01"))
        raw.basic_get(1, q)
        f = raw.read_method()
        assert (f.channel, f.method) == (0, (10, 50))
        assert f.close_reply() == (541, "INTERNAL_ERROR", 0, 0)
    finally:
        raw.close_socket()
    fresh_health_check(broker)


def test_consume_explicit_tag_in_deliveries(conn, ch):
    q = temp_queue(ch)
    got = []
    tag = consume_into(ch, q, got, auto_ack=True, consumer_tag="my-tag")
    assert tag == "my-tag"
    ch.basic_publish("", q, b"x")
    collect_deliveries(conn, got, 1)
    assert got[0][0].consumer_tag == "my-tag"
    assert got[0][0].delivery_tag == 1


def test_consume_missing_queue(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.basic_consume(uniq, lambda *a: None)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % uniq)
    round_trip(conn)


def test_same_consumer_tag_on_different_channels_allowed(conn, ch):
    q = temp_queue(ch)
    ch.basic_consume(q, lambda *a: None, consumer_tag="shared")
    conn.channel().basic_consume(q, lambda *a: None, consumer_tag="shared")
    assert ch.queue_declare(q, passive=True).method.consumer_count == 2


@pytest.mark.parametrize("exclusive_first", [True, False])
def test_exclusive_consumer_conflict(conn, ch, uniq, janitor, exclusive_first):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None, exclusive=exclusive_first)
    other = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        other.basic_consume(q, lambda *a: None, exclusive=not exclusive_first)
    channel_closed(ei, 403, "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)
    round_trip(conn)


def test_exclusive_consumer_gets_everything(conn, ch):
    q = temp_queue(ch)
    got = []
    consume_into(ch, q, got, auto_ack=True, exclusive=True)
    bodies = publish_n(ch, "", q, 5)
    collect_deliveries(conn, got, 5)
    assert [b for _, _, b in got] == bodies


def test_no_ack_consumer_messages_not_requeued(conn, uniq, janitor):
    q = janitor.queue(uniq)
    c1 = conn.channel()
    c1.queue_declare(q)
    got = []
    consume_into(c1, q, got, auto_ack=True)
    publish_n(c1, "", q, 3)
    collect_deliveries(conn, got, 3)
    c1.close()
    assert message_count(conn.channel(), q) == 0


def test_cancel_stops_deliveries(conn, ch):
    q = temp_queue(ch)
    got = []
    tag = consume_into(ch, q, got, auto_ack=True)
    ch.basic_publish("", q, b"1")
    collect_deliveries(conn, got, 1)
    ch.basic_cancel(tag)
    ch.basic_publish("", q, b"2")
    settle(conn)
    assert [b for _, _, b in got] == [b"1"]
    assert wait_message_count(ch, q, 1) == 1


def test_consumer_cancel_notification_on_queue_delete(conn, ch, uniq):
    q = uniq
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method))
    tag = ch.basic_consume(q, lambda *a: None)
    conn.channel().queue_delete(q)
    collect_deliveries(conn, cancelled, 1)
    assert len(cancelled) == 1
    assert cancelled[0].NAME == "Basic.Cancel" and cancelled[0].consumer_tag == tag
    assert ch.is_open
    round_trip(conn)


def test_round_robin_between_two_consumers(conn, ch):
    q = temp_queue(ch)
    a, b = [], []
    consume_into(ch, q, a, auto_ack=True, consumer_tag="a")
    consume_into(ch, q, b, auto_ack=True, consumer_tag="b")
    bodies = publish_n(ch, "", q, 10)
    collect_deliveries(conn, a, 5)
    collect_deliveries(conn, b, 5)
    settle(conn, 0.05)
    assert [x for _, _, x in a] == bodies[0::2]
    assert [x for _, _, x in b] == bodies[1::2]


def test_qos_prefetch_per_consumer(conn, ch):
    q = temp_queue(ch)
    ch.basic_qos(prefetch_count=2, global_qos=False)
    a, b = [], []
    consume_into(ch, q, a, consumer_tag="a")
    consume_into(ch, q, b, consumer_tag="b")
    publish_n(ch, "", q, 10)
    collect_deliveries(conn, a, 2)
    collect_deliveries(conn, b, 2)
    settle(conn)
    assert (len(a), len(b)) == (2, 2)  # each consumer has its own limit
    assert message_count(conn.channel(), q) == 6
    ch.basic_ack(a[0][0].delivery_tag)
    collect_deliveries(conn, a, 3)
    settle(conn, 0.1)
    assert (len(a), len(b)) == (3, 2)


def test_qos_prefetch_global_per_channel(conn, ch):
    q = temp_queue(ch)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    a, b = [], []
    consume_into(ch, q, a, consumer_tag="a")
    consume_into(ch, q, b, consumer_tag="b")
    publish_n(ch, "", q, 10)
    deadline = time.monotonic() + 2
    while len(a) + len(b) < 3 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    settle(conn)
    assert len(a) + len(b) == 3  # shared by the channel's consumers
    assert message_count(conn.channel(), q) == 7
    last = max(m.delivery_tag for m, _, _ in a + b)
    assert last == 3
    ch.basic_ack(last, multiple=True)
    deadline = time.monotonic() + 2
    while len(a) + len(b) < 6 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    settle(conn)
    assert len(a) + len(b) == 6


def test_qos_applies_to_consumers_created_after(conn, ch):
    q = temp_queue(ch)
    got = []
    consume_into(ch, q, got, consumer_tag="before")  # unlimited
    ch.basic_qos(prefetch_count=1)
    publish_n(ch, "", q, 5)
    collect_deliveries(conn, got, 5)
    assert len(got) == 5


def test_qos_prefetch_limits_after_get_unaffected(ch):
    # basic.get ignores prefetch limits
    q = temp_queue(ch)
    ch.basic_qos(prefetch_count=1, global_qos=True)
    publish_n(ch, "", q, 3)
    wait_message_count(ch, q, 3)
    tags = [ch.basic_get(q)[0] for _ in range(3)]
    assert all(t is not None for t in tags)


def test_qos_prefetch_size_not_implemented(broker, conn, ch):
    with pytest.raises(pexc.ConnectionClosedByBroker) as ei:
        ch.basic_qos(prefetch_size=10)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)")
    fresh_health_check(broker)


def test_ack_single_and_multiple(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 5)
    wait_message_count(ch, q, 5)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(5)]
    assert tags == [1, 2, 3, 4, 5]
    ch.basic_ack(2)
    ch.basic_ack(4, multiple=True)  # acks 1, 3, 4
    ch.close()
    c2 = ch.connection.channel()
    assert wait_message_count(c2, q, 1) == 1
    m, _, body = c2.basic_get(q)
    assert body == b"m4" and m.redelivered


def test_ack_zero_multiple_acks_everything(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 3)
    wait_message_count(ch, q, 3)
    for _ in range(3):
        ch.basic_get(q)
    ch.basic_ack(0, multiple=True)
    ch.close()
    assert message_count(ch.connection.channel(), q) == 0


def test_nack_requeue_returns_to_original_position(ch):
    q = temp_queue(ch)
    publish_n(ch, "", q, 5)
    wait_message_count(ch, q, 5)
    m0 = ch.basic_get(q)[0]
    m1 = ch.basic_get(q)[0]
    ch.basic_nack(m1.delivery_tag, requeue=True)
    ch.basic_nack(m0.delivery_tag, requeue=True)
    got = []
    for _ in range(5):
        m, _, body = ch.basic_get(q, auto_ack=True)
        got.append((body, m.redelivered))
    assert got == [(b"m0", True), (b"m1", True), (b"m2", False), (b"m3", False),
                   (b"m4", False)]


def test_nack_multiple_requeue_preserves_order(conn, ch):
    q = temp_queue(ch)
    publish_n(ch, "", q, 4)
    got = []
    consume_into(ch, q, got)
    collect_deliveries(conn, got, 4)
    ch.basic_cancel(got[0][0].consumer_tag)
    ch.basic_nack(got[-1][0].delivery_tag, multiple=True, requeue=True)
    assert drain_bodies(ch, q, 4) == [b"m0", b"m1", b"m2", b"m3"]


def test_nack_without_requeue_drops(ch):
    q = temp_queue(ch)
    publish_n(ch, "", q, 2)
    wait_message_count(ch, q, 2)
    m = ch.basic_get(q)[0]
    ch.basic_nack(m.delivery_tag, requeue=False)
    assert drain_bodies(ch, q, 1) == [b"m1"]
    settle(ch.connection)
    assert message_count(ch, q) == 0


def test_reject_requeue_false_drops(ch):
    q = temp_queue(ch)
    ch.basic_publish("", q, b"drop me")
    m = pika_get(ch, q, auto_ack=False)[0]
    ch.basic_reject(m.delivery_tag, requeue=False)
    settle(ch.connection)
    assert message_count(ch, q) == 0


def test_reject_requeue_true_redelivers(ch):
    q = temp_queue(ch)
    ch.basic_publish("", q, b"again")
    m = pika_get(ch, q, auto_ack=False)[0]
    assert not m.redelivered
    ch.basic_reject(m.delivery_tag, requeue=True)
    m2, _, body = pika_get(ch, q)
    assert body == b"again" and m2.redelivered and m2.delivery_tag == 2


@pytest.mark.parametrize("op", ["ack", "nack", "reject"])
def test_unknown_delivery_tag(conn, ch, op):
    getattr(ch, "basic_" + op)(99)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - unknown delivery tag 99")
    round_trip(conn)


def test_double_ack(conn, ch):
    q = temp_queue(ch)
    ch.basic_publish("", q, b"x")
    m = pika_get(ch, q, auto_ack=False)[0]
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - unknown delivery tag %d" % m.delivery_tag)
    round_trip(conn)


def test_ack_of_auto_acked_get_is_unknown(conn, ch):
    q = temp_queue(ch)
    ch.basic_publish("", q, b"x")
    m = pika_get(ch, q, auto_ack=True)[0]
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - unknown delivery tag 1")


def test_ack_zero_without_multiple_is_unknown(conn, ch):
    ch.basic_ack(0)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - unknown delivery tag 0")


def test_ack_zero_multiple_with_nothing_outstanding_is_ok(ch):
    ch.basic_ack(0, multiple=True)
    ch.basic_nack(0, multiple=True)
    temp_queue(ch)
    assert ch.is_open


def test_recover_requeue_redelivers(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 2)
    wait_message_count(ch, q, 2)
    ch.basic_get(q)
    ch.basic_get(q)
    assert message_count(ch, q) == 0
    ch.basic_recover(requeue=True)
    assert wait_message_count(ch, q, 2) == 2
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m0" and m.redelivered


def test_recover_redelivers_to_consumer(conn, ch):
    q = temp_queue(ch)
    got = []
    consume_into(ch, q, got)
    ch.basic_publish("", q, b"r")
    collect_deliveries(conn, got, 1)
    ch.basic_recover(requeue=True)
    collect_deliveries(conn, got, 2)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"r", False), (b"r", True)]


def test_recover_without_requeue_not_implemented(broker, conn, ch):
    with pytest.raises(pexc.ConnectionClosedByBroker) as ei:
        ch.basic_recover(requeue=False)
    assert (ei.value.reply_code, ei.value.reply_text) == (540, "NOT_IMPLEMENTED - requeue=false")
    fresh_health_check(broker)


def test_unacked_requeued_when_channel_closes(conn, uniq, janitor):
    q = janitor.queue(uniq)
    c1 = conn.channel()
    c1.queue_declare(q)
    publish_n(c1, "", q, 3)
    got = []
    consume_into(c1, q, got)
    collect_deliveries(conn, got, 3)
    c1.close()
    c2 = conn.channel()
    assert wait_message_count(c2, q, 3) == 3
    out = [c2.basic_get(q, auto_ack=True) for _ in range(3)]
    assert [(b, m.redelivered) for m, _, b in out] == [(b"m0", True), (b"m1", True),
                                                        (b"m2", True)]


def test_unacked_requeued_when_connection_closes(broker, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 3)
    wait_message_count(ch, q, 3)
    other = pika_connect(broker)
    och = other.channel()
    och.basic_get(q)
    och.basic_get(q)
    assert message_count(ch, q) == 1
    other.close()
    assert wait_message_count(ch, q, 3) == 3
    out = drain_bodies(ch, q, 3)
    assert out == [b"m0", b"m1", b"m2"]


def test_mandatory_unroutable_returned(ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct")
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    props = pika.BasicProperties(message_id="r1", headers={"k": "v"})
    ch.basic_publish(x, "nowhere", b"back", properties=props, mandatory=True)
    collect_deliveries(ch.connection, returned, 1)
    m, p, body = returned[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (312, "NO_ROUTE", x,
                                                                       "nowhere")
    assert body == b"back" and p.message_id == "r1" and p.headers == {"k": "v"}
    assert ch.is_open
    round_trip(ch.connection)


def test_mandatory_to_default_exchange_missing_queue_returned(ch, uniq):
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m.reply_code, m.exchange,
                                                                  m.routing_key, b)))
    ch.basic_publish("", uniq, b"x", mandatory=True)
    collect_deliveries(ch.connection, returned, 1)
    assert returned == [(312, "", uniq, b"x")]


def test_mandatory_routable_not_returned(ch):
    q = temp_queue(ch)
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish("", q, b"ok", mandatory=True)
    assert pika_get(ch, q)[2] == b"ok"
    settle(ch.connection)
    assert returned == []


def test_non_mandatory_unroutable_silently_dropped(ch):
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish("amq.direct", "nobody-listens-here", b"x")
    settle(ch.connection)
    assert returned == [] and ch.is_open


def test_publish_to_missing_exchange(conn, ch, uniq):
    ch.basic_publish(uniq, "k", b"x")
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    channel_closed(ei, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % uniq)
    round_trip(conn)


def test_deliver_fields(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "topic")
    q = temp_queue(ch)
    ch.queue_bind(q, x, "a.#")
    got = []
    consume_into(ch, q, got, consumer_tag="t1")
    ch.basic_publish(x, "a.b.c", b"1")
    ch.basic_publish(x, "a.z", b"2")
    collect_deliveries(conn, got, 2)
    assert [(m.consumer_tag, m.delivery_tag, m.redelivered, m.exchange, m.routing_key)
            for m, _, _ in got] == [("t1", 1, False, x, "a.b.c"), ("t1", 2, False, x, "a.z")]


def test_get_and_consume_share_delivery_tag_sequence(conn, ch):
    q = temp_queue(ch)
    publish_n(ch, "", q, 2)
    wait_message_count(ch, q, 2)
    m = ch.basic_get(q)[0]
    got = []
    consume_into(ch, q, got)
    collect_deliveries(conn, got, 1)
    assert (m.delivery_tag, got[0][0].delivery_tag) == (1, 2)


# ----------------------------------------------------------------------------- confirms

def test_confirm_mode_publish_acked(ch):
    ch.confirm_delivery()
    q = temp_queue(ch)
    for i in range(5):
        ch.basic_publish("", q, b"c%d" % i)  # raises on nack
    assert message_count(ch, q) == 5


def test_confirm_tags_one_to_n(broker):
    c = pika_connect(broker)
    try:
        ch = c.channel()
        q = temp_queue(ch)
        acks = []
        impl = ch._impl
        selected = []
        impl.confirm_delivery(
            ack_nack_callback=lambda frame: acks.append(
                (frame.method.NAME, frame.method.delivery_tag, frame.method.multiple)),
            callback=lambda frame: selected.append(frame))
        collect_deliveries(c, selected, 1)
        assert selected
        n = 50
        for i in range(n):
            impl.basic_publish("", q, b"%d" % i)
        covered = set()
        deadline = time.monotonic() + 3
        while len(covered) < n and time.monotonic() < deadline:
            c.process_data_events(time_limit=0.05)
            covered = set()
            for name, tag, multiple in acks:
                assert name == "Basic.Ack"
                covered |= set(range(1, tag + 1)) if multiple else {tag}
        assert covered == set(range(1, n + 1))
        tags = [t for _, t, _ in acks]
        assert tags == sorted(tags) and len(set(tags)) == len(tags)
    finally:
        close_quietly(c)


def test_confirm_publish_to_missing_exchange_closes_channel(conn, ch, uniq):
    ch.confirm_delivery()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.basic_publish(uniq, "k", b"x")
    channel_closed(ei, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % uniq)
    round_trip(conn)


def test_confirm_unroutable_mandatory_returned_before_ack(ch):
    ch.confirm_delivery()
    with pytest.raises(pexc.UnroutableError) as ei:
        ch.basic_publish("amq.direct", "no-route-here", b"r", mandatory=True)
    msgs = ei.value.messages
    assert len(msgs) == 1
    assert msgs[0].method.reply_code == 312 and msgs[0].body == b"r"
    assert ch.is_open


def test_confirm_unroutable_non_mandatory_acked(ch):
    ch.confirm_delivery()
    ch.basic_publish("amq.direct", "no-route-here", b"r")  # acked, no exception
    assert ch.is_open


def test_confirm_select_twice_ok(ch):
    ch.confirm_delivery()
    got = []
    ch._impl.confirm_delivery(ack_nack_callback=lambda f: None,
                              callback=lambda f: got.append(f))
    collect_deliveries(ch.connection, got, 1)
    assert got and got[0].method.NAME == "Confirm.SelectOk"


# ----------------------------------------------------------------------------- transactions

def test_tx_publish_invisible_until_commit(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    assert ch.tx_select().method.NAME == "Tx.SelectOk"
    publish_n(ch, "", q, 3)
    observer = conn.channel()
    settle(conn)
    assert message_count(observer, q) == 0
    assert ch.tx_commit().method.NAME == "Tx.CommitOk"
    assert wait_message_count(observer, q, 3) == 3
    assert drain_bodies(observer, q, 3) == [b"m0", b"m1", b"m2"]


def test_tx_rollback_discards_publishes(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    ch.tx_select()
    publish_n(ch, "", q, 3)
    assert ch.tx_rollback().method.NAME == "Tx.RollbackOk"
    ch.basic_publish("", q, b"after")
    ch.tx_commit()
    observer = conn.channel()
    assert drain_bodies(observer, q, 1) == [b"after"]
    settle(conn)
    assert message_count(observer, q) == 0


def test_tx_ack_applied_on_commit(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 2)
    wait_message_count(ch, q, 2)
    ch.tx_select()
    m = ch.basic_get(q)[0]
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    ch.close()
    c2 = conn.channel()
    assert wait_message_count(c2, q, 1) == 1
    assert c2.basic_get(q, auto_ack=True)[2] == b"m1"


def test_tx_single_then_multiple_ack_of_same_tag_commits(conn, ch, uniq, janitor):
    """Within one transaction, ack(t) then ack(t, multiple) is valid when sent (t is still
    unacked until the commit) and the commit applies both without an error."""
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    publish_n(ch, "", q, 3)
    wait_message_count(ch, q, 3)
    ch.tx_select()
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(2)]
    ch.basic_ack(tags[1])
    ch.basic_ack(tags[1], multiple=True)
    ch.tx_commit()
    assert ch.is_open
    ch.close()
    c2 = conn.channel()
    assert wait_message_count(c2, q, 1) == 1
    assert c2.basic_get(q, auto_ack=True)[2] == b"m2"


def test_tx_ack_undone_on_rollback(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    ch.basic_publish("", q, b"keep")
    wait_message_count(ch, q, 1)
    ch.tx_select()
    m = ch.basic_get(q)[0]
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    # the message is unacked again: closing the channel requeues it
    ch.close()
    c2 = conn.channel()
    assert wait_message_count(c2, q, 1) == 1
    m2, _, body = c2.basic_get(q, auto_ack=True)
    assert body == b"keep" and m2.redelivered


def test_tx_ack_after_rollback_can_be_retried(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    wait_message_count(ch, q, 1)
    ch.tx_select()
    m = ch.basic_get(q)[0]
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert message_count(conn.channel(), q) == 0


def test_tx_reject_applied_on_commit(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    wait_message_count(ch, q, 1)
    ch.tx_select()
    m = ch.basic_get(q)[0]
    ch.basic_reject(m.delivery_tag, requeue=True)
    settle(conn)
    assert message_count(conn.channel(), q) == 0  # not requeued yet
    ch.tx_commit()
    assert wait_message_count(conn.channel(), q, 1) == 1


def test_tx_commit_repeatedly(ch):
    q = temp_queue(ch)
    ch.tx_select()
    ch.tx_select()  # idempotent
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
        ch.tx_commit()
    ch.tx_commit()  # empty commit
    assert drain_bodies(ch, q, 3) == [b"0", b"1", b"2"]


@pytest.mark.parametrize("op", ["commit", "rollback"])
def test_tx_without_select(conn, ch, op):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        getattr(ch, "tx_" + op)()
    channel_closed(ei, 406, "PRECONDITION_FAILED - channel is not transactional")
    round_trip(conn)


def test_confirm_on_tx_channel(conn, ch):
    ch.tx_select()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.confirm_delivery()
    channel_closed(ei, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
    round_trip(conn)


def test_tx_on_confirm_channel(conn, ch):
    ch.confirm_delivery()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.tx_select()
    channel_closed(ei, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")
    round_trip(conn)


# ----------------------------------------------------------------------------- robustness

def test_many_channel_errors_then_healthy(conn, uniq):
    for i in range(10):
        c = conn.channel()
        with pytest.raises(pexc.ChannelClosedByBroker):
            c.queue_declare("%s-%d" % (uniq, i), passive=True)
    round_trip(conn)


def test_concurrent_connections_publish_and_consume(broker, uniq, janitor):
    q = janitor.queue(uniq)
    setup = pika_connect(broker)
    setup.channel().queue_declare(q)
    errors = []

    def producer(k):
        try:
            c = pika_connect(broker)
            chan = c.channel()
            for i in range(20):
                chan.basic_publish("", q, b"%d-%d" % (k, i))
            c.close()
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not errors
    ch = setup.channel()
    bodies = drain_bodies(ch, q, 80)
    assert len(bodies) == 80
    for k in range(4):
        mine = [b for b in bodies if b.startswith(b"%d-" % k)]
        assert mine == [b"%d-%d" % (k, i) for i in range(20)]  # per-publisher order
    setup.close()
