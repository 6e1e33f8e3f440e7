"""A tiny raw-socket AMQP 0-9-1 client for protocol-fault tests.

It speaks just enough AMQP to reach any point of a connection's life and then send
arbitrary bytes: the protocol header, the PLAIN handshake with chosen tune values,
channel.open, well-formed method/header/body frames (encoded by pika.spec) and
hand-made frames with any type, channel, payload or frame-end octet.  Incoming frames
are decoded with pika.frame.decode_frame.  Every read has a timeout, so nothing hangs.
"""
import socket
import struct
import time

import pika.frame
import pika.spec as spec

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE


class Closed(Exception):
    """The server closed the socket (EOF or reset)."""


class Timeout(Exception):
    """Nothing (complete) arrived within the timeout."""


def frame(frame_type, channel, payload, frame_end=FRAME_END, size=None):
    """A raw frame; `size` overrides the length field, `frame_end` the final octet."""
    if size is None:
        size = len(payload)
    return struct.pack(">BHI", frame_type, channel, size) + payload + bytes([frame_end])


def method_payload(method):
    """The payload of a method frame: class id, method id and encoded arguments."""
    return struct.pack(">I", method.INDEX) + b"".join(method.encode())


def raw_method_payload(class_id, method_id, args=b""):
    return struct.pack(">HH", class_id, method_id) + args


def method_frame(channel, method):
    return pika.frame.Method(channel, method).marshal()


def header_payload(body_size, properties=None, class_id=60):
    properties = properties or spec.BasicProperties()
    return struct.pack(">HHQ", class_id, 0, body_size) + b"".join(properties.encode())


def header_frame(channel, body_size, properties=None, class_id=60):
    return frame(FRAME_HEADER, channel, header_payload(body_size, properties, class_id))


def body_frame(channel, data):
    return frame(FRAME_BODY, channel, data)


def heartbeat_frame(channel=0):
    return frame(FRAME_HEARTBEAT, channel, b"")


def plain_response(user="guest", password="guest"):
    return b"\x00" + user.encode() + b"\x00" + password.encode()


class RawConnection:
    def __init__(self, host, port, timeout=5.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.start = None      # connection.start received
        self.tune = None       # connection.tune received
        self.frame_max = None  # negotiated values sent in tune-ok
        self.channel_max = None
        self.heartbeat = None

    # --- plumbing -------------------------------------------------------------------
    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        """Sends bytes; returns False if the socket was already closed by the server."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            return False

    def _fill(self, deadline):
        """Reads more bytes into the buffer; raises Closed on EOF, Timeout at deadline."""
        if self.eof:
            raise Closed()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout()
        except (ConnectionResetError, ConnectionAbortedError):
            self.eof = True
            raise Closed()
        if not data:
            self.eof = True
            raise Closed()
        self.buf += data

    def recv_bytes(self, n, timeout=None):
        """Exactly n raw bytes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_frame(self, timeout=None):
        """The next decoded frame (pika.frame.Method/Header/Body/Heartbeat/ProtocolHeader)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if self.buf:
                consumed, frm = pika.frame.decode_frame(self.buf)
                if frm is not None:
                    self.buf = self.buf[consumed:]
                    return frm
            self._fill(deadline)

    def recv_method(self, timeout=None, skip_heartbeats=True):
        """The next method frame, skipping heartbeats (and, unless a method, failing)."""
        while True:
            frm = self.recv_frame(timeout)
            if skip_heartbeats and isinstance(frm, pika.frame.Heartbeat):
                continue
            if not isinstance(frm, pika.frame.Method):
                raise AssertionError("expected a method frame, got %r" % (frm,))
            return frm

    def expect(self, method_class, channel=None, timeout=None):
        frm = self.recv_method(timeout)
        assert isinstance(frm.method, method_class), \
            "expected %s, got %r" % (method_class.NAME, frm.method)
        if channel is not None:
            assert frm.channel_number == channel, frm
        return frm.method

    def wait_closed(self, timeout=5.0):
        """True if the server closes the socket within timeout (data before EOF is
        discarded, except heartbeats and methods are kept in self.discarded)."""
        self.discarded = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except Closed:
                return True
            except Timeout:
                return False
            # drop whole frames we can decode, keep the rest
            while self.buf:
                try:
                    consumed, frm = pika.frame.decode_frame(self.buf)
                except Exception:
                    self.discarded.append(self.buf)
                    self.buf = b""
                    break
                if frm is None:
                    break
                self.discarded.append(frm)
                self.buf = self.buf[consumed:]

    def is_open(self, wait=0.3):
        """True if no EOF arrives within `wait` seconds (data received is kept)."""
        if self.eof:
            return False
        deadline = time.monotonic() + wait
        try:
            while True:
                self._fill(deadline)
        except Timeout:
            return True
        except Closed:
            return False

    # --- frames ---------------------------------------------------------------------
    def send_frame(self, frame_type, channel, payload, frame_end=FRAME_END, size=None):
        return self.send(frame(frame_type, channel, payload, frame_end, size))

    def send_method(self, channel, method):
        return self.send(method_frame(channel, method))

    def send_raw_method(self, channel, class_id, method_id, args=b""):
        return self.send_frame(FRAME_METHOD, channel,
                               raw_method_payload(class_id, method_id, args))

    def publish(self, channel, body, exchange="", routing_key="", properties=None):
        data = method_frame(channel, spec.Basic.Publish(exchange=exchange,
                                                        routing_key=routing_key))
        data += header_frame(channel, len(body), properties)
        if body:
            data += body_frame(channel, body)
        return self.send(data)

    # --- handshake ------------------------------------------------------------------
    def send_header(self, header=PROTOCOL_HEADER):
        return self.send(header)

    def start_ok(self, mechanism="PLAIN", response=None, locale="en_US",
                 client_properties=None):
        if response is None:
            response = plain_response()
        self.send_method(0, spec.Connection.StartOk(
            client_properties=client_properties or {"product": "warren-rawamqp"},
            mechanism=mechanism, response=response, locale=locale))

    def begin(self):
        """Protocol header; waits for connection.start."""
        self.send_header()
        self.start = self.expect(spec.Connection.Start, channel=0)
        return self.start

    def handshake(self, user="guest", password="guest", vhost="/", channel_max=None,
                  frame_max=None, heartbeat=0, open_connection=True):
        """Full handshake; tune-ok values default to what the server offered
        (heartbeat defaults to 0 = off)."""
        self.begin()
        self.start_ok(response=plain_response(user, password))
        self.tune = self.expect(spec.Connection.Tune, channel=0)
        self.channel_max = self.tune.channel_max if channel_max is None else channel_max
        self.frame_max = self.tune.frame_max if frame_max is None else frame_max
        self.heartbeat = heartbeat
        self.send_method(0, spec.Connection.TuneOk(channel_max=self.channel_max,
                                                   frame_max=self.frame_max,
                                                   heartbeat=heartbeat))
        if open_connection:
            self.send_method(0, spec.Connection.Open(virtual_host=vhost))
            self.expect(spec.Connection.OpenOk, channel=0)
        return self

    def open_channel(self, channel=1):
        self.send_method(channel, spec.Channel.Open())
        return self.expect(spec.Channel.OpenOk, channel=channel)

    def expect_connection_close(self, timeout=None):
        """Waits for connection.close (on channel 0), answers close-ok, returns it."""
        m = self.expect(spec.Connection.Close, channel=0, timeout=timeout)
        self.send_method(0, spec.Connection.CloseOk())
        return m

    def expect_channel_close(self, channel, timeout=None):
        m = self.expect(spec.Channel.Close, channel=channel, timeout=timeout)
        return m


def connect(broker, timeout=5.0, **handshake_kw):
    """A RawConnection to the broker fixture after a full handshake."""
    c = RawConnection(broker.host, broker.port, timeout)
    try:
        c.handshake(**handshake_kw)
    except Exception:
        c.close()
        raise
    return c
