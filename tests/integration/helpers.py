"""Shared helpers for the integration tests: client connections, health checks, raw frames.

Every helper bounds its waits so a misbehaving broker fails a test instead of hanging it.
"""
import socket
import struct
import time
import uuid

import pika

# pika's own handshake and socket timeouts; the default blocked_connection_timeout
# of None would let a stuck broker hang a test forever.
PIKA_TIMEOUTS = dict(socket_timeout=5, stack_timeout=10, blocked_connection_timeout=10,
                     connection_attempts=1)


def reply_text(text):
    """A reply text as RabbitMQ sends it: over 255 bytes, cut at 252 bytes plus "..."."""
    b = text.encode()
    if len(b) <= 255:
        return text
    return (b[:252] + b"...").decode("utf-8", errors="replace")


def pika_connect(broker, **kw):
    """A pika BlockingConnection to the broker with bounded timeouts."""
    params = dict(PIKA_TIMEOUTS)
    params.update(kw)
    return pika.BlockingConnection(broker.pika_params(**params))


def amqp_connect(broker, **kw):
    """A connected py-amqp Connection to the broker."""
    import amqp
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("read_timeout", 5)
    kw.setdefault("write_timeout", 5)
    conn = amqp.Connection("%s:%d" % (broker.host, broker.port), **kw)
    conn.connect()
    return conn


def close_quietly(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass


def pika_get(ch, queue, timeout=2.0, auto_ack=True):
    """basic.get, retried until a message is there (routing is asynchronous to the publish)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None or time.monotonic() > deadline:
            return method, props, body
        time.sleep(0.01)


def drain_bodies(ch, queue, expect, timeout=2.0):
    """basic.get (auto-ack) until `expect` messages were read or timeout; returns the bodies."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.01)
            continue
        out.append(body)
    return out


def message_count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_message_count(ch, queue, expected, timeout=2.0):
    """Polls a passive declare until message_count == expected; returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        n = message_count(ch, queue)
        if n == expected or time.monotonic() > deadline:
            return n
        time.sleep(0.01)


def collect_deliveries(conn, store, n, timeout=2.0):
    """Runs pika's I/O loop until `store` (a list filled by a callback) holds n items."""
    deadline = time.monotonic() + timeout
    while len(store) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    return store


def settle(conn, seconds=0.15):
    """Lets in-flight frames arrive (used to check that nothing more is delivered)."""
    conn.process_data_events(time_limit=seconds)


def round_trip(conn):
    """Proves a connection is healthy: a new channel, a server-named queue, publish, get."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = uuid.uuid4().bytes
    ch.basic_publish("", q, body)
    method, _props, got = pika_get(ch, q)
    assert method is not None, "round trip: message did not arrive"
    assert got == body
    ch.queue_delete(q)
    ch.close()


def amqp_round_trip(conn):
    """The same health check for a py-amqp connection."""
    import amqp
    ch = conn.channel()
    q, _, _ = ch.queue_declare("", exclusive=True)
    body = uuid.uuid4().bytes
    ch.basic_publish(amqp.Message(body), exchange="", routing_key=q)
    deadline = time.monotonic() + 2
    msg = None
    while msg is None and time.monotonic() < deadline:
        msg = ch.basic_get(q, no_ack=True)
    assert msg is not None and msg.body == body
    ch.queue_delete(q)
    ch.close()


def fresh_health_check(broker):
    """A brand-new connection does a round trip (the broker survived whatever happened)."""
    conn = pika_connect(broker)
    try:
        round_trip(conn)
    finally:
        close_quietly(conn)


# --------------------------------------------------------------------------------------
# A minimal raw AMQP 0-9-1 client, for what the client libraries will not send or show
# (the server's tune offer, channel numbers above channel_max, hand-made frames).

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE


def _shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("B", len(b)) + b


def _longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


class RawFrame:
    def __init__(self, ftype, channel, payload):
        self.type = ftype
        self.channel = channel
        self.payload = payload

    @property
    def method(self):
        """(class_id, method_id) of a method frame."""
        return struct.unpack(">HH", self.payload[:4])

    def close_reply(self):
        """(reply_code, reply_text, class_id, method_id) of a connection/channel close."""
        p = self.payload[4:]
        code = struct.unpack(">H", p[:2])[0]
        n = p[2]
        text = p[3:3 + n].decode()
        cls, meth = struct.unpack(">HH", p[3 + n:7 + n])
        return code, text, cls, meth


class RawClient:
    """Blocking socket client speaking just enough AMQP 0-9-1 to open a connection."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.start_payload = None
        self.tune = None  # (channel_max, frame_max, heartbeat) offered by the server

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_frame(self, ftype, channel, payload):
        self.sock.sendall(struct.pack(">BHI", ftype, channel, len(payload)) + payload
                          + bytes([FRAME_END]))

    def send_method(self, channel, class_id, method_id, args=b""):
        self.send_frame(FRAME_METHOD, channel, struct.pack(">HH", class_id, method_id) + args)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("socket closed by peer")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        ftype, channel, size = struct.unpack(">BHI", self._read(7))
        payload = self._read(size)
        end = self._read(1)
        assert end[0] == FRAME_END, "bad frame end %r" % end
        return RawFrame(ftype, channel, payload)

    def read_method(self, skip_heartbeats=True):
        while True:
            f = self.read_frame()
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            return f

    def handshake(self, channel_max=None, frame_max=None, heartbeat=0, vhost="/",
                  user="guest", password="guest", send_open=True):
        """Runs start/start-ok/tune/tune-ok/open; tune-ok echoes the offer unless overridden."""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        f = self.read_method()
        assert f.method == (10, 10), f.method
        self.start_payload = f.payload
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        # client-properties: empty table; mechanism PLAIN; response; locale en_US
        self.send_method(0, 10, 11, struct.pack(">I", 0) + _shortstr("PLAIN")
                         + _longstr(response) + _shortstr("en_US"))
        f = self.read_method()
        if f.method != (10, 30):
            return f  # e.g. connection.close on bad credentials
        self.tune = struct.unpack(">HIH", f.payload[4:12])
        cm, fm, _hb = self.tune
        self.send_method(0, 10, 31, struct.pack(
            ">HIH", cm if channel_max is None else channel_max,
            fm if frame_max is None else frame_max, heartbeat))
        if not send_open:
            return self.read_method()
        self.send_method(0, 10, 40, _shortstr(vhost) + _shortstr("") + b"\x00")
        f = self.read_method()
        return f

    def open_channel(self, channel):
        self.send_method(channel, 20, 10, _shortstr(""))
        return self.read_method()

    # -- a few channel-level methods, enough to move a message through the broker

    def declare_temp_queue(self, channel):
        """queue.declare of an exclusive server-named queue; returns its name."""
        # bits: passive 1, durable 2, exclusive 4, auto-delete 8, no-wait 16
        self.send_method(channel, 50, 10, b"\x00\x00" + _shortstr("") + b"\x04"
                         + struct.pack(">I", 0))
        f = self.read_method()
        assert f.method == (50, 11), f.method
        n = f.payload[4]
        return f.payload[5:5 + n].decode()

    def publish(self, channel, exchange, routing_key, body, flags=0, props=b"",
                frame_max=131072):
        """basic.publish with raw property flags and bytes; the body split at frame_max."""
        self.send_method(channel, 60, 40, b"\x00\x00" + _shortstr(exchange)
                         + _shortstr(routing_key) + b"\x00")
        self.send_frame(FRAME_HEADER, channel,
                        struct.pack(">HHQH", 60, 0, len(body), flags) + props)
        step = frame_max - 8
        for i in range(0, len(body), step):
            self.send_frame(FRAME_BODY, channel, body[i:i + step])

    def basic_get(self, channel, queue, no_ack=True):
        self.send_method(channel, 60, 70, b"\x00\x00" + _shortstr(queue)
                         + (b"\x01" if no_ack else b"\x00"))


def wait_for(pred, timeout=10.0):
    """Polls `pred` until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()
