"""Core AMQP 0-9-1 behaviour through py-amqp (`amqp`, the transport under Celery/kombu).

py-amqp exposes what pika hides: the class and method ids in a close, broker-generated
consumer tags, `immediate=True`, duplicate consumer tags, cancel of unknown tags,
float header values. Covers: handshake and tuning, auth and vhost failures, reply codes
and ids of channel and connection errors, header and property round trips, large
bodies, consumers and cancel notifications, returns, confirms and transactions.
"""
import datetime
import decimal
import socket
import time

import amqp
import amqp.exceptions as aexc
import pytest

from helpers import amqp_connect, amqp_round_trip, fresh_health_check, reply_text

LOCKED_TEXT = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in "
               "vhost '/'. It could be originally declared on another connection or the "
               "exclusive property value does not match that of the original declaration.")


@pytest.fixture
def conn(broker):
    c = amqp_connect(broker)
    yield c
    try:
        c.close()
    except Exception:
        pass


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def janitor(broker):
    names = {"queues": [], "exchanges": []}

    class J:
        def queue(self, n):
            names["queues"].append(n)
            return n

        def exchange(self, n):
            names["exchanges"].append(n)
            return n

    yield J()
    c = amqp_connect(broker)
    try:
        cc = c.channel()
        for q in names["queues"]:
            cc.queue_delete(q)
        for e in names["exchanges"]:
            cc.exchange_delete(e)
    finally:
        c.close()


def check_error(exc, cls, code, text, method_sig):
    assert isinstance(exc, cls), repr(exc)
    assert exc.reply_code == code, repr(exc)
    assert exc.reply_text == reply_text(text), repr(exc)
    assert tuple(exc.method_sig) == method_sig, repr(exc)


def basic_nack(ch, delivery_tag, multiple=False, requeue=True):
    """py-amqp has no basic_nack; send the RabbitMQ extension method by hand."""
    ch.send_method(amqp.spec.Basic.Nack, "Lbb", (delivery_tag, multiple, requeue))


def temp_queue(ch):
    q, _, _ = ch.queue_declare("", exclusive=True)
    return q


def get(ch, q, no_ack=True, timeout=2.0):
    deadline = time.monotonic() + timeout
    while True:
        m = ch.basic_get(q, no_ack=no_ack)
        if m is not None or time.monotonic() > deadline:
            return m
        time.sleep(0.01)


def drain(conn, until, timeout=2.0):
    """Runs drain_events until until() is true or timeout."""
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        try:
            conn.drain_events(timeout=0.05)
        except socket.timeout:
            pass
    return until()


def quiet(conn, seconds=0.15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn.drain_events(timeout=0.05)
        except socket.timeout:
            pass


# ----------------------------------------------------------------------------- connection

def test_connect_and_close(broker):
    c = amqp_connect(broker)
    assert c.connected
    c.close()
    assert not c.connected
    fresh_health_check(broker)


def test_server_properties(conn):
    props = conn.server_properties
    assert props["product"] and props["version"]
    caps = props["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps[cap] is True, cap


def test_tune_values(conn):
    assert (conn.channel_max, conn.frame_max, conn.server_heartbeat) == (2047, 131072, 60)
    assert conn.heartbeat == 0  # py-amqp asks for none by default


def test_client_heartbeat_smaller_than_server(broker):
    c = amqp_connect(broker, heartbeat=10)
    try:
        assert (c.server_heartbeat, c.heartbeat) == (60, 10)
        amqp_round_trip(c)
    finally:
        c.close()


@pytest.mark.parametrize("mechanism", ["AMQPLAIN", "PLAIN"])
def test_wrong_password(broker, mechanism):
    with pytest.raises(aexc.AccessRefused) as ei:
        amqp_connect(broker, userid="guest", password="wrong", login_method=mechanism)
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism %s. For details "
        "see the broker logfile." % mechanism)
    fresh_health_check(broker)


def test_unknown_vhost(broker):
    with pytest.raises(aexc.NotAllowed) as ei:
        amqp_connect(broker, virtual_host="no-such-vhost")
    check_error(ei.value, aexc.NotAllowed, 530, "NOT_ALLOWED - vhost no-such-vhost not found",
                (10, 40))
    fresh_health_check(broker)


def test_immediate_publish_not_implemented(broker, conn, ch):
    ch.basic_publish(amqp.Message(b"x"), exchange="amq.direct", routing_key="k",
                     immediate=True)
    with pytest.raises(aexc.AMQPNotImplementedError) as ei:
        ch.queue_declare("", exclusive=True)
    check_error(ei.value, aexc.AMQPNotImplementedError, 540, "NOT_IMPLEMENTED - immediate=true",
                (60, 40))
    assert not conn.connected
    fresh_health_check(broker)


def test_flow_false_not_implemented(broker, conn, ch):
    with pytest.raises(aexc.AMQPNotImplementedError) as ei:
        ch.flow(False)
    check_error(ei.value, aexc.AMQPNotImplementedError, 540, "NOT_IMPLEMENTED - active=false",
                (20, 20))
    assert not conn.connected


def test_flow_true(ch):
    ch.flow(True)
    assert ch.is_open


def test_prefetch_size_not_implemented(broker, conn, ch):
    with pytest.raises(aexc.AMQPNotImplementedError) as ei:
        ch.basic_qos(prefetch_size=1, prefetch_count=0, a_global=False)
    check_error(ei.value, aexc.AMQPNotImplementedError, 540,
                "NOT_IMPLEMENTED - prefetch_size!=0 (1)", (60, 10))
    fresh_health_check(broker)


def test_recover_without_requeue_not_implemented(broker, conn, ch):
    ch.basic_recover(requeue=False)  # py-amqp does not wait for recover-ok
    with pytest.raises(aexc.AMQPNotImplementedError) as ei:
        ch.queue_declare("", exclusive=True)
    check_error(ei.value, aexc.AMQPNotImplementedError, 540, "NOT_IMPLEMENTED - requeue=false",
                (60, 110))


def test_unknown_exchange_type_closes_connection(broker, conn, ch, uniq):
    with pytest.raises(aexc.InvalidCommand) as ei:
        ch.exchange_declare(uniq, "no-such-type")
    check_error(ei.value, aexc.InvalidCommand, 503,
                "COMMAND_INVALID - unknown exchange type 'no-such-type'", (40, 10))
    assert not conn.connected
    fresh_health_check(broker)


def test_duplicate_consumer_tag_closes_connection(broker, conn, ch):
    q = temp_queue(ch)
    ch.basic_consume(q, consumer_tag="dup", callback=lambda m: None)
    with pytest.raises(aexc.NotAllowed) as ei:
        ch.basic_consume(q, consumer_tag="dup", callback=lambda m: None)
    check_error(ei.value, aexc.NotAllowed, 530,
                "NOT_ALLOWED - attempt to reuse consumer tag 'dup'", (60, 20))
    assert not conn.connected
    fresh_health_check(broker)


# ----------------------------------------------------------------------------- channel errors

def test_queue_passive_missing(conn, ch, uniq):
    with pytest.raises(aexc.NotFound) as ei:
        ch.queue_declare(uniq, passive=True)
    check_error(ei.value, aexc.NotFound, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % uniq,
                (50, 10))
    assert conn.connected
    # py-amqp reopens the same channel number right after close-ok: it must work
    assert ch.is_open
    temp_queue(ch)
    amqp_round_trip(conn)


def test_queue_redeclare_durable(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, durable=True, auto_delete=False)
    with pytest.raises(aexc.PreconditionFailed) as ei:
        ch.queue_declare(q, durable=False, auto_delete=False)
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': "
                "received 'false' but current is 'true'" % q, (50, 10))
    amqp_round_trip(conn)


def test_exclusive_queue_other_connection(broker, conn, ch, uniq):
    ch.queue_declare(uniq, exclusive=True)
    other = amqp_connect(broker)
    try:
        och = other.channel()
        with pytest.raises(aexc.ResourceLocked) as ei:
            och.queue_declare(uniq, passive=True)
        check_error(ei.value, aexc.ResourceLocked, 405, LOCKED_TEXT % uniq, (50, 10))
        och = other.channel()
        with pytest.raises(aexc.ResourceLocked) as ei:
            och.basic_consume(uniq, callback=lambda m: None)
        assert tuple(ei.value.method_sig) == (60, 20)
        amqp_round_trip(other)
    finally:
        other.close()


def test_exchange_redeclare_type(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "topic", auto_delete=False)
    with pytest.raises(aexc.PreconditionFailed) as ei:
        ch.exchange_declare(x, "headers", auto_delete=False)
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/': "
                "received 'headers' but current is 'topic'" % x, (40, 10))
    amqp_round_trip(conn)


def test_exchange_reserved_prefix(conn, ch):
    with pytest.raises(aexc.AccessRefused) as ei:
        ch.exchange_declare("amq.custom", "fanout")
    check_error(ei.value, aexc.AccessRefused, 403,
                "ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix 'amq.*'",
                (40, 10))
    amqp_round_trip(conn)


def test_delete_system_exchange(conn, ch):
    with pytest.raises(aexc.AccessRefused) as ei:
        ch.exchange_delete("amq.topic")
    check_error(ei.value, aexc.AccessRefused, 403,
                "ACCESS_REFUSED - deletion of system exchange 'amq.topic' in vhost '/' not "
                "allowed", (40, 20))


def test_bind_to_default_exchange(conn, ch):
    q = temp_queue(ch)
    with pytest.raises(aexc.AccessRefused) as ei:
        ch.queue_bind(q, "", "k")
    check_error(ei.value, aexc.AccessRefused, 403,
                "ACCESS_REFUSED - operation not permitted on the default exchange", (50, 20))
    amqp_round_trip(conn)


def test_bind_missing_exchange(conn, ch, uniq):
    q = temp_queue(ch)
    with pytest.raises(aexc.NotFound) as ei:
        ch.queue_bind(q, uniq, "k")
    check_error(ei.value, aexc.NotFound, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % uniq,
                (50, 20))


def test_queue_delete_if_empty(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, auto_delete=False)
    ch.basic_publish(amqp.Message(b"x"), exchange="", routing_key=q)
    with pytest.raises(aexc.PreconditionFailed) as ei:
        ch.queue_delete(q, if_empty=True)
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q, (50, 40))


def test_exclusive_consumer_conflict(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, auto_delete=False)
    ch.basic_consume(q, exclusive=True, callback=lambda m: None)
    other = conn.channel()
    with pytest.raises(aexc.AccessRefused) as ei:
        other.basic_consume(q, callback=lambda m: None)
    check_error(ei.value, aexc.AccessRefused, 403,
                "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q, (60, 20))
    amqp_round_trip(conn)


def test_publish_to_missing_exchange(conn, ch, uniq):
    ch.basic_publish(amqp.Message(b"x"), exchange=uniq, routing_key="k")
    with pytest.raises(aexc.NotFound) as ei:
        ch.queue_declare("", exclusive=True)
    check_error(ei.value, aexc.NotFound, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % uniq,
                (60, 40))
    amqp_round_trip(conn)


def test_user_id_mismatch(conn, ch):
    ch.basic_publish(amqp.Message(b"x", user_id="mallory"), exchange="", routing_key="nowhere")
    with pytest.raises(aexc.PreconditionFailed) as ei:
        ch.queue_declare("", exclusive=True)
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated "
                "user was 'guest'", (60, 40))


@pytest.mark.parametrize("op,sig", [("ack", (60, 80)), ("reject", (60, 90)),
                                    ("nack", (60, 120))])
def test_unknown_delivery_tag(conn, ch, op, sig):
    if op == "ack":
        ch.basic_ack(7)
    elif op == "reject":
        ch.basic_reject(7, True)
    else:
        basic_nack(ch, 7)
    with pytest.raises(aexc.PreconditionFailed) as ei:
        ch.queue_declare("", exclusive=True)
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - unknown delivery tag 7", sig)
    amqp_round_trip(conn)


@pytest.mark.parametrize("op,sig", [("tx_commit", (90, 20)), ("tx_rollback", (90, 30))])
def test_tx_without_select(conn, ch, op, sig):
    with pytest.raises(aexc.PreconditionFailed) as ei:
        getattr(ch, op)()
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - channel is not transactional", sig)
    amqp_round_trip(conn)


def test_tx_and_confirm_exclusive(conn):
    c1 = conn.channel()
    c1.tx_select()
    with pytest.raises(aexc.PreconditionFailed) as ei:
        c1.confirm_select()
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - cannot switch from tx to confirm mode", (85, 10))
    c2 = conn.channel()
    c2.confirm_select()
    with pytest.raises(aexc.PreconditionFailed) as ei:
        c2.tx_select()
    check_error(ei.value, aexc.PreconditionFailed, 406,
                "PRECONDITION_FAILED - cannot switch from confirm to tx mode", (90, 10))
    amqp_round_trip(conn)


def test_channel_error_leaves_other_channels_working(conn, uniq):
    good = conn.channel()
    q = temp_queue(good)
    bad = conn.channel()
    with pytest.raises(aexc.NotFound):
        bad.exchange_declare(uniq, "direct", passive=True)
    assert good.is_open and conn.connected
    good.basic_publish(amqp.Message(b"ok"), exchange="", routing_key=q)
    assert get(good, q).body == b"ok"


# ----------------------------------------------------------------------------- messages

def test_header_value_types_round_trip(ch):
    q = temp_queue(ch)
    headers = {
        "float": 1.5,
        "neg-float": -0.25,
        "decimal": decimal.Decimal("3.14"),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "nested": {"a": [1, "two", 2.5, {"deep": True}]},
        "true": True,
        "false": False,
        "void": None,
        "neg": -5,
        "zero": 0,
        "str": "text",
        "utf8": "\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9",
        "big": 2 ** 40,
        "list": [],
    }
    ch.basic_publish(amqp.Message(b"h", application_headers=headers), exchange="",
                     routing_key=q)
    m = get(ch, q)
    assert m.properties["application_headers"] == headers


def test_all_properties_round_trip(ch):
    q = temp_queue(ch)
    props = dict(
        content_type="text/plain", content_encoding="utf-8",
        application_headers={"k": "v"}, delivery_mode=2, priority=9,
        correlation_id="cid", reply_to="rq", expiration="100000", message_id="mid",
        timestamp=1683356889, type="t", user_id="guest",
        app_id="app", cluster_id="cl")
    ch.basic_publish(amqp.Message(b"p", **props), exchange="", routing_key=q)
    m = get(ch, q)
    assert m.body == "p"  # py-amqp decodes the body with content_encoding
    assert m.properties == props
    assert m.delivery_info["routing_key"] == q and m.delivery_info["redelivered"] is False


def test_get_empty(ch):
    assert ch.basic_get(temp_queue(ch)) is None


def test_get_message_count(ch):
    q = temp_queue(ch)
    for i in range(3):
        ch.basic_publish(amqp.Message(b"%d" % i), exchange="", routing_key=q)
    m = get(ch, q)
    assert m.body == b"0" and m.delivery_info["message_count"] == 2


@pytest.mark.parametrize("size", [0, 131064, 131065, 1024 * 1024])
def test_large_bodies(ch, size):
    q = temp_queue(ch)
    body = bytes(i % 241 for i in range(size))
    ch.basic_publish(amqp.Message(body), exchange="", routing_key=q)
    m = get(ch, q)
    assert m is not None
    # py-amqp hands an empty body over as '' (str)
    assert (m.body or b"") == body


def wait_count(ch, q, n, timeout=2.0):
    deadline = time.monotonic() + timeout
    while True:
        ok = ch.queue_declare(q, passive=True)
        if ok.message_count == n or time.monotonic() > deadline:
            return ok
        time.sleep(0.01)


def test_declare_ok_counts(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, auto_delete=False)
    for _ in range(2):
        ch.basic_publish(amqp.Message(b"x"), exchange="", routing_key=q)
    assert tuple(wait_count(ch, q, 2)) == (q, 2, 0)
    conn.channel().basic_consume(q, callback=lambda m: None)
    # the consumer took both messages (unacked): they no longer count as ready
    assert tuple(wait_count(ch, q, 0)) == (q, 0, 1)


def test_purge_and_delete_counts(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, auto_delete=False)
    for _ in range(3):
        ch.basic_publish(amqp.Message(b"x"), exchange="", routing_key=q)
    wait_count(ch, q, 3)
    assert ch.queue_purge(q) == 3
    ch.basic_publish(amqp.Message(b"y"), exchange="", routing_key=q)
    wait_count(ch, q, 1)
    assert ch.queue_delete(q) == 1
    assert ch.queue_delete(q) == 0  # missing: still ok


def test_server_generated_consumer_tag(conn, ch):
    q = temp_queue(ch)
    tag = ch.basic_consume(q, callback=lambda m: None)
    assert tag.startswith("amq.ctag-") and len(tag) > len("amq.ctag-")
    tag2 = ch.basic_consume(q, callback=lambda m: None)
    assert tag2 != tag and tag2.startswith("amq.ctag-")


def test_cancel_unknown_consumer_tag_is_ok(conn, ch):
    assert ch.basic_cancel("never-existed") == "never-existed"
    assert ch.is_open
    amqp_round_trip(conn)


def test_consume_and_deliver(conn, ch, uniq, janitor):
    x = janitor.exchange(uniq)
    ch.exchange_declare(x, "direct", auto_delete=False)
    q = temp_queue(ch)
    ch.queue_bind(q, x, "rk")
    got = []
    tag = ch.basic_consume(q, consumer_tag="ct", callback=got.append)
    for i in range(3):
        ch.basic_publish(amqp.Message(b"%d" % i), exchange=x, routing_key="rk")
    assert drain(conn, lambda: len(got) == 3)
    assert [m.body for m in got] == [b"0", b"1", b"2"]
    info = got[0].delivery_info
    assert (info["consumer_tag"], info["delivery_tag"], info["redelivered"], info["exchange"],
            info["routing_key"]) == (tag, 1, False, x, "rk")
    ch.basic_ack(3, multiple=True)
    ch.basic_cancel(tag)


def test_consumer_cancel_notification(conn, ch, uniq):
    ch.queue_declare(uniq, auto_delete=False)
    cancelled = []
    tag = ch.basic_consume(uniq, callback=lambda m: None, on_cancel=cancelled.append)
    conn.channel().queue_delete(uniq)
    assert drain(conn, lambda: cancelled)
    assert cancelled == [tag]
    assert ch.is_open


def test_prefetch_count(conn, ch):
    q = temp_queue(ch)
    ch.basic_qos(prefetch_size=0, prefetch_count=2, a_global=False)
    got = []
    ch.basic_consume(q, callback=got.append)
    for i in range(5):
        ch.basic_publish(amqp.Message(b"%d" % i), exchange="", routing_key=q)
    drain(conn, lambda: len(got) >= 2)
    quiet(conn)
    assert len(got) == 2
    ch.basic_ack(got[1].delivery_info["delivery_tag"], multiple=True)
    drain(conn, lambda: len(got) >= 4)
    quiet(conn)
    assert [m.body for m in got] == [b"0", b"1", b"2", b"3"]


def test_nack_requeue_keeps_order(conn, ch):
    q = temp_queue(ch)
    for i in range(4):
        ch.basic_publish(amqp.Message(b"%d" % i), exchange="", routing_key=q)
    first = get(ch, q, no_ack=False)
    second = get(ch, q, no_ack=False)
    basic_nack(ch, second.delivery_tag, requeue=True)
    ch.basic_reject(first.delivery_tag, requeue=True)
    out = [get(ch, q) for _ in range(4)]
    assert [(m.body, m.delivery_info["redelivered"]) for m in out] == [
        (b"0", True), (b"1", True), (b"2", False), (b"3", False)]


def test_recover_requeue(conn, ch):
    q = temp_queue(ch)
    ch.basic_publish(amqp.Message(b"r"), exchange="", routing_key=q)
    m = get(ch, q, no_ack=False)
    assert not m.delivery_info["redelivered"]
    ch.basic_recover(requeue=True)
    m2 = get(ch, q)
    assert m2.body == b"r" and m2.delivery_info["redelivered"]


def test_mandatory_return(conn, ch):
    returned = []
    ch.events["basic_return"].add(
        lambda exc, exchange, routing_key, message: returned.append(
            (exc.reply_code, exc.reply_text, exchange, routing_key, message.body,
             message.properties.get("message_id"))))
    ch.basic_publish(amqp.Message(b"ret", message_id="m1"), exchange="amq.direct",
                     routing_key="no-binding-here", mandatory=True)
    assert drain(conn, lambda: returned)
    assert returned == [(312, "NO_ROUTE", "amq.direct", "no-binding-here", b"ret", "m1")]
    assert ch.is_open
    amqp_round_trip(conn)


def test_confirm_delivery_tags(conn, ch):
    q = temp_queue(ch)
    ch.confirm_select()
    acks, nacks = [], []
    ch.events["basic_ack"].add(lambda tag, multiple: acks.append((tag, multiple)))
    ch.events["basic_nack"].add(lambda tag, multiple: nacks.append((tag, multiple)))
    n = 30
    for i in range(n):
        ch.basic_publish(amqp.Message(b"%d" % i), exchange="", routing_key=q)

    def covered():
        s = set()
        for tag, multiple in acks:
            s |= set(range(1, tag + 1)) if multiple else {tag}
        return s

    assert drain(conn, lambda: len(covered()) >= n)
    assert covered() == set(range(1, n + 1)) and nacks == []
    tags = [t for t, _ in acks]
    assert tags == sorted(set(tags))


def test_confirm_unroutable_mandatory_return_then_ack(conn, ch):
    ch.confirm_select()
    events = []
    ch.events["basic_return"].add(lambda exc, *a: events.append(("return", exc.reply_code)))
    ch.events["basic_ack"].add(lambda tag, multiple: events.append(("ack", tag)))
    ch.basic_publish(amqp.Message(b"x"), exchange="amq.direct", routing_key="nope",
                     mandatory=True)
    assert drain(conn, lambda: len(events) >= 2)
    assert events == [("return", 312), ("ack", 1)]


def test_confirm_publish_to_missing_exchange(conn, ch, uniq):
    ch.confirm_select()
    ch.basic_publish(amqp.Message(b"x"), exchange=uniq, routing_key="k")
    with pytest.raises(aexc.NotFound) as ei:
        drain(conn, lambda: False, timeout=1)
    check_error(ei.value, aexc.NotFound, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % uniq,
                (60, 40))
    amqp_round_trip(conn)


def test_tx_commit_and_rollback(conn, ch):
    q = temp_queue(ch)
    ch.tx_select()
    ch.basic_publish(amqp.Message(b"rolled-back"), exchange="", routing_key=q)
    ch.tx_rollback()
    ch.basic_publish(amqp.Message(b"committed"), exchange="", routing_key=q)
    observer = conn.channel()
    assert observer.basic_get(q, no_ack=True) is None
    ch.tx_commit()
    m = get(observer, q)
    assert m.body == b"committed"
    time.sleep(0.05)
    assert observer.basic_get(q, no_ack=True) is None
