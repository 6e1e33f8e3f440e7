"""kombu (Debian's python3-kombu over py-amqp) against the broker.

kombu is what Celery speaks AMQP through, so these tests follow the way Celery uses it:
entities declared through kombu's Exchange/Queue/binding objects, JSON-serialised
bodies, callbacks with explicit ack/requeue/reject, queue arguments, and basic.qos with
the global flag (Celery applies its prefetch window with global=True whenever kombu says
the broker's QoS semantics are RabbitMQ's, see test_qos_semantics_reported_as_rabbitmq).
"""
import signal
import socket
import time

import pytest

kombu = pytest.importorskip("kombu")
amqp = pytest.importorskip("amqp")

from kombu import Connection, Consumer, Exchange, Producer, Queue  # noqa: E402

TIMEOUT = 10
TEST_LIMIT = 60
# py-amqp socket timeouts, so that a broker that stops answering fails the test
SOCKET_TIMEOUTS = {"read_timeout": TIMEOUT, "write_timeout": TIMEOUT}


@pytest.fixture(autouse=True)
def _time_limit():
    """Backstop against hangs: SIGALRM after TEST_LIMIT s, then every TIMEOUT s until the
    test and its teardown are over."""
    def on_alarm(signum, frame):
        signal.alarm(TIMEOUT)
        raise TimeoutError("kombu test still running after its time limit")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def conn(broker):
    c = Connection(broker.url, connect_timeout=TIMEOUT,
                   transport_options=dict(SOCKET_TIMEOUTS, confirm_publish=False))
    c.connect()
    try:
        yield c
    finally:
        c.release()


def drain_until(conn, done, timeout=TIMEOUT):
    """Calls conn.drain_events until done() is true; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("condition not reached within %ss" % timeout)
        try:
            conn.drain_events(timeout=min(left, 1.0))
        except socket.timeout:
            pass


def delete_queues(conn, *names):
    with conn.channel() as ch:
        for n in names:
            try:
                ch.queue_delete(n)
            except Exception:
                pass


def delete_exchanges(conn, *names):
    with conn.channel() as ch:
        for n in names:
            try:
                ch.exchange_delete(n)
            except Exception:
                pass


def test_connect_and_server_capabilities(conn):
    assert conn.connected
    props = conn.connection.server_properties
    caps = props["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "per_consumer_qos"):
        assert caps.get(cap) is True, cap
    # kombu's heartbeat negotiation and channel allocation both work.
    ch = conn.channel()
    assert ch.channel_id >= 1
    ch.close()


def test_qos_semantics_reported_as_rabbitmq(conn):
    """Celery calls qos(apply_global=True) when this is False; kombu decides it from the
    server's `product` and `version` properties (RabbitMQ >= 3.3)."""
    props = conn.connection.server_properties
    assert props.get("product") == "RabbitMQ"
    assert conn.qos_semantics_matches_spec is False


def test_declare_entities_publish_json_consume_ack(conn, uniq):
    ex = Exchange(uniq + "-x", type="direct", durable=False, auto_delete=False)
    q = Queue(uniq + "-q", exchange=ex, routing_key="rk", durable=False)
    try:
        with conn.channel() as ch:
            producer = Producer(ch, exchange=ex, serializer="json")
            producer.publish({"n": 1, "s": "héllo", "l": [1, 2]}, routing_key="rk",
                             declare=[q], headers={"h1": "v1"})
            got = []

            def on_message(body, message):
                got.append((body, message.content_type, message.content_encoding,
                            message.headers, message.delivery_info))
                message.ack()

            with Consumer(ch, queues=[q], callbacks=[on_message], accept=["json"]):
                drain_until(conn, lambda: got)
            body, ctype, cenc, headers, info = got[0]
            assert body == {"n": 1, "s": "héllo", "l": [1, 2]}
            assert ctype == "application/json"
            assert cenc == "utf-8"
            assert headers["h1"] == "v1"
            assert info["routing_key"] == "rk"
            assert info["exchange"] == uniq + "-x"
            assert info["redelivered"] is False
            # acked, so nothing is left
            name, count, consumers = q(ch).queue_declare(passive=True)
            assert (name, count, consumers) == (uniq + "-q", 0, 0)
    finally:
        delete_queues(conn, uniq + "-q")
        delete_exchanges(conn, uniq + "-x")


def test_simple_queue_put_get_ack(conn, uniq):
    sq = conn.SimpleQueue(uniq, serializer="json")
    try:
        for i in range(3):
            sq.put({"i": i})
        deadline = time.monotonic() + TIMEOUT
        while sq.qsize() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sq.qsize() == 3
        seen = []
        for _ in range(3):
            m = sq.get(block=True, timeout=TIMEOUT)
            seen.append(m.payload["i"])
            m.ack()
        assert seen == [0, 1, 2]
        with pytest.raises(sq.Empty):
            sq.get(block=True, timeout=0.3)
        sq.put("again")
        m = sq.get(timeout=TIMEOUT)
        assert m.payload == "again"
        m.ack()
        assert sq.clear() == 0
    finally:
        sq.close()
        delete_queues(conn, uniq)
        delete_exchanges(conn, uniq)  # SimpleQueue declares a direct exchange of its name


def test_requeue_redelivers_with_flag(conn, uniq):
    q = Queue(uniq, routing_key=uniq, durable=False)
    try:
        with conn.channel() as ch:
            Producer(ch, serializer="json").publish({"k": "v"}, routing_key=uniq, declare=[q])
            got = []

            def on_message(body, message):
                got.append(message.delivery_info["redelivered"])
                if len(got) == 1:
                    message.requeue()
                else:
                    message.ack()

            with Consumer(ch, queues=[q], callbacks=[on_message]):
                drain_until(conn, lambda: len(got) >= 2)
            assert got == [False, True]
            assert q(ch).queue_declare(passive=True).message_count == 0
    finally:
        delete_queues(conn, uniq)


def test_reject_without_requeue_dead_letters(conn, uniq):
    dlx = Exchange(uniq + "-dlx", type="fanout", durable=False)
    dlq = Queue(uniq + "-dlq", exchange=dlx, durable=False)
    q = Queue(uniq + "-q", routing_key=uniq + "-q", durable=False,
              queue_arguments={"x-dead-letter-exchange": uniq + "-dlx"})
    try:
        with conn.channel() as ch:
            dlq(ch).declare()
            Producer(ch, serializer="json").publish("bad", routing_key=uniq + "-q", declare=[q])
            rejected = []

            def on_message(body, message):
                message.reject(requeue=False)
                rejected.append(body)

            with Consumer(ch, queues=[q], callbacks=[on_message]):
                drain_until(conn, lambda: rejected)
            bound = dlq(ch)
            deadline = time.monotonic() + TIMEOUT
            m = None
            while m is None and time.monotonic() < deadline:
                m = bound.get(no_ack=True)
                if m is None:
                    time.sleep(0.05)
            assert m is not None, "dead-lettered message did not arrive"
            assert m.payload == "bad"
            death = m.headers["x-death"][0]
            assert death["reason"] == "rejected"
            assert death["queue"] == uniq + "-q"
            assert death["count"] == 1
    finally:
        delete_queues(conn, uniq + "-q", uniq + "-dlq")
        delete_exchanges(conn, uniq + "-dlx")


def test_queue_arguments_max_length_and_ttl(conn, uniq):
    capped = Queue(uniq + "-cap", routing_key=uniq + "-cap", durable=False,
                   queue_arguments={"x-max-length": 2})
    ttl = Queue(uniq + "-ttl", routing_key=uniq + "-ttl", durable=False,
                queue_arguments={"x-message-ttl": 50})
    try:
        with conn.channel() as ch:
            p = Producer(ch, serializer="json")
            for i in range(5):
                p.publish(i, routing_key=uniq + "-cap", declare=[capped])
            p.publish("gone", routing_key=uniq + "-ttl", declare=[ttl])
            b = capped(ch)
            # drop-head: the two newest remain
            vals = [b.get(no_ack=True).payload, b.get(no_ack=True).payload]
            assert vals == [3, 4]
            assert b.get(no_ack=True) is None
            time.sleep(0.3)
            assert ttl(ch).get(no_ack=True) is None
            # redeclaring with the same arguments through kombu is fine
            capped(ch).declare()
            # a different value of a known argument is a precondition failure
            other = Queue(uniq + "-cap", durable=False, queue_arguments={"x-max-length": 3})
            with conn.channel() as ch2:
                with pytest.raises(amqp.exceptions.PreconditionFailed) as e:
                    other(ch2).declare()
                assert e.value.reply_code == 406
                assert "inequivalent arg 'x-max-length'" in e.value.reply_text
    finally:
        delete_queues(conn, uniq + "-cap", uniq + "-ttl")


def _count_unacked_deliveries(conn, ch, queues, apply_global, prefetch):
    got = []

    def on_message(body, message):
        got.append(message)

    consumers = []
    if apply_global:
        Consumer(ch, queues=[]).qos(prefetch_count=prefetch, apply_global=True)
    for q in queues:
        c = Consumer(ch, queues=[q], callbacks=[on_message])
        if not apply_global:
            c.qos(prefetch_count=prefetch)
        c.consume()
        consumers.append(c)
    # wait until the deliveries stop arriving
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            conn.drain_events(timeout=0.2)
        except socket.timeout:
            pass
    n = len(got)
    for m in got:
        m.ack()
    for c in consumers:
        c.cancel()
    return n


@pytest.mark.parametrize("apply_global,expected", [(True, 2), (False, 4)],
                         ids=["global", "per-consumer"])
def test_qos_prefetch(conn, uniq, apply_global, expected):
    names = [uniq + "-a", uniq + "-b"]
    qs = [Queue(n, routing_key=n, durable=False) for n in names]
    try:
        with conn.channel() as ch:
            p = Producer(ch, serializer="json")
            for q in qs:
                for i in range(5):
                    p.publish(i, routing_key=q.name, declare=[q])
            n = _count_unacked_deliveries(conn, ch, qs, apply_global, 2)
            assert n == expected
    finally:
        delete_queues(conn, *names)


def test_topic_and_fanout_routing(conn, uniq):
    topic = Exchange(uniq + "-t", type="topic", durable=False)
    fan = Exchange(uniq + "-f", type="fanout", durable=False)
    qa = Queue(uniq + "-a", exchange=topic, routing_key="a.*", durable=False)
    qb = Queue(uniq + "-b", exchange=topic, routing_key="#.z", durable=False)
    try:
        with conn.channel() as ch:
            qa(ch).declare()
            qb(ch).declare()
            fan(ch).declare()
            # bind both queues to the fanout too, through kombu's binding API
            qa(ch).bind_to(exchange=fan)
            qb(ch).bind_to(exchange=fan)
            p = Producer(ch, exchange=topic, serializer="json")
            for rk in ("a.b", "a.b.z", "x.y.z", "b.a"):
                p.publish(rk, routing_key=rk)
            Producer(ch, exchange=fan, serializer="json").publish("all", routing_key="ignored")

            def drain(q):
                out, b = [], q(ch)
                deadline = time.monotonic() + TIMEOUT
                while time.monotonic() < deadline:
                    m = b.get(no_ack=True)
                    if m is None:
                        if "all" in out:
                            break
                        time.sleep(0.05)
                        continue
                    out.append(m.payload)
                return out

            assert drain(qa) == ["a.b", "all"]
            assert drain(qb) == ["a.b.z", "x.y.z", "all"]
    finally:
        delete_queues(conn, uniq + "-a", uniq + "-b")
        delete_exchanges(conn, uniq + "-t", uniq + "-f")


def test_message_properties_roundtrip(conn, uniq):
    q = Queue(uniq, routing_key=uniq, durable=False, max_priority=5)
    try:
        with conn.channel() as ch:
            Producer(ch).publish(b"\x00\x01raw", routing_key=uniq, declare=[q],
                                 content_type="application/octet-stream",
                                 content_encoding="binary",
                                 headers={"i": 42, "f": 1.5, "b": True, "l": [1, "x"],
                                          "d": {"k": "v"}, "big": 2 ** 40},
                                 priority=3, correlation_id="cid-1", reply_to="replies",
                                 expiration=60, message_id="mid-1",
                                 delivery_mode=2, type="kind", app_id="app",
                                 timestamp=1700000000)
            m = None
            deadline = time.monotonic() + TIMEOUT
            while m is None and time.monotonic() < deadline:
                m = q(ch).get(no_ack=False)
            assert m is not None
            assert m.body == b"\x00\x01raw"
            assert m.content_type == "application/octet-stream"
            assert m.headers == {"i": 42, "f": 1.5, "b": True, "l": [1, "x"],
                                 "d": {"k": "v"}, "big": 2 ** 40}
            props = m.properties
            assert props["priority"] == 3
            assert props["correlation_id"] == "cid-1"
            assert props["reply_to"] == "replies"
            assert props["expiration"] == "60000"
            assert props["message_id"] == "mid-1"
            assert props["delivery_mode"] == 2
            assert props["type"] == "kind"
            assert props["app_id"] == "app"
            ts = props["timestamp"]  # py-amqp decodes the timestamp to a datetime
            assert int(ts.timestamp() if hasattr(ts, "timestamp") else ts) == 1700000000
            m.ack()
    finally:
        delete_queues(conn, uniq)


def test_mandatory_unroutable_is_returned(conn, uniq):
    ex = Exchange(uniq, type="direct", durable=False)
    returned = []

    def on_return(exc, exchange, routing_key, message):
        returned.append((exc.reply_code, exc.reply_text, exchange, routing_key, message.body))

    try:
        with conn.channel() as ch:
            p = Producer(ch, exchange=ex, serializer="json", on_return=on_return)
            p.publish("lost", routing_key="nowhere", mandatory=True, declare=[ex])
            drain_until(conn, lambda: returned)
            code, text, exchange, rk, body = returned[0]
            assert code == 312
            assert text == "NO_ROUTE"
            assert exchange == uniq
            assert rk == "nowhere"
            assert body in (b'"lost"', '"lost"')  # py-amqp decodes utf-8 bodies
    finally:
        delete_exchanges(conn, uniq)


def test_passive_declare_missing_queue_is_404_and_connection_survives(conn, uniq):
    with conn.channel() as ch:
        with pytest.raises(amqp.exceptions.NotFound) as e:
            Queue(uniq + "-missing", channel=ch).queue_declare(passive=True)
        assert e.value.reply_code == 404
        assert e.value.reply_text == "NOT_FOUND - no queue '%s-missing' in vhost '/'" % uniq
    # the connection is still usable on a new channel
    sq = conn.SimpleQueue(uniq, serializer="json")
    try:
        sq.put("ok")
        assert sq.get(timeout=TIMEOUT).payload == "ok"
    finally:
        sq.close()
        delete_queues(conn, uniq)
        delete_exchanges(conn, uniq)


def test_publisher_confirms_transport_option(broker, uniq):
    """kombu's pyamqp transport turns on confirm.select with confirm_publish=True and
    then waits for each basic.ack."""
    c = Connection(broker.url, connect_timeout=TIMEOUT,
                   transport_options=dict(SOCKET_TIMEOUTS, confirm_publish=True))
    try:
        q = Queue(uniq, routing_key=uniq, durable=False)
        with c.channel() as ch:
            p = Producer(ch, serializer="json")
            for i in range(20):
                p.publish(i, routing_key=uniq, declare=[q])
            assert q(ch).queue_declare(passive=True).message_count == 20
    finally:
        delete_queues(c, uniq)
        c.release()
