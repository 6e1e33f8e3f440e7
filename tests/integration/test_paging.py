"""Paging: queues longer than their memory limit keep the rest in SQLite (lazy queues).

Covers: basic.get on a queue whose head is paged out waits for the read instead of
answering get-empty; x-queue-mode=lazy and the queue_memory_limit setting page transient messages out
(swap rows appear in warren.db) and every message comes back once, in order, with its body;
requeued messages keep their place ahead of paged ones; per-message TTL still applies to
paged messages; purge and delete count and drop the paged part (and its rows); a message
fanned out to two lazy queues reaches both; persistent messages beyond the recovery window
come back after a restart in order, with redelivered set on those delivered before; memory
pressure (vm_memory_high_watermark_paging_ratio) pages out a default queue; priority queues
are not paged and keep working; flow control pauses a publisher (even one without
heartbeats) while the store's writer catches up and while a queue is consumed slower than it
is filled, and every message still arrives in order; a consumer whose prefetch is full and
never acks does not hold publishers back; pipelined basic.gets that outrun the store's reads
wait for the paged-out head instead of answering get-empty; memory pressure pages a queue out
from the broker's periodic check too.
"""
import os
import sqlite3
import time

import pika
import pytest

from helpers import wait_for

pytestmark = pytest.mark.warren_only

BODY = b"x" * 1000


def db_count(broker, sql):
    # WAL lets a reader in while the broker writes; read-only so the test never locks it.
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(broker.data_dir, "warren.db"),
                          uri=True, timeout=10)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def swap_rows(broker, queue):
    return db_count(broker, "SELECT count(*) FROM entries WHERE transient = 1 AND queue = '%s'" % queue)


def publish_numbered(ch, queue, n, start=0, persistent=False, exchange="", **props):
    for i in range(start, start + n):
        ch.basic_publish(exchange, queue, b"%08d" % i + BODY,
                         pika.BasicProperties(delivery_mode=2 if persistent else 1, **props))


def drain(ch, queue, expected, ack=True):
    """basic.get `expected` times; returns (numbers, redelivered flags). A paged-out head is
    read back before basic.get answers, so get-empty never comes while messages are left."""
    got, redelivered = [], []
    while len(got) < expected:
        m, props, body = ch.basic_get(queue, auto_ack=ack)
        assert m is not None, "get-empty after %d of %d messages" % (len(got), expected)
        got.append(int(body[:8]))
        redelivered.append(m.redelivered)
    return got, redelivered


def fill_paged(ch, broker, queue, n, arguments=None, **props):
    """Declares `queue` (lazy unless `arguments` say otherwise), publishes n numbered
    messages, and waits until some of them are paged out to the store."""
    ch.queue_declare(queue, arguments={"x-queue-mode": "lazy"} if arguments is None else arguments)
    publish_numbered(ch, queue, n, **props)
    assert wait_for(lambda: swap_rows(broker, queue) > 0)


def assert_pages_then_drains(broker, queue, n):
    """A default queue on `broker` pages n published messages out and gives them all back."""
    conn = pika.BlockingConnection(broker.pika_params())
    ch = conn.channel()
    fill_paged(ch, broker, queue, n, arguments={})
    got, _ = drain(ch, queue, n)
    assert got == list(range(n))
    conn.close()


def consume_all(conn, ch, queue, expected, prefetch=200):
    got = []
    ch.basic_qos(prefetch_count=prefetch)

    def on_msg(c, m, p, body):
        got.append(int(body[:8]))
        c.basic_ack(m.delivery_tag)

    tag = ch.basic_consume(queue, on_msg)
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    ch.basic_cancel(tag)
    return got


def test_lazy_queue_pages_out_and_delivers_everything_in_order(fresh_broker, uniq):
    conn = pika.BlockingConnection(fresh_broker.pika_params())
    ch = conn.channel()
    ch.queue_declare(uniq, arguments={"x-queue-mode": "lazy"})
    n = 12000  # 12 MB of bodies: well past the lazy window
    publish_numbered(ch, uniq, n)
    assert ch.queue_declare(uniq, passive=True).method.message_count == n
    assert wait_for(lambda: swap_rows(fresh_broker, uniq) > 0)
    got = consume_all(conn, ch, uniq, n)
    assert got == list(range(n))
    assert ch.queue_declare(uniq, passive=True).method.message_count == 0
    assert wait_for(lambda: swap_rows(fresh_broker, uniq) == 0)
    # Paging stops once the queue is short again: new messages stay in memory.
    publish_numbered(ch, uniq, 10, start=n)
    assert drain(ch, uniq, 10)[0] == list(range(n, n + 10))
    conn.close()


def test_queue_memory_limit_setting_pages_a_default_queue(make_broker, uniq):
    assert_pages_then_drains(make_broker(config_text="queue_memory_limit = 1MB\n"), uniq, 8000)


def test_requeued_messages_keep_their_place_ahead_of_paged_ones(fresh_broker, uniq):
    conn = pika.BlockingConnection(fresh_broker.pika_params())
    ch = conn.channel()
    fill_paged(ch, fresh_broker, uniq, 8000)
    taken = []
    for _ in range(5):
        m, _, body = ch.basic_get(uniq, auto_ack=False)
        taken.append((m.delivery_tag, int(body[:8])))
    assert [t[1] for t in taken] == list(range(5))
    for tag, _ in taken:
        ch.basic_nack(tag, requeue=True)
    got, redelivered = drain(ch, uniq, 8000)
    assert got == list(range(8000))
    assert redelivered[:5] == [True] * 5 and not any(redelivered[5:])
    conn.close()


def test_ttl_applies_to_paged_messages(fresh_broker, uniq):
    conn = pika.BlockingConnection(fresh_broker.pika_params())
    ch = conn.channel()
    fill_paged(ch, fresh_broker, uniq, 6000, expiration="300")
    publish_numbered(ch, uniq, 3, start=6000)  # no TTL
    time.sleep(0.6)
    got, _ = drain(ch, uniq, 3)
    assert got == [6000, 6001, 6002]
    assert ch.queue_declare(uniq, passive=True).method.message_count == 0
    conn.close()


def test_purge_and_delete_drop_the_paged_part(fresh_broker, uniq):
    conn = pika.BlockingConnection(fresh_broker.pika_params())
    ch = conn.channel()
    for q in (uniq + "-p", uniq + "-d"):
        fill_paged(ch, fresh_broker, q, 7000)
    assert ch.queue_purge(uniq + "-p").method.message_count == 7000
    assert ch.queue_delete(uniq + "-d").method.message_count == 7000
    assert wait_for(lambda: swap_rows(fresh_broker, uniq + "-p") == 0)
    assert wait_for(lambda: swap_rows(fresh_broker, uniq + "-d") == 0)
    assert ch.queue_declare(uniq + "-p", passive=True).method.message_count == 0
    # The purged queue works normally afterwards.
    publish_numbered(ch, uniq + "-p", 3)
    assert drain(ch, uniq + "-p", 3)[0] == [0, 1, 2]
    conn.close()


def test_fanout_to_two_lazy_queues_reaches_both(fresh_broker, uniq):
    conn = pika.BlockingConnection(fresh_broker.pika_params())
    ch = conn.channel()
    ch.exchange_declare(uniq, "fanout")
    for q in ("a", "b"):
        ch.queue_declare(uniq + q, arguments={"x-queue-mode": "lazy"})
        ch.queue_bind(uniq + q, uniq)
    publish_numbered(ch, "", 6000, exchange=uniq)
    for q in ("a", "b"):
        assert wait_for(lambda: swap_rows(fresh_broker, uniq + q) > 0)
    # Drain a partly, then b fully, then the rest of a: shared swap rows stay until both read.
    first, _ = drain(ch, uniq + "a", 3000)
    all_b, _ = drain(ch, uniq + "b", 6000)
    assert all_b == list(range(6000))
    assert swap_rows(fresh_broker, uniq + "a") > 0
    assert db_count(fresh_broker, "SELECT count(*) FROM messages") > 0
    rest, _ = drain(ch, uniq + "a", 3000)
    assert first + rest == list(range(6000))
    assert wait_for(lambda: db_count(fresh_broker, "SELECT count(*) FROM messages") == 0)
    conn.close()


def test_persistent_backlog_beyond_the_window_survives_restart(make_broker, uniq):
    b = make_broker(config_text="queue_memory_limit = 1MB\n")
    conn = pika.BlockingConnection(b.pika_params())
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(uniq, durable=True)
    publish_numbered(ch, uniq, 5000, persistent=True)
    # Two delivered before the restart (not acked): they come back redelivered.
    m1 = ch.basic_get(uniq, auto_ack=False)[0]
    m2 = ch.basic_get(uniq, auto_ack=False)[0]
    assert (m1.delivery_tag, m2.delivery_tag) == (1, 2)
    conn.close()
    b.restart()
    conn = pika.BlockingConnection(b.pika_params())
    ch = conn.channel()
    assert ch.queue_declare(uniq, durable=True, passive=True).method.message_count == 5000
    got, redelivered = drain(ch, uniq, 5000)
    assert got == list(range(5000))
    assert redelivered[:2] == [True, True] and not any(redelivered[2:])
    conn.close()
    assert wait_for(lambda: db_count(b, "SELECT count(*) FROM entries") == 0)


def test_memory_pressure_pages_out_transient_messages(make_broker, uniq):
    # The paging threshold (ratio x watermark) is a few MB: the broker is always above it.
    b = make_broker(config_text="vm_memory_high_watermark.absolute = 4GB\n"
                                "vm_memory_high_watermark_paging_ratio = 0.001\n")
    assert_pages_then_drains(b, uniq, 6000)
    # 3 MB stays under the publish-time trigger (1 MiB kept + a 4 MiB batch): only the
    # broker's periodic check under memory pressure pages this queue out.
    conn = pika.BlockingConnection(b.pika_params())
    ch = conn.channel()
    fill_paged(ch, b, uniq + "-tick", 3000, arguments={})
    assert drain(ch, uniq + "-tick", 3000)[0] == list(range(3000))
    conn.close()


def test_priority_queue_is_not_paged(fresh_broker, uniq):
    conn = pika.BlockingConnection(fresh_broker.pika_params())
    ch = conn.channel()
    ch.queue_declare(uniq, arguments={"x-queue-mode": "lazy", "x-max-priority": 5})
    publish_numbered(ch, uniq, 6000)
    ch.basic_publish("", uniq, b"%08d" % 999999 + BODY, pika.BasicProperties(priority=5))
    # The same load pages a lazy queue without priorities out.
    fill_paged(ch, fresh_broker, uniq + "-control", 6000)
    assert swap_rows(fresh_broker, uniq) == 0
    got, _ = drain(ch, uniq, 6001)
    assert got == [999999] + list(range(6000))
    conn.close()


def test_flow_control_pauses_a_publisher_while_the_store_catches_up(make_broker, uniq):
    # A 200 KB store backlog limit: persistent 20 KB messages trip it almost at once.
    b = make_broker(extra_args=["--log-level", "debug"],
                    config_text="store_backlog_limit = 200KB\n")
    # No heartbeats: while it is paused nothing else keeps the connection's session alive
    # (it once was dropped, and the client saw a reset).
    conn = pika.BlockingConnection(b.pika_params(heartbeat=0))
    ch = conn.channel()
    ch.queue_declare(uniq, durable=True)
    body = b"y" * 20000
    n = 3000
    for i in range(n):
        ch.basic_publish("", uniq, b"%08d" % i + body, pika.BasicProperties(delivery_mode=2))
    # Nothing lost, nothing stuck: every message is there once the publisher is read again.
    assert wait_for(lambda: ch.queue_declare(uniq, durable=True, passive=True)
                    .method.message_count == n, timeout=60)
    assert "flow (store backlog" in b.log()
    got, _ = drain(ch, uniq, n)
    assert got == list(range(n))
    conn.close()


def test_flow_control_paces_a_publisher_to_a_slow_consumer(make_broker, uniq):
    import threading
    b = make_broker(extra_args=["--log-level", "debug"])
    n = 30000
    got = []
    slow_until = time.monotonic() + 3.0

    def consume():
        conn = pika.BlockingConnection(b.pika_params())
        ch = conn.channel()

        def on_msg(c, m, p, body):
            got.append(int(body[:8]))
            if time.monotonic() < slow_until:
                time.sleep(0.001)  # slower than the publisher for the first seconds

        ch.basic_consume(uniq, on_msg, auto_ack=True)
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        conn.close()

    setup = pika.BlockingConnection(b.pika_params())
    setup.channel().queue_declare(uniq)
    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    pub = pika.BlockingConnection(b.pika_params(heartbeat=0))
    ch = pub.channel()
    publish_numbered(ch, uniq, n)  # 30 MB: far more than the 8 MiB flow threshold
    t.join(timeout=90)
    assert got == list(range(n))
    assert "is consumed slower than it is filled" in b.log()
    assert pub.is_open
    pub.close()
    setup.close()


def test_pipelined_gets_wait_for_the_paged_out_head(make_broker, uniq):
    import pika.spec as spec
    import rawamqp
    b = make_broker(extra_args=["--log-level", "debug"])
    conn = pika.BlockingConnection(b.pika_params())
    ch = conn.channel()
    ch.queue_declare(uniq, arguments={"x-queue-mode": "lazy"})
    n = 8000
    publish_numbered(ch, uniq, n)
    assert wait_for(lambda: swap_rows(b, uniq) > 0)
    conn.close()
    # All the gets in one write: the broker handles them in one pass, faster than a batch
    # can come back from the store, so some find the head paged out and must wait for it.
    with rawamqp.RawConnection(b.host, b.port, timeout=30) as raw:
        raw.handshake()
        raw.open_channel(1)
        frames = b"".join(rawamqp.method_frame(1, spec.Basic.Get(queue=uniq, no_ack=True))
                          for _ in range(n))
        frames += rawamqp.method_frame(1, spec.Queue.Declare(queue=uniq, passive=True))
        raw.send(frames)
        got = []
        for _ in range(n):
            m = raw.recv_method()
            assert isinstance(m.method, spec.Basic.GetOk), "got %r after %d" % (m.method, len(got))
            raw.recv_frame()  # content header
            body = b""
            while len(body) < 8:
                body += raw.recv_frame().fragment
            got.append(int(body[:8]))
        assert got == list(range(n))
        ok = raw.expect(spec.Queue.DeclareOk, channel=1)
        assert ok.message_count == 0
    assert "waits for its paged-out head" in b.log()


def test_a_consumer_that_stopped_taking_does_not_hold_publishers_back(make_broker, uniq):
    # Its prefetch is full and it never acks: the queue is not being drained, so flow control
    # lets go (after at most a second) and the backlog simply grows, as RabbitMQ's would.
    b = make_broker()
    stuck = pika.BlockingConnection(b.pika_params())
    sch = stuck.channel()
    sch.queue_declare(uniq)
    sch.basic_qos(prefetch_count=100)
    sch.basic_consume(uniq, lambda *a: None)
    pub = pika.BlockingConnection(b.pika_params(heartbeat=0))
    ch = pub.channel()
    n = 30000
    publish_numbered(ch, uniq, n)  # 30 MB, far past the 8 MiB flow threshold
    assert wait_for(lambda: ch.queue_declare(uniq, passive=True).method.message_count
                    == n - 100, timeout=30)
    assert pub.is_open
    pub.close()
    stuck.close()
