"""Durable storage: what survives a clean restart, a kill -9, and a crash at a random moment.

Covers: durable exchanges, queues and bindings come back, transient/exclusive/auto-delete
ones do not; persistent messages of durable queues come back in order, transient messages
and messages of non-durable queues do not; delivered-but-unacked messages come back with
redelivered set; acked, purged and deleted ones stay gone; a message routed to several
durable queues comes back in each; every confirmed message survives SIGKILL at a random
moment with no duplicates; a foreign or damaged database file is refused with a clear error.
"""
import os
import random
import signal
import subprocess
import threading
import time

import pika
import pytest

from conftest import WARREN_BIN, free_port, start_warren

pytestmark = pytest.mark.warren_only

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def connect(b):
    return pika.BlockingConnection(b.pika_params(blocked_connection_timeout=10))


def restart(b, sig=signal.SIGTERM):
    b.stop(sig=sig)
    return b.restart()


def drain(ch, q, limit=100000):
    got = []
    while len(got) < limit:
        m, props, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append((body, m.redelivered))
    return got


@pytest.fixture
def durable_broker(tmp_path):
    b = start_warren(str(tmp_path))
    yield b
    b.stop()


def test_durable_topology_survives_restart(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.exchange_declare("dx", "topic", durable=True)
    ch.exchange_declare("tx", "fanout", durable=False)
    ch.exchange_declare("ax", "direct", durable=True, arguments={"alternate-exchange": "dx"})
    ch.queue_declare("dq", durable=True, arguments={"x-max-length": 10})
    ch.queue_declare("tq", durable=False)
    ch.queue_declare("adq", durable=True, auto_delete=True)
    ch.queue_bind("dq", "dx", "a.#")
    ch.exchange_bind("dx", "ax", "a.e2e")  # destination dx, source ax
    ch.queue_bind("tq", "dx", "b.#")
    c.close()
    restart(b)
    c = connect(b)
    ch = c.channel()
    ch.exchange_declare("dx", "topic", durable=True, passive=True)
    ch.exchange_declare("ax", "direct", durable=True, arguments={"alternate-exchange": "dx"})
    ok = ch.queue_declare("dq", durable=True, arguments={"x-max-length": 10}).method
    assert ok.message_count == 0
    for gone in ("tq", "adq"):
        ch2 = c.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch2.queue_declare(gone, passive=True)
        assert ei.value.reply_code == 404
    ch3 = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch3.exchange_declare("tx", passive=True)
    # The bindings came back: through ax (e2e binding) and dx to dq.
    ch4 = c.channel()
    ch4.basic_publish("ax", "a.e2e", b"via-e2e")   # ax -> dx (e2e binding) -> dq (a.#)
    ch4.basic_publish("dx", "a.x", b"direct")
    ch4.basic_publish("ax", "zzz", b"via-alternate")  # unroutable in ax -> dx -> nowhere
    time.sleep(0.1)
    assert [body for body, _ in drain(ch4, "dq")] == [b"via-e2e", b"direct"]
    c.close()


def test_persistent_messages_survive_in_order(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("pq", durable=True)
    ch.queue_declare("nq", durable=False)
    for i in range(50):
        ch.basic_publish("", "pq", b"p%d" % i, PERSISTENT)
    ch.basic_publish("", "pq", b"transient")
    ch.basic_publish("", "nq", b"in-transient-queue", PERSISTENT)
    c.close()
    restart(b)
    c = connect(b)
    ch = c.channel()
    got = drain(ch, "pq")
    assert [body for body, _ in got] == [b"p%d" % i for i in range(50)]
    assert all(not redelivered for _, redelivered in got)
    c.close()


def test_kill_9_keeps_confirmed_messages(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("kq", durable=True)
    for i in range(200):
        ch.basic_publish("", "kq", b"m%d" % i, PERSISTENT)  # returns after the confirm
    restart(b, sig=signal.SIGKILL)
    c = connect(b)
    ch = c.channel()
    assert [body for body, _ in drain(ch, "kq")] == [b"m%d" % i for i in range(200)]
    c.close()


def test_unacked_come_back_redelivered_and_acked_do_not(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("uq", durable=True)
    for i in range(6):
        ch.basic_publish("", "uq", b"u%d" % i, PERSISTENT)
    m0 = ch.basic_get("uq", auto_ack=False)[0]
    ch.basic_ack(m0.delivery_tag)          # u0 acked: gone
    ch.basic_get("uq", auto_ack=False)     # u1 delivered, never acked
    ch.basic_get("uq", auto_ack=True)      # u2 taken with auto-ack: gone
    # Let the ack and deliveries reach the store before the crash.
    ch.queue_declare("uq", durable=True, passive=True)
    time.sleep(0.3)
    restart(b, sig=signal.SIGKILL)
    c = connect(b)
    ch = c.channel()
    got = drain(ch, "uq")
    assert got == [(b"u1", True), (b"u3", False), (b"u4", False), (b"u5", False)]
    c.close()


def test_message_in_several_durable_queues(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.exchange_declare("fan", "fanout", durable=True)
    for q in ("f1", "f2", "f3"):
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, "fan")
    ch.basic_publish("fan", "", b"everywhere", PERSISTENT)
    ch.basic_get("f2", auto_ack=True)  # consumed from one queue only
    ch.queue_declare("f2", durable=True, passive=True)
    time.sleep(0.2)
    restart(b)
    c = connect(b)
    ch = c.channel()
    assert [body for body, _ in drain(ch, "f1")] == [b"everywhere"]
    assert drain(ch, "f2") == []
    assert [body for body, _ in drain(ch, "f3")] == [b"everywhere"]
    c.close()


def test_purge_and_delete_are_durable(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("purged", durable=True)
    ch.queue_declare("deleted", durable=True)
    for q in ("purged", "deleted"):
        for i in range(5):
            ch.basic_publish("", q, b"x", PERSISTENT)
    assert ch.queue_purge("purged").method.message_count == 5
    ch.queue_delete("deleted")
    restart(b)
    c = connect(b)
    ch = c.channel()
    assert ch.queue_declare("purged", durable=True, passive=True).method.message_count == 0
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare("deleted", passive=True)
    c.close()


def test_transaction_commit_is_durable(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.queue_declare("txq", durable=True)
    ch.tx_select()
    ch.basic_publish("", "txq", b"committed", PERSISTENT)
    ch.tx_commit()
    ch.basic_publish("", "txq", b"rolled-back", PERSISTENT)
    ch.tx_rollback()
    restart(b, sig=signal.SIGKILL)
    c = connect(b)
    ch = c.channel()
    assert [body for body, _ in drain(ch, "txq")] == [b"committed"]
    c.close()


def test_dead_lettered_persistent_message_survives(durable_broker):
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.exchange_declare("dlx", "fanout", durable=True)
    ch.queue_declare("dlq", durable=True)
    ch.queue_bind("dlq", "dlx")
    ch.queue_declare("src", durable=True, arguments={"x-dead-letter-exchange": "dlx"})
    ch.basic_publish("", "src", b"dead", PERSISTENT)
    m = ch.basic_get("src", auto_ack=False)[0]
    ch.basic_reject(m.delivery_tag, requeue=False)
    ch.queue_declare("dlq", durable=True, passive=True)
    time.sleep(0.2)
    restart(b)
    c = connect(b)
    ch = c.channel()
    m, props, body = ch.basic_get("dlq", auto_ack=True)
    assert body == b"dead"
    assert props.headers["x-death"][0]["reason"] == "rejected"
    assert drain(ch, "src") == []
    c.close()


def test_random_sigkill_loses_no_confirmed_message(tmp_path):
    """Publishes with confirms while the broker is killed at a random moment; after the
    restart every confirmed message is there, once (unconfirmed ones may or may not be)."""
    rnd = random.Random(os.getpid())
    for round_no in range(3):
        d = tmp_path / ("r%d" % round_no)
        d.mkdir()
        b = start_warren(str(d))
        confirmed = []
        done = threading.Event()

        def publisher():
            try:
                c = connect(b)
                ch = c.channel()
                ch.confirm_delivery()
                ch.queue_declare("crash", durable=True)
                i = 0
                while not done.is_set():
                    body = b"c%d" % i
                    ch.basic_publish("", "crash", body, PERSISTENT)
                    confirmed.append(body)  # basic_publish returned: the broker confirmed it
                    i += 1
            except Exception:
                pass

        t = threading.Thread(target=publisher, daemon=True)
        t.start()
        time.sleep(0.3 + rnd.random() * 0.7)
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(timeout=10)
        done.set()
        t.join(timeout=10)
        b.restart()
        try:
            c = connect(b)
            ch = c.channel()
            got = [body for body, _ in drain(ch, "crash")]
            c.close()
        finally:
            b.stop()
        assert len(confirmed) > 0
        assert len(got) == len(set(got)), "duplicated messages after recovery"
        missing = set(confirmed) - set(got)
        assert not missing, "%d confirmed messages lost" % len(missing)
        # Order is kept: what came back is a prefix-ordered sequence.
        nums = [int(x[1:]) for x in got]
        assert nums == sorted(nums)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100,
                                     b"SQLite format 3\x00" + b"\x00" * 4000])
def test_foreign_or_damaged_database_refused(tmp_path, content):
    (tmp_path / "warren.db").write_bytes(content)
    r = subprocess.run([WARREN_BIN, "--amqp-port", str(free_port()), "--http-port", "0",
                        "--bind", "127.0.0.1", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "warren.db" in r.stderr or "data directory" in r.stderr
    assert "Segmentation" not in r.stderr


def test_other_sqlite_database_refused(tmp_path):
    import sqlite3
    db = sqlite3.connect(str(tmp_path / "warren.db"))
    db.execute("create table something_else (x)")
    db.commit()
    db.close()
    r = subprocess.run([WARREN_BIN, "--amqp-port", str(free_port()), "--http-port", "0",
                        "--bind", "127.0.0.1", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "not a Warren database" in r.stderr


def test_delayed_messages_survive_restart(durable_broker):
    """x-delayed-message: a held message comes back after a restart and is delivered when
    due; the delay keeps running while the broker is down."""
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.exchange_declare("later", "x-delayed-message", durable=True,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_declare("due", durable=True)
    ch.queue_bind("due", "later", "k")
    t0 = time.monotonic()
    ch.basic_publish("later", "k", b"after-restart",
                     pika.BasicProperties(delivery_mode=2, headers={"x-delay": 1500}))
    assert drain(ch, "due") == []
    restart(b, sig=signal.SIGKILL)
    c = connect(b)
    ch = c.channel()
    got = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        got = drain(ch, "due")
        time.sleep(0.05)
    assert [body for body, _ in got] == [b"after-restart"]
    assert time.monotonic() - t0 >= 1.4
    c.close()
    # Delivered once: after another restart it is neither held nor queued twice.
    restart(b)
    c = connect(b)
    ch = c.channel()
    time.sleep(0.3)
    assert drain(ch, "due") == []
    c.close()


def test_database_space_is_reused(durable_broker):
    """Consumed messages' space is reused: rounds of publish-then-ack do not grow the file."""
    b = durable_broker
    c = connect(b)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("churn", durable=True)
    body = b"z" * 4096
    sizes = []

    def db_size():
        total = 0
        for name in ("warren.db", "warren.db-wal"):
            p = os.path.join(b.data_dir, name)
            if os.path.exists(p):
                total += os.path.getsize(p)
        return total

    for _ in range(4):
        for i in range(1500):
            ch.basic_publish("", "churn", body, PERSISTENT)
        got = 0
        for method, _, _ in ch.consume("churn", inactivity_timeout=2):
            if method is None:
                break
            got += 1
            if got % 100 == 0 or got == 1500:
                ch.basic_ack(method.delivery_tag, multiple=True)
            if got == 1500:
                break
        ch.cancel()
        ch.queue_declare("churn", durable=True, passive=True)
        time.sleep(0.3)
        sizes.append(db_size())
    assert sizes[-1] <= sizes[0] * 1.5 + 8 * 1024 * 1024, sizes
    c.close()
