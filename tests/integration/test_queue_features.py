"""RabbitMQ's queue and routing features through pika, asserted as RabbitMQ 3.10 does them.

Covers: message TTL (x-message-ttl and the per-message `expiration`), queue expiry
(x-expires), length limits (x-max-length, x-max-length-bytes, every x-overflow mode),
dead-lettering (reasons rejected/expired/maxlen, x-death and x-first-death-* headers,
cycle detection, dead-letter routing keys, CC in routing-keys), priority queues, consumer
priorities, single active consumer, exclusive consumers, direct reply-to, sender-selected
distribution (CC/BCC), validated user_id, the consumer timeout, the consistent-hash and
delayed-message exchange types, and validation of queue arguments.

Error tests check the reply code and RabbitMQ's exact reply text. Timings use TTLs of
50-300 ms and every wait is bounded.
"""
import calendar
import datetime
import socket
import time
import uuid

import pika
import pika.exceptions as pexc
import pytest

from helpers import (
    close_quietly, collect_deliveries, drain_bodies, message_count, pika_connect, pika_get,
    reply_text, round_trip, settle, wait_message_count,
)

TIMEOUT_TEXT = ("PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "
                "Timeout value used: %d ms. This timeout value can be configured, see "
                "consumers doc guide to learn more")
REPLY_TO = "amq.rabbitmq.reply-to"


# ----------------------------------------------------------------------------- fixtures

from pika_fixtures import ch, channel_closed, conn, janitor  # noqa: F401 (fixtures)


def xq(ch, name, **args):
    """An exclusive queue (deleted with the connection) with x- arguments."""
    return ch.queue_declare(name, exclusive=True, arguments=args or None).method.queue


def pub(ch, rk, body, exchange="", **props):
    ch.basic_publish(exchange, rk, body, pika.BasicProperties(**props))


def get_one(ch, q, timeout=2.0, auto_ack=True):
    """(method, props, body) of the next message, waiting for it; fails if none comes."""
    m, p, b = pika_get(ch, q, timeout=timeout, auto_ack=auto_ack)
    assert m is not None, "no message arrived in %s" % q
    return m, p, b


def assert_empty(ch, q):
    m, _p, b = ch.basic_get(q, auto_ack=True)
    assert m is None, "unexpected message %r in %s" % (b, q)


def consume_into(ch, queue, store, **kw):
    return ch.basic_consume(queue, lambda c, m, p, b: store.append((m, p, b)), **kw)


def ts_seconds(value):
    """A decoded AMQP timestamp (pika gives a naive UTC datetime) as seconds."""
    assert isinstance(value, datetime.datetime), value
    return calendar.timegm(value.utctimetuple())


def assert_death(entry, reason, queue, exchange, routing_keys, count=1, expiration=None):
    """One x-death table exactly as RabbitMQ writes it."""
    expected_keys = {"count", "reason", "queue", "time", "exchange", "routing-keys"}
    if expiration is not None:
        expected_keys.add("original-expiration")
    assert set(entry) == expected_keys, entry
    assert entry["count"] == count
    assert entry["reason"] == reason
    assert entry["queue"] == queue
    assert entry["exchange"] == exchange
    assert entry["routing-keys"] == routing_keys
    assert abs(ts_seconds(entry["time"]) - time.time()) < 30
    if expiration is not None:
        assert entry["original-expiration"] == expiration


def wait_closed(ch_impl_store, conn, timeout):
    deadline = time.monotonic() + timeout
    while not ch_impl_store and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    return ch_impl_store


def kill_socket(conn):
    """Drops a pika connection's TCP socket without a connection.close."""
    sock = conn._impl._transport._sock
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# ----------------------------------------------------------------------------- message TTL

def test_queue_ttl_expired_messages_never_delivered(conn, ch, uniq):
    q = xq(ch, uniq, **{"x-message-ttl": 100})
    for i in range(3):
        pub(ch, q, b"m%d" % i)
    time.sleep(0.3)
    assert_empty(ch, q)
    got = []
    consume_into(ch, q, got, auto_ack=True)
    settle(conn, 0.2)
    assert got == []


def test_queue_ttl_removes_head_without_consumer(ch, uniq):
    q = xq(ch, uniq, **{"x-message-ttl": 100})
    for i in range(5):
        pub(ch, q, b"m%d" % i)
    assert wait_message_count(ch, q, 5) == 5
    time.sleep(0.35)
    assert message_count(ch, q) == 0


def test_queue_ttl_message_alive_before_expiry(ch, uniq):
    q = xq(ch, uniq, **{"x-message-ttl": 3000})
    pub(ch, q, b"fresh")
    m, p, b = get_one(ch, q)
    assert b == b"fresh"
    assert p.expiration is None


def test_per_message_expiration_removed_without_consumer(ch, uniq):
    q = xq(ch, uniq)
    pub(ch, q, b"short", expiration="100")
    pub(ch, q, b"short2", expiration="100")
    assert wait_message_count(ch, q, 2) == 2
    time.sleep(0.35)
    assert message_count(ch, q) == 0
    assert_empty(ch, q)


def test_per_message_expiration_kept_on_delivery(ch, uniq):
    q = xq(ch, uniq)
    pub(ch, q, b"x", expiration="60000")
    _m, p, b = get_one(ch, q)
    assert (b, p.expiration) == (b"x", "60000")


@pytest.mark.parametrize("queue_ttl,msg_ttl", [(5000, "100"), (100, "5000")],
                         ids=["message-shorter", "queue-shorter"])
def test_lower_of_queue_and_message_ttl_applies(ch, uniq, queue_ttl, msg_ttl):
    q = xq(ch, uniq, **{"x-message-ttl": queue_ttl})
    pub(ch, q, b"x", expiration=msg_ttl)
    time.sleep(0.35)
    assert message_count(ch, q) == 0
    assert_empty(ch, q)


def test_queue_ttl_zero_delivers_to_waiting_consumer(conn, ch, uniq):
    q = xq(ch, uniq, **{"x-message-ttl": 0})
    got = []
    consume_into(ch, q, got, auto_ack=True)
    pub(ch, q, b"now")
    collect_deliveries(conn, got, 1)
    assert [b for _, _, b in got] == [b"now"]


def test_queue_ttl_zero_without_consumer_drops(ch, uniq):
    q = xq(ch, uniq, **{"x-message-ttl": 0})
    pub(ch, q, b"gone")
    time.sleep(0.1)
    assert message_count(ch, q) == 0
    assert_empty(ch, q)


def test_expiration_zero_delivers_to_waiting_consumer_or_drops(conn, ch, uniq):
    idle = xq(ch, uniq + "-idle")
    pub(ch, idle, b"gone", expiration="0")
    busy = xq(ch, uniq + "-busy")
    got = []
    consume_into(ch, busy, got, auto_ack=True)
    pub(ch, busy, b"now", expiration="0")
    collect_deliveries(conn, got, 1)
    assert [b for _, _, b in got] == [b"now"]
    assert message_count(ch, idle) == 0
    assert_empty(ch, idle)


def test_expired_message_behind_live_one_not_delivered(ch, uniq):
    q = xq(ch, uniq)
    pub(ch, q, b"long", expiration="60000")
    pub(ch, q, b"short", expiration="50")
    pub(ch, q, b"forever")
    time.sleep(0.2)
    m, _p, b = get_one(ch, q, auto_ack=False)
    assert b == b"long"
    # the expired one is not delivered once it reaches the head
    _m2, _p2, b2 = get_one(ch, q)
    assert b2 == b"forever"
    ch.basic_ack(m.delivery_tag)
    assert message_count(ch, q) == 0


def test_expired_message_behind_live_one_counted_until_head(ch, uniq):
    """Per-message TTL only removes messages at the head of the queue."""
    q = xq(ch, uniq)
    pub(ch, q, b"long", expiration="60000")
    pub(ch, q, b"short", expiration="50")
    time.sleep(0.25)
    assert message_count(ch, q) == 2
    _m, _p, b = get_one(ch, q)
    assert b == b"long"
    # now the expired message is at the head: it goes without anyone asking for it
    assert wait_message_count(ch, q, 0) == 0
    assert_empty(ch, q)


def test_expired_message_behind_live_one_dead_lettered_at_head(ch, uniq):
    dlq = xq(ch, uniq + "-dlq")
    q = xq(ch, uniq, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    pub(ch, q, b"long", expiration="60000")
    pub(ch, q, b"short", expiration="50")
    time.sleep(0.2)
    assert message_count(ch, dlq) == 0
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_ack(m.delivery_tag)
    _m, p, b = get_one(ch, dlq)
    assert b == b"short"
    assert_death(p.headers["x-death"][0], "expired", q, "", [q], expiration="50")


def test_expired_dead_lettered_with_reason_expired(ch, uniq):
    dlx = uniq + "-dlx"
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    dlq = xq(ch, uniq + "-dlq")
    ch.queue_bind(dlq, dlx)
    q = xq(ch, uniq, **{"x-message-ttl": 50, "x-dead-letter-exchange": dlx})
    pub(ch, q, b"old", message_id="mid", headers={"app": "v"})
    m, p, b = get_one(ch, dlq, timeout=3)
    assert b == b"old"
    assert m.exchange == dlx
    assert m.routing_key == q
    assert p.message_id == "mid"
    assert p.expiration is None
    assert p.headers["app"] == "v"
    assert len(p.headers["x-death"]) == 1
    assert_death(p.headers["x-death"][0], "expired", q, "", [q])
    assert p.headers["x-first-death-reason"] == "expired"
    assert p.headers["x-first-death-queue"] == q
    assert p.headers["x-first-death-exchange"] == ""
    assert message_count(ch, q) == 0


def test_per_message_expiration_dead_lettered_with_original_expiration(ch, uniq):
    dlq = xq(ch, uniq + "-dlq")
    q = xq(ch, uniq, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    pub(ch, q, b"x", expiration="80")
    m, p, b = get_one(ch, dlq, timeout=3)
    assert m.routing_key == dlq
    assert p.expiration is None
    assert_death(p.headers["x-death"][0], "expired", q, "", [q], expiration="80")


@pytest.mark.parametrize("expiration,detail", [
    ("abc", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
    ("", "no_integer"),
], ids=["abc", "negative", "fraction", "empty"])
def test_invalid_expiration_is_channel_error(conn, ch, uniq, expiration, detail):
    q = xq(ch, uniq)
    bad = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        pub(bad, q, b"x", expiration=expiration)
        bad.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - invalid expiration '%s': %s"
                   % (expiration, detail))
    assert message_count(ch, q) == 0
    round_trip(conn)


# ----------------------------------------------------------------------------- queue expiry

def test_unused_queue_expires(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, arguments={"x-expires": 150})
    pub(ch, q, b"in it")  # messages do not keep a queue alive
    time.sleep(0.5)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)
    round_trip(conn)


def test_queue_with_consumer_does_not_expire(conn, ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, arguments={"x-expires": 150})
    tag = ch.basic_consume(q, lambda *a: None, auto_ack=True)
    settle(conn, 0.45)
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    # once the consumer goes the countdown starts
    ch.basic_cancel(tag)
    time.sleep(0.5)
    other = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        other.queue_declare(q, passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_queue_expiry_reset_by_redeclare(ch, uniq, janitor):
    q = janitor.queue(uniq)
    ch.queue_declare(q, arguments={"x-expires": 300})
    for _ in range(5):
        time.sleep(0.12)
        ch.queue_declare(q, arguments={"x-expires": 300})
    assert ch.queue_declare(q, passive=True).method.queue == q


# ----------------------------------------------------------------------------- length limits

def test_max_length_drop_head(ch, uniq):
    q = xq(ch, uniq, **{"x-max-length": 2})
    for i in range(1, 5):
        pub(ch, q, b"%d" % i)
    assert wait_message_count(ch, q, 2) == 2
    assert drain_bodies(ch, q, 2) == [b"3", b"4"]


def test_max_length_drop_head_dead_letters_with_reason_maxlen(ch, uniq):
    dlq = xq(ch, uniq + "-dlq")
    q = xq(ch, uniq, **{"x-max-length": 2, "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": dlq})
    for i in range(1, 5):
        pub(ch, q, b"%d" % i)
    assert wait_message_count(ch, dlq, 2) == 2
    m, p, b = get_one(ch, dlq)
    assert b == b"1"
    assert_death(p.headers["x-death"][0], "maxlen", q, "", [q])
    assert p.headers["x-first-death-reason"] == "maxlen"
    _m, _p, b = get_one(ch, dlq)
    assert b == b"2"
    assert drain_bodies(ch, q, 2) == [b"3", b"4"]


def test_max_length_bytes_drop_head(ch, uniq):
    q = xq(ch, uniq, **{"x-max-length-bytes": 10})
    for i in range(1, 5):
        pub(ch, q, b"abc%d" % i)  # 4 bytes each: two fit in 10 bytes
    assert wait_message_count(ch, q, 2) == 2
    assert drain_bodies(ch, q, 2) == [b"abc3", b"abc4"]


def test_max_length_bytes_larger_than_limit_dropped(ch, uniq):
    q = xq(ch, uniq, **{"x-max-length-bytes": 5})
    pub(ch, q, b"ok")
    pub(ch, q, b"much too long")
    time.sleep(0.1)
    assert message_count(ch, q) == 0


def test_reject_publish_with_confirms_nacks(ch, uniq):
    q = xq(ch, uniq, **{"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    pub(ch, q, b"1")
    pub(ch, q, b"2")
    with pytest.raises(pexc.NackError):
        pub(ch, q, b"3")
    assert message_count(ch, q) == 2
    # space again after a get: the next publish is acked
    assert get_one(ch, q)[2] == b"1"
    pub(ch, q, b"4")
    assert drain_bodies(ch, q, 2) == [b"2", b"4"]


def test_reject_publish_without_confirms_silently_dropped(conn, ch, uniq):
    q = xq(ch, uniq, **{"x-max-length": 2, "x-overflow": "reject-publish"})
    for i in range(1, 5):
        pub(ch, q, b"%d" % i)
    time.sleep(0.1)
    assert ch.is_open
    assert message_count(ch, q) == 2
    assert drain_bodies(ch, q, 2) == [b"1", b"2"]
    round_trip(conn)


def test_reject_publish_is_not_dead_lettered(ch, uniq):
    dlq = xq(ch, uniq + "-dlq")
    q = xq(ch, uniq, **{"x-max-length": 1, "x-overflow": "reject-publish",
                        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    pub(ch, q, b"1")
    pub(ch, q, b"2")
    time.sleep(0.15)
    assert message_count(ch, dlq) == 0
    assert drain_bodies(ch, q, 1) == [b"1"]


def test_reject_publish_dlx_dead_letters_and_nacks(ch, uniq):
    dlq = xq(ch, uniq + "-dlq")
    q = xq(ch, uniq, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.confirm_delivery()
    pub(ch, q, b"1")
    with pytest.raises(pexc.NackError):
        pub(ch, q, b"2")
    _m, p, b = get_one(ch, dlq)
    assert b == b"2"
    assert_death(p.headers["x-death"][0], "maxlen", q, "", [q])
    assert drain_bodies(ch, q, 1) == [b"1"]


def test_reject_publish_with_max_length_bytes(ch, uniq):
    q = xq(ch, uniq, **{"x-max-length-bytes": 8, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    pub(ch, q, b"abcd")
    pub(ch, q, b"efgh")
    with pytest.raises(pexc.NackError):
        pub(ch, q, b"i")
    assert drain_bodies(ch, q, 2) == [b"abcd", b"efgh"]


def test_reject_publish_routed_to_two_queues_nacked_if_one_full(ch, uniq):
    x = uniq + "-x"
    ch.exchange_declare(x, "fanout", auto_delete=True)
    full = xq(ch, uniq + "-full", **{"x-max-length": 0, "x-overflow": "reject-publish"})
    free = xq(ch, uniq + "-free")
    ch.queue_bind(full, x)
    ch.queue_bind(free, x)
    ch.confirm_delivery()
    with pytest.raises(pexc.NackError):
        pub(ch, "", b"m", exchange=x)
    # the copy for the queue with room is enqueued anyway
    assert drain_bodies(ch, free, 1) == [b"m"]
    assert message_count(ch, full) == 0


# ----------------------------------------------------------------------------- dead-lettering

def dl_pair(ch, uniq, **extra):
    """A queue dead-lettering through the default exchange to its own dead-letter queue."""
    dlq = xq(ch, uniq + "-dlq")
    args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
    args.update(extra)
    q = xq(ch, uniq, **args)
    return q, dlq


@pytest.mark.parametrize("how", ["reject", "nack"])
def test_rejected_message_dead_lettered(ch, uniq, how):
    q, dlq = dl_pair(ch, uniq)
    pub(ch, q, b"bad", correlation_id="c1")
    m, _p, _b = get_one(ch, q, auto_ack=False)
    if how == "reject":
        ch.basic_reject(m.delivery_tag, requeue=False)
    else:
        ch.basic_nack(m.delivery_tag, requeue=False)
    m, p, b = get_one(ch, dlq)
    assert (b, p.correlation_id, m.redelivered) == (b"bad", "c1", False)
    assert m.exchange == ""
    assert m.routing_key == dlq
    assert len(p.headers["x-death"]) == 1
    assert_death(p.headers["x-death"][0], "rejected", q, "", [q])
    assert p.headers["x-first-death-reason"] == "rejected"
    assert p.headers["x-first-death-queue"] == q
    assert p.headers["x-first-death-exchange"] == ""
    assert message_count(ch, q) == 0


def test_requeued_message_not_dead_lettered(ch, uniq):
    q, dlq = dl_pair(ch, uniq)
    pub(ch, q, b"again")
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, p, b = get_one(ch, q)
    assert (b, m.redelivered, p.headers) == (b"again", True, None)
    assert message_count(ch, dlq) == 0


def test_nack_multiple_dead_letters_all_in_order(ch, uniq):
    q, dlq = dl_pair(ch, uniq)
    for i in range(4):
        pub(ch, q, b"%d" % i)
    last = None
    for _ in range(4):
        last = get_one(ch, q, auto_ack=False)[0]
    ch.basic_nack(last.delivery_tag, multiple=True, requeue=False)
    assert drain_bodies(ch, dlq, 4) == [b"0", b"1", b"2", b"3"]


def test_dead_letter_keeps_original_routing_key_without_dlrk(ch, uniq):
    dlx = uniq + "-dlx"
    ch.exchange_declare(dlx, "direct", auto_delete=True)
    dlq = xq(ch, uniq + "-dlq")
    ch.queue_bind(dlq, dlx, routing_key="orig")
    src = uniq + "-src"
    ch.exchange_declare(src, "direct", auto_delete=True)
    q = xq(ch, uniq, **{"x-dead-letter-exchange": dlx})
    ch.queue_bind(q, src, routing_key="orig")
    pub(ch, "orig", b"x", exchange=src)
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get_one(ch, dlq)
    assert (m.exchange, m.routing_key) == (dlx, "orig")
    assert_death(p.headers["x-death"][0], "rejected", q, src, ["orig"])
    assert p.headers["x-first-death-exchange"] == src


def test_dead_letter_routing_key_overrides(ch, uniq):
    dlx = uniq + "-dlx"
    ch.exchange_declare(dlx, "direct", auto_delete=True)
    dlq = xq(ch, uniq + "-dlq")
    ch.queue_bind(dlq, dlx, routing_key="dead")
    wrong = xq(ch, uniq + "-wrong")
    ch.queue_bind(wrong, dlx, routing_key=uniq)
    q = xq(ch, uniq, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    pub(ch, q, b"x")
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, _b = get_one(ch, dlq)
    assert (m.exchange, m.routing_key) == (dlx, "dead")
    assert p.headers["x-death"][0]["routing-keys"] == [q]
    assert message_count(ch, wrong) == 0


def test_dead_letter_to_default_exchange_with_routing_key(ch, uniq):
    q, dlq = dl_pair(ch, uniq, **{"x-message-ttl": 50})
    pub(ch, q, b"via default")
    m, p, b = get_one(ch, dlq, timeout=3)
    assert (m.exchange, m.routing_key, b) == ("", dlq, b"via default")
    assert_death(p.headers["x-death"][0], "expired", q, "", [q])


def test_dead_letter_exchange_missing_drops_message(conn, ch, uniq):
    q = xq(ch, uniq, **{"x-dead-letter-exchange": uniq + "-no-such-x"})
    pub(ch, q, b"x")
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.1)
    assert message_count(ch, q) == 0
    assert ch.is_open
    round_trip(conn)


def test_cc_keys_in_x_death_routing_keys(ch, uniq):
    dlx = uniq + "-dlx"
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    dlq = xq(ch, uniq + "-dlq")
    ch.queue_bind(dlq, dlx)
    cc = xq(ch, uniq + "-cc")
    q = xq(ch, uniq, **{"x-dead-letter-exchange": dlx})
    pub(ch, q, b"x", headers={"CC": [cc]})
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _m, p, _b = get_one(ch, dlq)
    assert_death(p.headers["x-death"][0], "rejected", q, "", [q, cc])
    # without a dead-letter routing key the CC header stays on the message
    assert p.headers["CC"] == [cc]


def test_dead_letter_routing_key_removes_cc_header(ch, uniq):
    cc = xq(ch, uniq + "-cc")
    q, dlq = dl_pair(ch, uniq)
    pub(ch, q, b"x", headers={"CC": [cc], "k": "v"})
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _m, p, _b = get_one(ch, dlq)
    assert "CC" not in p.headers
    assert p.headers["k"] == "v"
    assert p.headers["x-death"][0]["routing-keys"] == [q, cc]
    # the CC copy was delivered once, when first published, and not again
    assert drain_bodies(ch, cc, 2, timeout=0.3) == [b"x"]


def test_second_death_same_queue_increments_count_and_moves_first(ch, uniq):
    """q1 and q2 dead-letter to each other; rejections are never a cycle."""
    q1n, q2n = uniq + "-1", uniq + "-2"
    q1 = xq(ch, q1n, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q2n})
    q2 = xq(ch, q2n, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q1n})
    pub(ch, q1, b"ping-pong")

    def reject_from(q):
        m, p, _b = get_one(ch, q, auto_ack=False)
        ch.basic_reject(m.delivery_tag, requeue=False)
        return p

    reject_from(q1)
    p = reject_from(q2)
    deaths = p.headers["x-death"]
    assert [(d["queue"], d["count"]) for d in deaths] == [(q1, 1)]
    reject_from(q1)  # now in q2 again with two entries
    _m, p, _b = get_one(ch, q2)
    deaths = p.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (q1, "rejected", 2), (q2, "rejected", 1)]
    assert_death(deaths[0], "rejected", q1, "", [q1], count=2)
    assert_death(deaths[1], "rejected", q2, "", [q2], count=1)
    assert p.headers["x-first-death-queue"] == q1
    assert p.headers["x-first-death-reason"] == "rejected"
    assert p.headers["x-first-death-exchange"] == ""


def test_different_reasons_same_queue_are_separate_entries(ch, uniq):
    """Rejected in q, expired in q: two x-death entries for the same queue."""
    back = uniq + "-back"
    q = xq(ch, uniq, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": back})
    xq(ch, back, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q})
    pub(ch, q, b"x")
    m, _p, _b = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)  # q -> back
    m, _p, _b = get_one(ch, back, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)  # back -> q
    m, p, _b = get_one(ch, q)
    pub(ch, q, b"y", expiration="50", headers=p.headers)  # republished copy expires in q
    _m, p, _b = get_one(ch, back, timeout=3)
    deaths = [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]]
    # the new entry comes first; RabbitMQ 3.10 reverses the older ones while regrouping
    # them (3.13 orders them by recency), so their order is not asserted
    assert deaths[0] == (q, "expired", 1)
    assert sorted(deaths[1:]) == sorted([(back, "rejected", 1), (q, "rejected", 1)])
    # x-first-death-* come from the headers the publisher sent
    assert p.headers["x-first-death-reason"] == "rejected"


def test_ttl_dead_letter_cycle_to_itself_is_dropped(ch, uniq):
    q = uniq
    xq(ch, q, **{"x-message-ttl": 50, "x-dead-letter-exchange": "",
                 "x-dead-letter-routing-key": q})
    pub(ch, q, b"loop")
    time.sleep(0.4)
    assert message_count(ch, q) == 0
    assert_empty(ch, q)


def test_ttl_dead_letter_cycle_of_two_queues_is_dropped(ch, uniq):
    a, b = uniq + "-a", uniq + "-b"
    xq(ch, a, **{"x-message-ttl": 50, "x-dead-letter-exchange": "",
                 "x-dead-letter-routing-key": b})
    xq(ch, b, **{"x-message-ttl": 250, "x-dead-letter-exchange": "",
                 "x-dead-letter-routing-key": a})
    pub(ch, a, b"loop")
    # a -> b is the first death; b -> a would close the cycle: dropped there
    assert wait_message_count(ch, b, 1, timeout=1) == 1
    time.sleep(0.5)
    assert message_count(ch, a) == 0
    assert message_count(ch, b) == 0
    assert_empty(ch, a)


def test_ttl_dead_letter_cycle_survives_when_it_includes_a_rejection(ch, uniq):
    a, b = uniq + "-a", uniq + "-b"
    xq(ch, a, **{"x-message-ttl": 50, "x-dead-letter-exchange": "",
                 "x-dead-letter-routing-key": b})
    xq(ch, b, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a})
    pub(ch, a, b"loop")
    for expect_count in (1, 2):
        m, p, _b = get_one(ch, b, timeout=3, auto_ack=False)  # expired out of a
        deaths = p.headers["x-death"]
        assert deaths[0]["queue"] == a and deaths[0]["reason"] == "expired"
        assert deaths[0]["count"] == expect_count
        ch.basic_reject(m.delivery_tag, requeue=False)  # back into a, not a cycle
    _m, p, _b = get_one(ch, b, timeout=3)
    assert [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]] == [
        (a, "expired", 3), (b, "rejected", 2)]


def test_dead_lettered_message_republished_keeps_x_death(ch, uniq):
    """A publisher may resend a dead-lettered message: the new death is added to it."""
    q1, dlq1 = dl_pair(ch, uniq + "-one")
    q2, dlq2 = dl_pair(ch, uniq + "-two")
    pub(ch, q1, b"x")
    m, _p, _b = get_one(ch, q1, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _m, p, b = get_one(ch, dlq1)
    pub(ch, q2, b, headers=p.headers)
    m, _p, _b = get_one(ch, q2, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _m, p, _b = get_one(ch, dlq2)
    deaths = p.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (q2, "rejected", 1), (q1, "rejected", 1)]
    assert p.headers["x-first-death-queue"] == q1


@pytest.mark.warren_only
def test_warren_writes_x_last_death_headers(ch, uniq):
    q, dlq = dl_pair(ch, uniq, **{"x-message-ttl": 50})
    pub(ch, q, b"x")
    _m, p, _b = get_one(ch, dlq, timeout=3)
    assert p.headers["x-last-death-reason"] == "expired"
    assert p.headers["x-last-death-queue"] == q
    assert p.headers["x-last-death-exchange"] == ""


# ----------------------------------------------------------------------------- priority queues

def test_priority_queue_orders_by_priority_then_fifo(ch, uniq):
    q = xq(ch, uniq, **{"x-max-priority": 10})
    for body, prio in [(b"low", 1), (b"mid-a", 5), (b"none", None), (b"top", 10),
                       (b"mid-b", 5), (b"zero", 0)]:
        pub(ch, q, body, priority=prio)
    assert wait_message_count(ch, q, 6) == 6
    assert drain_bodies(ch, q, 6) == [b"top", b"mid-a", b"mid-b", b"low", b"none", b"zero"]


def test_priority_above_max_treated_as_max(ch, uniq):
    q = xq(ch, uniq, **{"x-max-priority": 5})
    pub(ch, q, b"a", priority=5)
    pub(ch, q, b"b", priority=9)
    pub(ch, q, b"c", priority=4)
    pub(ch, q, b"d", priority=200)
    assert wait_message_count(ch, q, 4) == 4
    got = [get_one(ch, q) for _ in range(4)]
    assert [b for _, _, b in got] == [b"a", b"b", b"d", b"c"]
    # the property itself is delivered unchanged
    assert [p.priority for _, p, _ in got] == [5, 9, 200, 4]


def test_without_max_priority_priorities_are_ignored(ch, uniq):
    q = xq(ch, uniq)
    for body, prio in [(b"1", 1), (b"2", 9), (b"3", None), (b"4", 5)]:
        pub(ch, q, body, priority=prio)
    assert drain_bodies(ch, q, 4) == [b"1", b"2", b"3", b"4"]


def test_max_priority_255_accepted(ch, uniq):
    q = xq(ch, uniq, **{"x-max-priority": 255})
    pub(ch, q, b"a", priority=1)
    pub(ch, q, b"b", priority=255)
    assert wait_message_count(ch, q, 2) == 2
    assert drain_bodies(ch, q, 2) == [b"b", b"a"]


def test_priority_with_prefetch_one_consumer(conn, ch, uniq):
    q = xq(ch, uniq, **{"x-max-priority": 10})
    for body, prio in [(b"p1", 1), (b"p2", 2), (b"p9", 9), (b"p5", 5)]:
        pub(ch, q, body, priority=prio)
    assert wait_message_count(ch, q, 4) == 4
    ch.basic_qos(prefetch_count=1)
    got = []
    consume_into(ch, q, got)
    collect_deliveries(conn, got, 1)
    settle(conn, 0.1)
    assert [b for _, _, b in got] == [b"p9"]
    # while the consumer holds p9, a low and a high one arrive: the high one is next
    pub(ch, q, b"p0", priority=0)
    pub(ch, q, b"p10", priority=10)
    assert wait_message_count(ch, q, 5) == 5  # enqueued before the ack below
    for n in range(2, 7):
        ch.basic_ack(got[-1][0].delivery_tag)
        collect_deliveries(conn, got, n)
    ch.basic_ack(got[-1][0].delivery_tag)
    assert [b for _, _, b in got] == [b"p9", b"p10", b"p5", b"p2", b"p1", b"p0"]


def test_priority_requeued_message_keeps_its_place(ch, uniq):
    q = xq(ch, uniq, **{"x-max-priority": 10})
    pub(ch, q, b"hi", priority=8)
    pub(ch, q, b"lo", priority=1)
    m, _p, b = get_one(ch, q, auto_ack=False)
    assert b == b"hi"
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, _p, b = get_one(ch, q)
    assert (b, m.redelivered) == (b"hi", True)
    assert get_one(ch, q)[2] == b"lo"


# ----------------------------------------------------------------------------- consumer priorities

def test_higher_priority_consumer_gets_all_while_it_has_credit(conn, uniq):
    ch_low, ch_high = conn.channel(), conn.channel()
    q = xq(ch_low, uniq)
    low, high = [], []
    consume_into(ch_low, q, low, auto_ack=True)
    consume_into(ch_high, q, high, auto_ack=True, arguments={"x-priority": 10})
    for i in range(6):
        pub(ch_low, q, b"%d" % i)
    collect_deliveries(conn, high, 6)
    settle(conn, 0.1)
    assert len(high) == 6 and low == []


def test_lower_priority_consumer_gets_messages_when_higher_is_blocked(conn, uniq):
    ch_low, ch_high = conn.channel(), conn.channel()
    q = xq(ch_low, uniq)
    ch_high.basic_qos(prefetch_count=2)
    low, high = [], []
    consume_into(ch_low, q, low, auto_ack=True, arguments={"x-priority": -5})
    consume_into(ch_high, q, high, arguments={"x-priority": 5})
    for i in range(6):
        pub(ch_low, q, b"%d" % i)
    collect_deliveries(conn, low, 4)
    settle(conn, 0.1)
    assert [b for _, _, b in high] == [b"0", b"1"]
    assert [b for _, _, b in low] == [b"2", b"3", b"4", b"5"]
    # acking gives the higher one credit again: the next message is its
    ch_high.basic_ack(high[1][0].delivery_tag, multiple=True)
    settle(conn, 0.05)
    pub(ch_low, q, b"6")
    collect_deliveries(conn, high, 3)
    settle(conn, 0.1)
    assert [b for _, _, b in high] == [b"0", b"1", b"6"]
    assert len(low) == 4


# ----------------------------------------------------------------------- single active consumer

def test_single_active_consumer_only_first_gets_messages(conn, uniq, janitor):
    c1, c2 = conn.channel(), conn.channel()
    q = janitor.queue(uniq)
    c1.queue_declare(q, arguments={"x-single-active-consumer": True})
    first, second = [], []
    consume_into(c1, q, first, auto_ack=True)
    consume_into(c2, q, second, auto_ack=True)
    for i in range(5):
        pub(c1, q, b"%d" % i)
    collect_deliveries(conn, first, 5)
    settle(conn, 0.1)
    assert [b for _, _, b in first] == [b"0", b"1", b"2", b"3", b"4"]
    assert second == []
    assert c1.queue_declare(q, passive=True).method.consumer_count == 2


def test_single_active_consumer_next_takes_over_on_cancel(conn, uniq, janitor):
    c1, c2 = conn.channel(), conn.channel()
    q = janitor.queue(uniq)
    c1.queue_declare(q, arguments={"x-single-active-consumer": True})
    first, second = [], []
    tag = consume_into(c1, q, first, auto_ack=True)
    consume_into(c2, q, second, auto_ack=True)
    pub(c1, q, b"a")
    collect_deliveries(conn, first, 1)
    c1.basic_cancel(tag)
    pub(c1, q, b"b")
    pub(c1, q, b"c")
    collect_deliveries(conn, second, 2)
    assert [b for _, _, b in first] == [b"a"]
    assert [b for _, _, b in second] == [b"b", b"c"]


def test_single_active_consumer_connection_dies(broker, uniq, janitor):
    owner = pika_connect(broker)
    dying = pika_connect(broker)
    try:
        och = owner.channel()
        q = janitor.queue(uniq)
        och.queue_declare(q, arguments={"x-single-active-consumer": True})
        dch = dying.channel()
        first, second = [], []
        consume_into(dch, q, first)  # manual ack, never acks
        consume_into(och, q, second)
        pub(och, q, b"1")
        pub(och, q, b"2")
        collect_deliveries(dying, first, 2)
        settle(owner, 0.1)
        assert [b for _, _, b in first] == [b"1", b"2"] and second == []
        kill_socket(dying)
        collect_deliveries(owner, second, 2, timeout=5)
        assert [(b, m.redelivered) for m, _, b in second] == [(b"1", True), (b"2", True)]
        pub(och, q, b"3")
        collect_deliveries(owner, second, 3)
        assert [(b, m.redelivered) for m, _, b in second][2] == (b"3", False)
        for m, _p, _b in second:
            och.basic_ack(m.delivery_tag)
    finally:
        close_quietly(owner)
        try:
            dying.close()
        except Exception:
            pass


def test_single_active_consumer_invalid_value(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(uniq, exclusive=True, arguments={"x-single-active-consumer": "yes"})
    channel_closed(ei, 406, "PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for "
                            "queue '%s' in vhost '/': {unacceptable_type,longstr}" % uniq)
    round_trip(conn)


# ----------------------------------------------------------------------------- exclusive consumer

def test_exclusive_consumer_refuses_second_consumer(conn, ch, uniq):
    q = xq(ch, uniq)
    got = []
    consume_into(ch, q, got, auto_ack=True, exclusive=True)
    other = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        other.basic_consume(q, lambda *a: None)
    channel_closed(ei, 403, "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)
    pub(ch, q, b"still mine")
    collect_deliveries(conn, got, 1)
    assert [b for _, _, b in got] == [b"still mine"]


# ----------------------------------------------------------------------------- direct reply-to

def test_direct_reply_to_rpc(broker, conn, ch, uniq, janitor):
    server_q = janitor.queue(uniq)
    ch.queue_declare(server_q)
    replies = []
    tag = consume_into(ch, REPLY_TO, replies, auto_ack=True)
    pub(ch, server_q, b"request", reply_to=REPLY_TO, correlation_id="c-1")
    server = pika_connect(broker)
    try:
        sch = server.channel()
        _m, p, body = get_one(sch, server_q)
        assert body == b"request"
        assert p.correlation_id == "c-1"
        assert p.reply_to.startswith(REPLY_TO + ".")
        assert len(p.reply_to) > len(REPLY_TO) + 1
        # the rewritten name can be declared passively while the requester is there
        ok = sch.queue_declare(p.reply_to, passive=True).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (p.reply_to, 0, 1)
        pub(sch, p.reply_to, b"response", correlation_id=p.correlation_id)
        collect_deliveries(conn, replies, 1)
        m, rp, rbody = replies[0]
        assert rbody == b"response"
        assert rp.correlation_id == "c-1"
        assert m.consumer_tag == tag
        assert (m.exchange, m.routing_key) == ("", p.reply_to)
        assert m.redelivered is False
    finally:
        close_quietly(server)


def test_direct_reply_to_consume_with_ack_refused(conn, ch):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    channel_closed(ei, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")
    round_trip(conn)


def test_direct_reply_to_publish_without_consumer_refused(conn, ch, uniq):
    q = xq(ch, uniq)
    bad = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        pub(bad, q, b"x", reply_to=REPLY_TO)
        bad.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")
    assert message_count(ch, q) == 0
    round_trip(conn)


def test_direct_reply_to_consumer_is_per_channel(conn, ch, uniq):
    q = xq(ch, uniq)
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    other = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        pub(other, q, b"x", reply_to=REPLY_TO)
        other.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - fast reply consumer does not exist")


def test_direct_reply_to_second_consumer_refused(conn, ch):
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - reply consumer already set")
    round_trip(conn)


def test_direct_reply_to_mandatory_reply_to_gone_requester_returned(broker, conn, ch, uniq):
    server_q = xq(ch, uniq)
    requester = pika_connect(broker)
    try:
        rch = requester.channel()
        rch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
        pub(rch, server_q, b"req", reply_to=REPLY_TO)
        _m, p, _b = get_one(ch, server_q)
    finally:
        requester.close()
    returned = []
    ch.add_on_return_callback(lambda c, m, props, b: returned.append((m, b)))
    ch.basic_publish("", p.reply_to, b"late reply", mandatory=True)
    collect_deliveries(conn, returned, 1)
    assert len(returned) == 1
    m, b = returned[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key, b) == (
        312, "NO_ROUTE", "", p.reply_to, b"late reply")
    assert ch.is_open
    # non-mandatory: silently dropped; passive declare of the stale name is 404
    pub(ch, p.reply_to, b"dropped")
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(p.reply_to, passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % p.reply_to)
    round_trip(conn)


def test_direct_reply_to_passive_declare(ch):
    ok = ch.queue_declare(REPLY_TO, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)


def test_direct_reply_to_unknown_rewritten_name_is_404(conn, ch):
    name = REPLY_TO + ".nonsense"
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(name, passive=True)
    channel_closed(ei, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % name)
    round_trip(conn)


# ----------------------------------------------------------------------------- CC and BCC

def test_cc_and_bcc_route_to_extra_queues(ch, uniq):
    main, cc, bcc = (xq(ch, uniq + s) for s in ("-main", "-cc", "-bcc"))
    pub(ch, main, b"x", headers={"CC": [cc], "BCC": [bcc], "other": "kept"})
    for q in (main, cc, bcc):
        m, p, b = get_one(ch, q)
        assert b == b"x"
        assert (m.exchange, m.routing_key) == ("", main)
        assert p.headers == {"CC": [cc], "other": "kept"}, q
        assert_empty(ch, q)


def test_cc_bcc_through_direct_exchange(ch, uniq):
    x = uniq + "-x"
    ch.exchange_declare(x, "direct", auto_delete=True)
    qs = {k: xq(ch, "%s-%s" % (uniq, k)) for k in ("k1", "k2", "k3", "k4")}
    for k, q in qs.items():
        ch.queue_bind(q, x, routing_key=k)
    pub(ch, "k1", b"x", exchange=x, headers={"CC": ["k2", "nowhere"], "BCC": ["k3", "k1"]})
    for k in ("k1", "k2", "k3"):
        m, p, _b = get_one(ch, qs[k])
        assert m.routing_key == "k1"
        assert p.headers == {"CC": ["k2", "nowhere"]}
        assert_empty(ch, qs[k])  # one copy even when keys overlap
    assert_empty(ch, qs["k4"])


def test_bcc_only_header_removed_entirely(ch, uniq):
    main, bcc = xq(ch, uniq + "-main"), xq(ch, uniq + "-bcc")
    pub(ch, main, b"x", headers={"BCC": [bcc]})
    for q in (main, bcc):
        _m, p, _b = get_one(ch, q)
        assert not p.headers  # no BCC key left (RabbitMQ sends an empty table)


@pytest.mark.parametrize("header", ["CC", "BCC"])
def test_cc_bcc_must_be_arrays(conn, ch, uniq, header):
    q = xq(ch, uniq)
    bad = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        pub(bad, q, b"x", headers={header: q})
        bad.queue_declare("", exclusive=True)
    channel_closed(ei, 406, 'PRECONDITION_FAILED - invalid message: '
                            '{unacceptable_type_in_header,"%s",longstr}' % header)
    assert message_count(ch, q) == 0


# ----------------------------------------------------------------------------- validated user_id

def test_validated_user_id(conn, ch, uniq):
    q = xq(ch, uniq)
    pub(ch, q, b"me", user_id="guest")
    _m, p, b = get_one(ch, q)
    assert (b, p.user_id) == (b"me", "guest")
    bad = conn.channel()
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        pub(bad, q, b"not me", user_id="bob")
        bad.queue_declare("", exclusive=True)
    channel_closed(ei, 406, "PRECONDITION_FAILED - user_id property set to 'bob' but "
                            "authenticated user was 'guest'")
    assert message_count(ch, q) == 0


# ----------------------------------------------------------------------------- consumer timeout

@pytest.mark.warren_only
def test_consumer_timeout_closes_channel_and_requeues(make_broker, uniq):
    b = make_broker(config_text="consumer_timeout = 500\n")
    c = pika_connect(b)
    try:
        ch = c.channel()
        q = xq(ch, uniq)
        closed = []
        ch._impl.add_on_close_callback(lambda _ch, reason: closed.append(reason))
        got = []
        consume_into(ch, q, got)
        t0 = time.monotonic()
        pub(ch, q, b"slow")
        collect_deliveries(c, got, 1)
        assert len(got) == 1
        wait_closed(closed, c, 6)
        elapsed = time.monotonic() - t0
        assert closed, "channel was not closed by the consumer timeout"
        assert isinstance(closed[0], pexc.ChannelClosedByBroker)
        assert closed[0].reply_code == 406
        assert closed[0].reply_text == TIMEOUT_TEXT % 500
        assert elapsed >= 0.45
        ch2 = c.channel()
        m, _p, body = get_one(ch2, q)
        assert (body, m.redelivered) == (b"slow", True)
        round_trip(c)
    finally:
        close_quietly(c)


@pytest.mark.warren_only
def test_consumer_timeout_not_triggered_by_prompt_acks(make_broker, uniq):
    b = make_broker(config_text="consumer_timeout = 500\n")
    c = pika_connect(b)
    try:
        ch = c.channel()
        q = xq(ch, uniq)
        ch.basic_consume(q, lambda c_, m, p, body: c_.basic_ack(m.delivery_tag))
        for i in range(10):
            pub(ch, q, b"%d" % i)
            settle(c, 0.12)
        assert ch.is_open
        assert message_count(ch, q) == 0
    finally:
        close_quietly(c)


# ----------------------------------------------------------------------------- x-consistent-hash

def chash_exchange(ch, janitor, name, **args):
    janitor.exchange(name)
    ch.exchange_declare(name, "x-consistent-hash", arguments=args or None)
    return name


def test_consistent_hash_weights(ch, uniq, janitor):
    x = chash_exchange(ch, janitor, uniq + "-x")
    q1, q3 = xq(ch, uniq + "-w1"), xq(ch, uniq + "-w3")
    ch.queue_bind(q1, x, routing_key="1")
    ch.queue_bind(q3, x, routing_key="3")
    n = 2000
    for _ in range(n):
        pub(ch, uuid.uuid4().hex, b"", exchange=x)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        c1, c3 = message_count(ch, q1), message_count(ch, q3)
        if c1 + c3 == n:
            break
        time.sleep(0.05)
    assert c1 + c3 == n
    assert c1 > 0 and 1.8 <= c3 / c1 <= 5, (c1, c3)


def test_consistent_hash_same_key_same_queue(ch, uniq, janitor):
    x = chash_exchange(ch, janitor, uniq + "-x")
    qs = [xq(ch, "%s-%d" % (uniq, i)) for i in range(3)]
    for q in qs:
        ch.queue_bind(q, x, routing_key="1")
    keys = ["key-%d" % i for i in range(30)]
    for _ in range(4):
        for k in keys:
            pub(ch, k, k.encode(), exchange=x)
    where = {}
    total = 0
    for q in qs:
        for body in drain_bodies(ch, q, 200, timeout=0.5):
            total += 1
            where.setdefault(body, set()).add(q)
    assert total == 4 * len(keys)
    assert all(len(v) == 1 for v in where.values()), where
    assert len({next(iter(v)) for v in where.values()}) > 1  # spread over several queues


def test_consistent_hash_hash_header(ch, uniq, janitor):
    x = chash_exchange(ch, janitor, uniq + "-x", **{"hash-header": "shard"})
    qs = [xq(ch, "%s-%d" % (uniq, i)) for i in range(3)]
    for q in qs:
        ch.queue_bind(q, x, routing_key="1")
    # the routing key is ignored: equal header values go to one queue
    for i in range(20):
        pub(ch, "rk-%d" % i, b"same", exchange=x, headers={"shard": "tenant-42"})
    counts = [wait_message_count(ch, q, 20, timeout=0.3) for q in qs]
    assert sorted(counts) == [0, 0, 20]
    for q in qs:
        ch.queue_purge(q)
    for i in range(60):
        pub(ch, "fixed", b"v", exchange=x, headers={"shard": "tenant-%d" % i})
    time.sleep(0.2)
    counts = [message_count(ch, q) for q in qs]
    assert sum(counts) == 60 and max(counts) < 60, counts


def test_consistent_hash_hash_property(ch, uniq, janitor):
    x = chash_exchange(ch, janitor, uniq + "-x", **{"hash-property": "message_id"})
    qs = [xq(ch, "%s-%d" % (uniq, i)) for i in range(3)]
    for q in qs:
        ch.queue_bind(q, x, routing_key="1")
    for i in range(20):
        pub(ch, "rk-%d" % i, b"same", exchange=x, message_id="order-7")
    counts = [wait_message_count(ch, q, 20, timeout=0.3) for q in qs]
    assert sorted(counts) == [0, 0, 20]


def test_consistent_hash_non_integer_binding_key(conn, ch, uniq, janitor):
    x = chash_exchange(ch, janitor, uniq + "-x")
    q = xq(ch, uniq)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, routing_key="abc")
    channel_closed(ei, 406, 'PRECONDITION_FAILED - The binding key must be an integer: '
                            '<<"abc">>')
    round_trip(conn)


def test_consistent_hash_header_and_property_exclusive(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq, "x-consistent-hash", auto_delete=True,
                            arguments={"hash-header": "h", "hash-property": "message_id"})
    channel_closed(ei, 406, "PRECONDITION_FAILED - hash-header and hash-property are "
                            "mutually exclusive")
    round_trip(conn)


# ----------------------------------------------------------------------------- x-delayed-message

def delayed_setup(ch, janitor, uniq):
    x = janitor.exchange(uniq + "-x")
    ch.exchange_declare(x, "x-delayed-message", arguments={"x-delayed-type": "direct"})
    q = xq(ch, uniq)
    ch.queue_bind(q, x, routing_key="k")
    return x, q


@pytest.mark.warren_only
def test_delayed_message_arrives_after_delay(conn, ch, uniq, janitor):
    x, q = delayed_setup(ch, janitor, uniq)
    got = []
    consume_into(ch, q, got, auto_ack=True)
    t0 = time.monotonic()
    pub(ch, "k", b"later", exchange=x, headers={"x-delay": 300})
    settle(conn, 0.2)
    assert got == [], "delivered before the delay"
    collect_deliveries(conn, got, 1, timeout=3)
    elapsed = time.monotonic() - t0
    assert [b for _, _, b in got] == [b"later"]
    assert elapsed >= 0.25, elapsed
    m = got[0][0]
    assert (m.exchange, m.routing_key) == (x, "k")


@pytest.mark.warren_only
def test_delayed_message_without_delay_is_immediate(conn, ch, uniq, janitor):
    x, q = delayed_setup(ch, janitor, uniq)
    pub(ch, "k", b"now", exchange=x)
    pub(ch, "other", b"unrouted", exchange=x)
    assert get_one(ch, q, timeout=0.2)[2] == b"now"
    time.sleep(0.1)
    assert_empty(ch, q)


@pytest.mark.warren_only
def test_delayed_messages_ordered_by_due_time(conn, ch, uniq, janitor):
    x, q = delayed_setup(ch, janitor, uniq)
    got = []
    consume_into(ch, q, got, auto_ack=True)
    pub(ch, "k", b"300", exchange=x, headers={"x-delay": 300})
    pub(ch, "k", b"100", exchange=x, headers={"x-delay": 100})
    pub(ch, "other", b"lost", exchange=x, headers={"x-delay": 50})
    collect_deliveries(conn, got, 2, timeout=3)
    settle(conn, 0.1)
    assert [b for _, _, b in got] == [b"100", b"300"]


@pytest.mark.warren_only
def test_delayed_exchange_requires_delayed_type(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uniq, "x-delayed-message")
    channel_closed(ei, 406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be "
                            "an existing exchange type")
    round_trip(conn)


# ----------------------------------------------------------------------------- queue arguments

@pytest.mark.parametrize("arg,value", [
    ("x-queue-type", "classic"),
    ("x-queue-mode", "lazy"),
    ("x-queue-mode", "default"),
    ("x-queue-version", 1),
    ("x-queue-version", 2),
    ("x-unknown-argument", "whatever"),
], ids=["type-classic", "mode-lazy", "mode-default", "version-1", "version-2", "unknown"])
def test_queue_argument_accepted(ch, uniq, arg, value):
    ok = ch.queue_declare(uniq, exclusive=True, arguments={arg: value}).method
    assert ok.queue == uniq
    pub(ch, uniq, b"works")
    assert get_one(ch, uniq)[2] == b"works"


@pytest.mark.warren_only
@pytest.mark.parametrize("qtype", ["quorum", "stream"])
def test_unsupported_queue_types_refused(conn, ch, uniq, janitor, qtype):
    janitor.queue(uniq)
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(uniq, durable=True, arguments={"x-queue-type": qtype})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text.startswith("PRECONDITION_FAILED - ")
    assert qtype in ei.value.reply_text
    round_trip(conn)


INVALID_ARGS = [
    ("x-message-ttl", -1, "{value_negative,-1}"),
    ("x-message-ttl", "abc", '"expected integer, got longstr"'),
    ("x-expires", 0, "{value_zero,0}"),
    ("x-expires", -1, "{value_negative,-1}"),
    ("x-max-length", "abc", '"expected integer, got longstr"'),
    ("x-max-length-bytes", -1, "{value_negative,-1}"),
    ("x-max-priority", 256, "{max_value_exceeded,256}"),
    ("x-max-priority", -1, "{value_negative,-1}"),
    ("x-overflow", "bogus", "invalid_overflow"),
    ("x-single-active-consumer", "yes", "{unacceptable_type,longstr}"),
    ("x-queue-type", "bogus", "\"unsupported queue type 'bogus'\""),
    ("x-queue-mode", "bogus", "\"unsupported queue mode 'bogus'\""),
    ("x-queue-version", 3, "\"unsupported queue version '3'\""),
]


@pytest.mark.parametrize("arg,value,detail", INVALID_ARGS,
                         ids=["%s=%s" % (a, v) for a, v, _ in INVALID_ARGS])
def test_queue_argument_invalid(conn, ch, uniq, arg, value, detail):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(uniq, exclusive=True, arguments={arg: value})
    channel_closed(ei, 406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost "
                            "'/': %s" % (arg, uniq, detail))
    round_trip(conn)


def test_dead_letter_routing_key_without_exchange(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(uniq, exclusive=True, arguments={"x-dead-letter-routing-key": "k"})
    channel_closed(ei, 406, "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' "
                            "for queue '%s' in vhost '/': routing_key_but_no_dlx_defined" % uniq)
    round_trip(conn)


def test_dead_letter_exchange_wrong_type(conn, ch, uniq):
    with pytest.raises(pexc.ChannelClosedByBroker) as ei:
        ch.queue_declare(uniq, exclusive=True, arguments={"x-dead-letter-exchange": 5})
    channel_closed(ei, 406, "PRECONDITION_FAILED - invalid type 'signedint' for arg "
                            "'x-dead-letter-exchange' in queue '%s' in vhost '/'" % uniq)
    round_trip(conn)
