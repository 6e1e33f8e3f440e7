"""Resource alarms: memory high watermark and disk free limit block publishers.

Covers: with an alarm on, a connection that publishes receives connection.blocked (it
advertises the capability) and is no longer read, so its messages do not arrive; a
connection that only consumes keeps draining; connection.unblocked when the alarm clears
(disk: free space comes back), after which the held publishes go through; the rabbitmq.conf
keys vm_memory_high_watermark.absolute and disk_free_limit.absolute with units.
"""
import os
import shutil
import time

import pika
import pytest

pytestmark = pytest.mark.warren_only


def blocked_events(conn):
    events = []
    conn.add_on_connection_blocked_callback(lambda c, m: events.append(("blocked", m.method.reason)))
    conn.add_on_connection_unblocked_callback(lambda c, m: events.append(("unblocked", None)))
    return events


def pump(conn, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)


def test_memory_alarm_blocks_publisher_not_consumer(make_broker):
    b = make_broker(config_text="vm_memory_high_watermark.absolute = 1MB\n")
    consumer = pika.BlockingConnection(b.pika_params())
    cch = consumer.channel()
    cch.queue_declare("mem-q")
    publisher = pika.BlockingConnection(b.pika_params())
    events = blocked_events(publisher)
    pch = publisher.channel()
    pch.basic_publish("", "mem-q", b"first")   # publishing marks it a publisher
    pump(publisher, 1.0)
    assert events and events[0] == ("blocked", "low on memory")
    # While blocked, the publisher's frames are not read: nothing more arrives.
    pch.basic_publish("", "mem-q", b"held")
    pump(publisher, 0.5)
    ok = cch.queue_declare("mem-q", passive=True).method
    assert ok.message_count == 1
    # The consumer's connection is not blocked and drains the queue.
    m, _, body = cch.basic_get("mem-q", auto_ack=True)
    assert body == b"first"
    consumer.close()


def test_disk_alarm_blocks_and_clears(make_broker, tmp_path):
    usage = shutil.disk_usage(str(tmp_path))
    limit = usage.free - 64 * 1024 * 1024
    b = make_broker(config_text="disk_free_limit.absolute = %d\n" % limit)
    publisher = pika.BlockingConnection(b.pika_params())
    events = blocked_events(publisher)
    ch = publisher.channel()
    ch.queue_declare("disk-q")
    ch.basic_publish("", "disk-q", b"before")
    pump(publisher, 0.5)
    assert events == []
    filler = os.path.join(b.data_dir, "filler.bin")
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(256):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    try:
        pump(publisher, 1.5)
        assert ("blocked", "low on disk space") in events
        ch.basic_publish("", "disk-q", b"during")
        pump(publisher, 0.3)
    finally:
        os.remove(filler)
    pump(publisher, 1.5)
    assert events[-1] == ("unblocked", None)
    # The publish held during the alarm is read and delivered now.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if ch.queue_declare("disk-q", passive=True).method.message_count == 2:
            break
        pump(publisher, 0.1)
    assert ch.queue_declare("disk-q", passive=True).method.message_count == 2
    publisher.close()


def test_alarm_config_units_are_parsed(make_broker):
    b = make_broker(config_text="vm_memory_high_watermark.relative = 0.5\n"
                                "disk_free_limit.absolute = 1GB\n")
    c = pika.BlockingConnection(b.pika_params())
    c.close()


def test_alarm_bad_value_refused(tmp_path):
    import subprocess
    from conftest import WARREN_BIN, free_port
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text("disk_free_limit.absolute = lots\n")
    r = subprocess.run([WARREN_BIN, "--config", str(cfg), "--amqp-port", str(free_port()),
                        "--http-port", "0", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "rabbitmq.conf:1" in r.stderr
