"""The warren process: flags, rabbitmq.conf, listening banner, clean shutdown, timeouts.

Covers: --amqp-port/--bind/--data-dir/--config/--http-port flags; config keys overriding
defaults and flags overriding the file; unknown keys warned about; bad values refused with
file:line; SIGTERM and SIGINT close client connections with 320 CONNECTION_FORCED and exit
within a few seconds; the handshake timeout; heartbeats sent, and a silent client dropped.
"""
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pika
import pika.exceptions as pexc
import pytest

from conftest import WARREN_BIN, free_port, start_warren

pytestmark = pytest.mark.warren_only


def test_prints_where_it_listens(make_broker):
    b = make_broker()
    log = b.log()
    assert "listening for AMQP on 127.0.0.1:%d" % b.port in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_connections_with_320_and_exits(make_broker, sig):
    b = make_broker()
    conn = pika.BlockingConnection(b.pika_params())
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)

    start = time.monotonic()
    b.proc.send_signal(sig)
    with pytest.raises(pexc.ConnectionClosedByBroker) as ei:
        # Drive pika's I/O until the broker's connection.close arrives.
        for _ in range(100):
            conn.process_data_events(time_limit=0.1)
    assert ei.value.reply_code == 320
    assert ei.value.reply_text.startswith("CONNECTION_FORCED - ")
    rc = b.proc.wait(timeout=5)
    assert rc == 0
    assert time.monotonic() - start < 5


def test_shutdown_without_clients_is_quick(make_broker):
    b = make_broker()
    start = time.monotonic()
    assert b.stop() == 0
    assert time.monotonic() - start < 3


def test_config_file_sets_port_and_tune_values(make_broker):
    port = free_port()
    b = make_broker(config_text="listeners.tcp.default = 127.0.0.1:%d\nframe_max = 8192\n"
                                "channel_max = 7\nheartbeat = 5\n" % port)
    # The harness passes --amqp-port too, and the flag wins over the file's listener.
    conn = pika.BlockingConnection(b.pika_params())
    try:
        params = conn._impl.params
        assert params.frame_max == 8192
        assert params.channel_max == 7
        assert params.heartbeat == 5
    finally:
        conn.close()


def test_flag_overrides_config_file():
    file_port, flag_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "rabbitmq.conf")
        with open(cfg, "w") as f:
            f.write("listeners.tcp.default = %d\n" % file_port)
        proc = subprocess.Popen([WARREN_BIN, "--config", cfg, "--amqp-port", str(flag_port),
                                 "--bind", "127.0.0.1", "--http-port", "0", "--data-dir", d],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", flag_port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                pytest.fail("broker did not listen on the flag's port")
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", file_port), timeout=0.2).close()
        finally:
            proc.terminate()
            proc.wait(timeout=5)


def test_config_bad_value_refused_with_line_number():
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "rabbitmq.conf")
        with open(cfg, "w") as f:
            f.write("# comment\nheartbeat = 10\nframe_max = lots\n")
        r = subprocess.run([WARREN_BIN, "--config", cfg, "--amqp-port", str(free_port()),
                            "--http-port", "0", "--data-dir", d],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0
        assert "rabbitmq.conf:3" in r.stderr and "frame_max" in r.stderr


def test_config_unknown_key_warned_once(make_broker):
    b = make_broker(config_text="cluster_formation.peer_discovery_backend = classic_config\n")
    log = b.log()
    assert log.count("cluster_formation.peer_discovery_backend") == 1
    assert "ignored" in log


def test_data_dir_is_created(tmp_path):
    d = tmp_path / "nested" / "data"
    port = free_port()
    proc = subprocess.Popen([WARREN_BIN, "--amqp-port", str(port), "--bind", "127.0.0.1",
                             "--http-port", "0", "--data-dir", str(d)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_for_port
        wait_for_port("127.0.0.1", port, proc=proc)
        assert d.is_dir()
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_help_and_version():
    r = subprocess.run([WARREN_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for flag in ("--amqp-port", "--http-port", "--data-dir", "--bind", "--config"):
        assert flag in r.stdout
    r = subprocess.run([WARREN_BIN, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("warren ")


def test_unknown_flag_is_an_error():
    r = subprocess.run([WARREN_BIN, "--no-such-flag"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "no-such-flag" in r.stderr


def test_handshake_timeout_closes_silent_socket(make_broker):
    b = make_broker(config_text="handshake_timeout = 500\n")
    s = socket.create_connection((b.host, b.port), timeout=5)
    start = time.monotonic()
    try:
        data = s.recv(100)  # nothing was sent: the broker just closes
        assert data == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - start < 3
    s.close()
    # The broker still serves others.
    pika.BlockingConnection(b.pika_params()).close()


def test_handshake_timeout_after_header(make_broker):
    b = make_broker(config_text="handshake_timeout = 500\n")
    s = socket.create_connection((b.host, b.port), timeout=5)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    got = b""
    start = time.monotonic()
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got[:1] == b"\x01"  # connection.start arrived, then the socket closed
    assert time.monotonic() - start < 3
    s.close()


def test_heartbeats_sent_by_broker(make_broker):
    b = make_broker()
    conn = pika.BlockingConnection(b.pika_params(heartbeat=1))
    try:
        impl = conn._impl
        before = impl.bytes_received
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
        # Only heartbeat frames (8 bytes each) can have arrived on an idle connection.
        assert impl.bytes_received - before >= 8
        assert conn.is_open
    finally:
        conn.close()


def test_missed_client_heartbeats_drop_connection(make_broker):
    """A client that negotiates heartbeat=1 and then goes silent is dropped."""
    b = make_broker()
    s = socket.create_connection((b.host, b.port), timeout=10)
    import pika.spec as spec
    import pika.frame as frame

    def send(method, channel=0):
        s.sendall(frame.Method(channel, method).marshal())

    s.sendall(b"AMQP\x00\x00\x09\x01")
    s.recv(4096)  # start
    send(spec.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                 response=b"\x00guest\x00guest", locale="en_US"))
    s.recv(4096)  # tune
    send(spec.Connection.TuneOk(channel_max=10, frame_max=131072, heartbeat=1))
    send(spec.Connection.Open(virtual_host="/"))
    start = time.monotonic()
    got = b""
    while True:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        got += chunk
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 6.0
    assert b"\x08\x00\x00\x00\x00\x00\x00\xce" in got  # it sent heartbeats meanwhile
    s.close()


def test_shutdown_with_pending_timers_and_consumers_exits_cleanly(make_broker):
    """TTL, x-expires and delayed-message timers and live consumers at SIGTERM: exit 0."""
    b = make_broker()
    conn = pika.BlockingConnection(b.pika_params())
    ch = conn.channel()
    ch.queue_declare("ttl-q", arguments={"x-message-ttl": 60000, "x-expires": 60000})
    ch.basic_publish("", "ttl-q", b"x")
    ch.exchange_declare("delayed", "x-delayed-message", arguments={"x-delayed-type": "direct"})
    ch.queue_bind("ttl-q", "delayed", "k")
    ch.basic_publish("delayed", "k", b"later", pika.BasicProperties(headers={"x-delay": 60000}))
    ch.queue_declare("consumed")
    ch.basic_consume("consumed", lambda *a: None)
    ch.basic_publish("", "consumed", b"unacked")
    conn.process_data_events(time_limit=0.2)
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(timeout=5) == 0
    assert "Warren stopped" in b.log()
