"""How the broker handles bad input on the wire, asserted as RabbitMQ 3.10 does it.

Every test talks raw AMQP through rawamqp.RawConnection and afterwards (autouse fixture
`still_serves`) opens an ordinary pika connection and does a publish/get round trip, so a
fault must never take the broker down.

RabbitMQ's reactions fall into a few kinds, which the helpers below name:

* connection.close on channel 0, after which the server ignores everything except
  connection.close / close-ok and drops the socket once close-ok arrives (or after 30 s);
* the same, but for a "fatal" frame error (bad frame-end octet, frame too large): the
  socket is dropped ~3 s after the close whether or not close-ok arrives;
* before connection.open (handshake errors: bad SASL response, unknown mechanism, tune-ok
  out of range, frames out of order): no frame at all, the socket is closed ~3 s later;
* a wrong protocol header: the server writes its own header AMQP 0 0 9 1 and closes.

Where RabbitMQ's behaviour is really an internal crash (its reader or channel process
dies: unknown class/method id, a field table with an unknown type or a value cut short, a
malformed content header), the test also accepts the clean alternative of a
connection.close with a fitting code followed by the socket closing; each such test says so.
Reply texts are asserted whole, except the Erlang printout of a frame's octets in
FRAME_ERROR / UNEXPECTED_FRAME / 'cannot decode' texts (see expect_frame_close).

Slow tests (handshake timeout, 30 s close timeouts) are marked `slow`: -m "not slow".
"""
import struct
import time

import pika
import pika.frame
import pika.spec as spec
import pytest

from rawamqp import (Closed, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
                     PROTOCOL_HEADER, RawConnection, Timeout, body_frame, connect, frame,
                     header_frame, heartbeat_frame, method_frame, method_payload,
                     plain_response, raw_method_payload)

# RabbitMQ sleeps 3 s before dropping the socket after a handshake error or a fatal frame
# error; allow some slack.
DROP_WITHIN = 5.0
AUTH_CLOSE_CAPS = {"product": "warren-tests",
                   "capabilities": {"authentication_failure_close": True}}
CHANNEL_OPEN_EXPECTED = "CHANNEL_ERROR - expected 'channel.open'"
EXPECTED_METHOD = "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
EXPECTED_HEADER = ("UNEXPECTED_FRAME - expected content header for class 60, "
                   "got non content header frame instead")
EXPECTED_BODY = "UNEXPECTED_FRAME - expected content body, got non content body frame instead"
UNEXPECTED_IN_RUNNING = "CHANNEL_ERROR - unexpected method in connection state running"
COMMAND_INVALID = "COMMAND_INVALID - unimplemented method"
ACCESS_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                  "For details see the broker logfile.")


# --- helpers ---------------------------------------------------------------------------

def roundtrip(broker, name):
    """A normal client still gets service: declare, publish, get."""
    conn = pika.BlockingConnection(broker.pika_params(socket_timeout=5, stack_timeout=10,
                                                      connection_attempts=1))
    try:
        ch = conn.channel()
        ch.queue_declare(queue=name, exclusive=True)
        ch.basic_publish(exchange="", routing_key=name, body=b"still-alive")
        got = None
        deadline = time.monotonic() + 5
        while got is None and time.monotonic() < deadline:
            method, _props, body = ch.basic_get(queue=name, auto_ack=True)
            if method is not None:
                got = body
            else:
                time.sleep(0.02)
        assert got == b"still-alive"
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def still_serves(broker, uniq):
    yield
    roundtrip(broker, uniq + "-rt")


@pytest.fixture
def raw(broker):
    """Raw connections after a full handshake; closed at the end of the test."""
    made = []

    def make(**kw):
        c = connect(broker, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def rawsock(broker):
    """Raw connections with no handshake at all."""
    made = []

    def make(timeout=5.0):
        c = RawConnection(broker.host, broker.port, timeout)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def ch1(raw):
    """A handshaken raw connection with channel 1 open."""
    c = raw()
    c.open_channel(1)
    return c


def expect_close(c, code, class_id=0, method_id=0, text=None, prefix=None, contains=None,
                 timeout=5.0):
    """The next method is connection.close on channel 0 with exactly these fields."""
    m = c.expect(spec.Connection.Close, channel=0, timeout=timeout)
    assert (m.reply_code, m.class_id, m.method_id) == (code, class_id, method_id), m
    if text is not None:
        assert m.reply_text == text
    if prefix is not None:
        assert m.reply_text.startswith(prefix), m.reply_text
    if contains is not None:
        assert contains in m.reply_text, m.reply_text
    return m


def expect_frame_close(c, code, frame_type, reason=None):
    """connection.close 501 FRAME_ERROR / 505 UNEXPECTED_FRAME about one frame, class and
    method 0. RabbitMQ 3.10.8's text is 'FRAME_ERROR - type 9, all octets = <<>>:
    unknown_frame' (505: no ': reason' part); the octet dump is Erlang's printout of the
    payload and is not asserted, the frame type and the reason are."""
    name = {501: "FRAME_ERROR", 505: "UNEXPECTED_FRAME"}[code]
    m = expect_close(c, code, 0, 0, prefix="%s - type %d, " % (name, frame_type))
    if reason is not None:
        assert m.reply_text.endswith(": " + reason), m.reply_text
    return m


def close_ok_then_eof(c, within=2.0):
    """Answers connection.close with close-ok; the server then drops the socket."""
    c.send_method(0, spec.Connection.CloseOk())
    assert c.wait_closed(within), "socket still open after connection.close-ok"


def expect_silent_drop(c, within=DROP_WITHIN):
    """The server closes the socket without sending anything."""
    assert c.wait_closed(within), "socket still open after %.1f s" % within
    assert c.discarded == [] and c.buf == b"", "server sent %r %r" % (c.discarded, c.buf)


def expect_drop_or_close(c, codes, within=DROP_WITHIN):
    """RabbitMQ drops the socket with no frame (its reader crashes). A clean
    connection.close with one of `codes` (then EOF after close-ok) is accepted too."""
    try:
        frm = c.recv_frame(timeout=within)
    except Closed:
        return None
    except Timeout:
        pytest.fail("socket still open after %.1f s and nothing received" % within)
    assert isinstance(frm, pika.frame.Method), frm
    assert isinstance(frm.method, spec.Connection.Close) and frm.channel_number == 0, frm
    assert frm.method.reply_code in codes, frm.method
    close_ok_then_eof(c)
    return frm.method


def expect_nothing(c, wait=0.5):
    """No frame (other than heartbeats) arrives and the socket stays open."""
    try:
        while True:
            frm = c.recv_frame(timeout=wait)
            assert isinstance(frm, pika.frame.Heartbeat), "unexpected %r" % (frm,)
    except Timeout:
        pass


def qos(c, channel=1):
    c.send_method(channel, spec.Basic.Qos(prefetch_count=1))
    return c.expect(spec.Basic.QosOk, channel=channel)


def declare_payload(table, name=b"warren-fault-q"):
    """queue.declare (exclusive, auto-delete) with a hand-made arguments table."""
    args = b"\x00\x00" + bytes([len(name)]) + name + b"\x0c" + table
    return raw_method_payload(50, 10, args)


def table(entries):
    return struct.pack(">I", len(entries)) + entries


# --- protocol header -------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00",          # 0-9-0
    b"AMQP\x00\x00\x09\x02",
    b"AMQP\x00\x00\x08\x00",
    b"AMQP\x00\x01\x00\x00",          # AMQP 1.0
    b"AMQP\x03\x01\x00\x00",          # AMQP 1.0 SASL
    b"HTTP/1.1",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"garbage!",
], ids=["0-9-0", "0-9-2", "0-0-8-0", "amqp1.0", "amqp1.0-sasl", "http", "http-get", "tls",
        "garbage"])
def test_bad_protocol_header_gets_server_header_then_close(rawsock, header):
    c = rawsock()
    c.send(header)
    assert c.recv_bytes(8, timeout=3) == PROTOCOL_HEADER
    assert c.wait_closed(2.0), "socket still open after the protocol header reply"
    assert c.buf == b"" and c.discarded == []


def test_good_protocol_header_gets_connection_start(rawsock):
    c = rawsock()
    start = c.begin()
    assert (start.version_major, start.version_minor) == (0, 9)
    assert b"PLAIN" in start.mechanisms.split()
    assert b"en_US" in start.locales.split()


def test_legacy_0_9_header_treated_as_0_9_1(rawsock):
    """'AMQP 1 1 0 9' (the 0-9 header layout) is accepted and spoken as 0-9-1."""
    c = rawsock()
    c.send(b"AMQP\x01\x01\x00\x09")
    start = c.expect(spec.Connection.Start, channel=0)
    assert (start.version_major, start.version_minor) == (0, 9)
    c.start_ok()
    c.expect(spec.Connection.Tune, channel=0)
    c.send_method(0, spec.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
    c.send_method(0, spec.Connection.Open(virtual_host="/"))
    c.expect(spec.Connection.OpenOk, channel=0)
    c.open_channel(1)
    qos(c)


@pytest.mark.parametrize("header", [b"AMQP\x01\x01\x08\x00", b"AMQP\x01\x01\x09\x01"],
                         ids=["8-0", "0-8-website"])
def test_legacy_0_8_header_gets_0_8_start(rawsock, header):
    """RabbitMQ still speaks AMQP 0-8 for these headers: connection.start says 8-0."""
    c = rawsock()
    c.send(header)
    start = c.expect(spec.Connection.Start, channel=0)
    assert (start.version_major, start.version_minor) == (8, 0)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["nothing", "after-header"])
def test_handshake_timeout(rawsock, stage):
    """RabbitMQ's handshake_timeout (10 s) closes a connection that never opens."""
    c = rawsock()
    t0 = time.monotonic()
    if stage == "after-header":
        c.begin()
    assert c.wait_closed(15.0), "not closed within 15 s"
    elapsed = time.monotonic() - t0
    assert elapsed >= 5.0, "closed after only %.1f s" % elapsed
    assert c.discarded == [] and c.buf == b""


def test_heartbeat_before_start_ok_is_ignored(rawsock):
    c = rawsock()
    c.begin()
    c.send(heartbeat_frame(0))
    c.start_ok()
    c.expect(spec.Connection.Tune, channel=0)


# --- authentication --------------------------------------------------------------------

@pytest.mark.parametrize("mechanism", ["FOO", "plain", ""])
def test_unknown_mechanism_silent_drop(rawsock, mechanism):
    """Even with authentication_failure_close, an unknown mechanism gets no frame."""
    c = rawsock()
    c.begin()
    c.start_ok(mechanism=mechanism, client_properties=AUTH_CLOSE_CAPS)
    expect_silent_drop(c)


@pytest.mark.parametrize("response", [b"guestguest", b"\x00guest", b"",
                                      b"guest\x00guest\x00guest"],
                         ids=["no-nul", "user-only", "empty", "authzid"])
def test_malformed_plain_response_silent_drop(rawsock, response):
    """PLAIN must be exactly NUL user NUL password (empty authzid)."""
    c = rawsock()
    c.begin()
    c.start_ok(response=response, client_properties=AUTH_CLOSE_CAPS)
    expect_silent_drop(c)


def test_wrong_password_without_capability_silent_drop(rawsock):
    c = rawsock()
    c.begin()
    c.start_ok(response=plain_response("guest", "wrong"))
    expect_silent_drop(c)


@pytest.mark.parametrize("user,password", [("guest", "wrong"), ("nobody-here", "guest")])
def test_wrong_credentials_with_capability_get_403(rawsock, user, password):
    c = rawsock()
    c.begin()
    c.start_ok(response=plain_response(user, password), client_properties=AUTH_CLOSE_CAPS)
    expect_close(c, 403, 0, 0, text=ACCESS_REFUSED)
    close_ok_then_eof(c)


def test_403_socket_dropped_even_without_close_ok(rawsock):
    c = rawsock()
    c.begin()
    c.start_ok(response=plain_response("guest", "wrong"), client_properties=AUTH_CLOSE_CAPS)
    expect_close(c, 403, 0, 0, text=ACCESS_REFUSED)
    assert c.wait_closed(DROP_WITHIN)


def test_unknown_vhost_gets_530(raw):
    c = raw(open_connection=False)
    c.send_method(0, spec.Connection.Open(virtual_host="no-such-vhost"))
    expect_close(c, 530, 10, 40, text="NOT_ALLOWED - vhost no-such-vhost not found")
    close_ok_then_eof(c)


# --- tune negotiation ------------------------------------------------------------------

def test_tune_offer(rawsock):
    c = rawsock()
    c.begin()
    c.start_ok()
    tune = c.expect(spec.Connection.Tune, channel=0)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)


@pytest.mark.parametrize("channel_max,frame_max", [
    (2047, 4095),      # below the 4096 minimum
    (2047, 0),         # 0 = "no limit", more than the server's 131072
    (2047, 131073),    # above the server's frame_max
    (0, 131072),       # 0 = "no limit", more than the server's 2047
    (2048, 131072),    # above the server's channel_max
], ids=["fm4095", "fm0", "fm131073", "cm0", "cm2048"])
def test_tune_ok_out_of_range_silent_drop(rawsock, channel_max, frame_max):
    """'failed to negotiate connection parameters': no frame, socket closed (~3 s)."""
    c = rawsock()
    c.begin()
    c.start_ok()
    c.expect(spec.Connection.Tune, channel=0)
    c.send_method(0, spec.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max,
                                            heartbeat=0))
    c.send_method(0, spec.Connection.Open(virtual_host="/"))
    expect_silent_drop(c)


def test_tune_ok_smaller_values_accepted(raw):
    c = raw(channel_max=1, frame_max=4096, heartbeat=65535)
    c.open_channel(1)
    qos(c)


# --- out-of-order handshake ------------------------------------------------------------

def test_start_ok_on_channel_1_silent_drop(rawsock):
    c = rawsock()
    c.begin()
    c.send_method(1, spec.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                             response=plain_response(), locale="en_US"))
    expect_silent_drop(c)


def test_connection_open_before_tune_ok_silent_drop(rawsock):
    c = rawsock()
    c.begin()
    c.start_ok()
    c.expect(spec.Connection.Tune, channel=0)
    c.send_method(0, spec.Connection.Open(virtual_host="/"))
    expect_silent_drop(c)


def test_channel_open_before_connection_open_gets_505(raw):
    c = raw(open_connection=False)
    c.send_method(1, spec.Channel.Open())
    expect_frame_close(c, 505, 1)   # 3.10.8: "... all octets = <<0,20,0,10,0>>"
    close_ok_then_eof(c)


def test_connection_close_before_connection_open_gets_504(raw):
    c = raw(open_connection=False)
    c.send_method(0, spec.Connection.Close(reply_code=200, reply_text="", class_id=0,
                                           method_id=0))
    expect_close(c, 504, 10, 50,
                 text="CHANNEL_ERROR - unexpected method in connection state opening")
    close_ok_then_eof(c)


# --- frame-level errors ----------------------------------------------------------------

def test_bad_frame_end_on_method_frame(ch1):
    payload = method_payload(spec.Queue.Declare(queue="x", passive=True))
    ch1.send(frame(FRAME_METHOD, 1, payload, frame_end=0x00))
    m = expect_frame_close(ch1, 501, 1)
    assert "invalid_frame_end_marker" in m.reply_text
    # fatal frame error: the socket goes even though we never send close-ok
    assert ch1.wait_closed(DROP_WITHIN)


def test_bad_frame_end_on_heartbeat(raw):
    c = raw()
    c.send(frame(FRAME_HEARTBEAT, 0, b"", frame_end=0xAA))
    expect_frame_close(c, 501, 8, "{invalid_frame_end_marker,170}")
    assert c.wait_closed(DROP_WITHIN)


@pytest.mark.parametrize("frame_type,channel", [(0, 0), (4, 1), (9, 1), (255, 0)])
def test_unknown_frame_type_gets_501(ch1, frame_type, channel):
    ch1.send(frame(frame_type, channel, b""))
    expect_frame_close(ch1, 501, frame_type, "unknown_frame")
    close_ok_then_eof(ch1)


def test_frame_larger_than_default_frame_max(ch1):
    """The payload may be up to frame_max bytes (RabbitMQ's 8-byte fudge); the reply
    text quotes frame_max - 8."""
    ch1.send(method_frame(1, spec.Basic.Publish(routing_key="nowhere")) +
             header_frame(1, 131073) + body_frame(1, b"x" * 131073))
    expect_frame_close(ch1, 501, 3, "{frame_too_large,131073,131064}")
    assert ch1.wait_closed(DROP_WITHIN)


def test_frame_larger_than_negotiated_frame_max(raw):
    c = raw(frame_max=4096)
    c.open_channel(1)
    c.send(method_frame(1, spec.Basic.Publish(routing_key="nowhere")) +
           header_frame(1, 4097) + body_frame(1, b"x" * 4097))
    expect_frame_close(c, 501, 3, "{frame_too_large,4097,4088}")
    assert c.wait_closed(DROP_WITHIN)


@pytest.mark.parametrize("size", [4088, 4096])
def test_frame_up_to_frame_max_payload_accepted(raw, size):
    c = raw(frame_max=4096)
    c.open_channel(1)
    c.send(method_frame(1, spec.Basic.Publish(routing_key="nowhere")) +
           header_frame(1, size) + body_frame(1, b"x" * size))
    qos(c)


def test_frame_size_field_huge(ch1):
    """Checked on the 7-byte frame header, before any payload arrives."""
    ch1.send(struct.pack(">BHI", FRAME_METHOD, 1, 0xFFFFFFFF))
    expect_frame_close(ch1, 501, 1, "{frame_too_large,4294967295,131064}")
    assert ch1.wait_closed(DROP_WITHIN)


def test_method_frame_shorter_than_ids(ch1):
    ch1.send(frame(FRAME_METHOD, 1, b"\x00\x32"))
    expect_frame_close(ch1, 501, 1, "unknown_frame")
    close_ok_then_eof(ch1)


def test_header_frame_too_short(ch1):
    ch1.send(method_frame(1, spec.Basic.Publish(routing_key="nowhere")) +
             frame(FRAME_HEADER, 1, b"\x00\x3c\x00"))
    expect_frame_close(ch1, 501, 2, "unknown_frame")
    close_ok_then_eof(ch1)


def test_heartbeat_with_payload(raw):
    c = raw()
    c.send(frame(FRAME_HEARTBEAT, 0, b"\x01"))
    expect_frame_close(c, 501, 8, "unknown_frame")
    close_ok_then_eof(c)


@pytest.mark.parametrize("channel", [1, 9])
def test_heartbeat_on_nonzero_channel_gets_505(ch1, channel):
    ch1.send(heartbeat_frame(channel))
    expect_frame_close(ch1, 505, 8)   # 3.10.8: "... all octets = <<>>"
    close_ok_then_eof(ch1)


def test_content_header_on_channel_0_gets_505(raw):
    c = raw()
    c.send(header_frame(0, 3))
    expect_frame_close(c, 505, 2)
    close_ok_then_eof(c)


def test_body_on_channel_0_gets_505(raw):
    c = raw()
    c.send(body_frame(0, b""))
    expect_frame_close(c, 505, 3)
    close_ok_then_eof(c)


# --- channel state errors --------------------------------------------------------------

def test_method_on_unopened_channel_gets_504(ch1):
    ch1.send_method(5, spec.Queue.Declare(queue="", exclusive=True))
    expect_close(ch1, 504, 50, 10, text=CHANNEL_OPEN_EXPECTED)
    close_ok_then_eof(ch1)


def test_publish_on_unopened_channel_gets_504_after_content(ch1):
    ch1.send(method_frame(5, spec.Basic.Publish(routing_key="nowhere")))
    expect_nothing(ch1, 0.3)   # still assembling the content
    ch1.send(header_frame(5, 3) + body_frame(5, b"abc"))
    expect_close(ch1, 504, 60, 40, text=CHANNEL_OPEN_EXPECTED)
    close_ok_then_eof(ch1)


@pytest.mark.parametrize("method,ids", [
    (spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0), (20, 40)),
    (spec.Channel.CloseOk(), (20, 41)),
    (spec.Connection.Close(reply_code=200, reply_text="", class_id=0, method_id=0), (10, 50)),
], ids=["channel.close", "channel.close-ok", "connection.close"])
def test_close_methods_on_unopened_channel_get_504(ch1, method, ids):
    ch1.send_method(5, method)
    expect_close(ch1, 504, *ids, text=CHANNEL_OPEN_EXPECTED)
    close_ok_then_eof(ch1)


def test_second_channel_open_gets_504(ch1):
    ch1.send_method(1, spec.Channel.Open())
    expect_close(ch1, 504, 20, 10, text="CHANNEL_ERROR - second 'channel.open' seen")
    close_ok_then_eof(ch1)


def test_unsolicited_channel_close_ok_gets_503(ch1):
    ch1.send_method(1, spec.Channel.CloseOk())
    expect_close(ch1, 503, 20, 41, text=COMMAND_INVALID)
    close_ok_then_eof(ch1)


# --- content framing -------------------------------------------------------------------

@pytest.mark.parametrize("channel", [1, 7], ids=["open-channel", "unopened-channel"])
def test_content_header_without_method_gets_505(ch1, channel):
    ch1.send(header_frame(channel, 5))
    expect_close(ch1, 505, 0, 0, text=EXPECTED_METHOD)
    close_ok_then_eof(ch1)


@pytest.mark.parametrize("channel", [1, 7], ids=["open-channel", "unopened-channel"])
def test_body_without_header_gets_505(ch1, channel):
    ch1.send(body_frame(channel, b"abc"))
    expect_close(ch1, 505, 0, 0, text=EXPECTED_METHOD)
    close_ok_then_eof(ch1)


def test_body_right_after_publish_method_gets_505(ch1):
    ch1.send(method_frame(1, spec.Basic.Publish()) + body_frame(1, b"abc"))
    expect_close(ch1, 505, 60, 40, text=EXPECTED_HEADER)
    close_ok_then_eof(ch1)


def test_method_right_after_publish_method_gets_505(ch1):
    ch1.send(method_frame(1, spec.Basic.Publish()) +
             method_frame(1, spec.Queue.Declare(queue="", exclusive=True)))
    expect_close(ch1, 505, 60, 40, text=EXPECTED_HEADER)
    close_ok_then_eof(ch1)


def test_method_in_middle_of_content_gets_505(ch1):
    ch1.send(method_frame(1, spec.Basic.Publish()) + header_frame(1, 10) +
             body_frame(1, b"abc") + method_frame(1, spec.Basic.Qos(prefetch_count=1)))
    expect_close(ch1, 505, 60, 40, text=EXPECTED_BODY)
    close_ok_then_eof(ch1)


@pytest.mark.parametrize("bodies", [[b"abcdef"], [b"abc", b"de"]], ids=["one", "two"])
def test_body_longer_than_announced_gets_505(ch1, bodies):
    """RabbitMQ keeps waiting for the (never-ending) body; the next method is refused."""
    data = method_frame(1, spec.Basic.Publish()) + header_frame(1, 4)
    for b in bodies:
        data += body_frame(1, b)
    ch1.send(data + method_frame(1, spec.Basic.Qos(prefetch_count=1)))
    expect_close(ch1, 505, 60, 40, text=EXPECTED_BODY)
    close_ok_then_eof(ch1)


def test_body_after_empty_content_gets_505(ch1):
    ch1.send(method_frame(1, spec.Basic.Publish()) + header_frame(1, 0) +
             body_frame(1, b"abc"))
    expect_close(ch1, 505, 0, 0, text=EXPECTED_METHOD)
    close_ok_then_eof(ch1)


@pytest.mark.parametrize("class_id", [10, 50, 99])
def test_content_header_class_mismatch_gets_505(ch1, class_id):
    ch1.send(method_frame(1, spec.Basic.Publish()) +
             header_frame(1, 3, class_id=class_id) + body_frame(1, b"abc"))
    expect_close(ch1, 505, 60, 40,
                 text="UNEXPECTED_FRAME - expected content header for class 60, "
                      "got one for class %d instead" % class_id)
    close_ok_then_eof(ch1)


def test_content_header_on_other_channel_mid_content_gets_505(ch1):
    ch1.open_channel(2)
    ch1.send(method_frame(1, spec.Basic.Publish()) + header_frame(1, 3) + header_frame(2, 3))
    expect_close(ch1, 505, 0, 0, text=EXPECTED_METHOD)
    close_ok_then_eof(ch1)


def test_other_channels_and_heartbeats_may_interleave_with_content(ch1, uniq):
    """Not faults: content frames are per channel, heartbeats and empty bodies allowed."""
    ch1.open_channel(2)
    ch1.send_method(1, spec.Queue.Declare(queue=uniq, exclusive=True))
    ch1.expect(spec.Queue.DeclareOk, channel=1)
    ch1.send(method_frame(1, spec.Basic.Publish(routing_key=uniq)) + header_frame(1, 6) +
             method_frame(2, spec.Basic.Qos(prefetch_count=1)) + heartbeat_frame(0) +
             body_frame(1, b"") + body_frame(1, b"abc") + heartbeat_frame(0) +
             body_frame(1, b"def"))
    ch1.expect(spec.Basic.QosOk, channel=2)
    ch1.send_method(1, spec.Basic.Get(queue=uniq, no_ack=True))
    ch1.expect(spec.Basic.GetOk, channel=1)
    hdr = ch1.recv_frame()
    assert isinstance(hdr, pika.frame.Header) and hdr.body_size == 6
    body = ch1.recv_frame()
    assert isinstance(body, pika.frame.Body) and body.fragment == b"abcdef"


# --- unknown classes / methods, malformed arguments ------------------------------------

@pytest.mark.parametrize("channel,class_id,method_id", [
    (1, 99, 10), (1, 50, 99), (0, 10, 99), (0, 99, 10), (3, 99, 10), (1, 70, 10)],
    ids=["class99-ch1", "queue.99-ch1", "connection.99-ch0", "class99-ch0",
         "class99-unopened", "file-class-70"])
def test_unknown_class_or_method(ch1, channel, class_id, method_id):
    """RabbitMQ drops the socket at once with no frame; connection.close 503/540 first
    is accepted too (see RABBITMQ-NOTES.md)."""
    ch1.send_raw_method(channel, class_id, method_id)
    expect_drop_or_close(ch1, (503, 540))


@pytest.mark.parametrize("channel,class_id,method_id,args", [
    (9, 90, 10, b""),            # tx.select
    (9, 85, 10, b"\x00"),        # confirm.select
    (9, 30, 10, b"\x01/\x00"),   # access.request (0-8 class, still accepted)
], ids=["tx.select", "confirm.select", "access.request"])
def test_known_extra_classes_accepted(ch1, channel, class_id, method_id, args):
    ch1.open_channel(channel)
    ch1.send_raw_method(channel, class_id, method_id, args)
    frm = ch1.recv_method()
    assert frm.channel_number == channel
    assert (frm.method.INDEX >> 16, frm.method.INDEX & 0xFFFF) == (class_id, method_id + 1)


@pytest.mark.parametrize("channel,payload,ids", [
    (1, method_payload(spec.Queue.Declare(queue="", exclusive=True))[:8], (50, 10)),
    (1, raw_method_payload(50, 10, b"\x00\x00\x10abc"), (50, 10)),   # shortstr cut short
    (1, raw_method_payload(50, 10), (50, 10)),                        # no arguments at all
    (1, raw_method_payload(60, 10, b"\x00\x00"), (60, 10)),           # basic.qos cut short
    (1, method_payload(spec.Basic.Qos(prefetch_count=1)) + b"junk", (60, 10)),  # trailing
    (7, raw_method_payload(20, 10), (20, 10)),                        # channel.open, new ch
], ids=["declare-cut", "shortstr-cut", "declare-empty", "qos-cut", "qos-trailing",
        "channel.open-empty"])
def test_malformed_method_arguments_get_501(ch1, channel, payload, ids):
    ch1.send(frame(FRAME_METHOD, channel, payload))
    expect_close(ch1, 501, *ids, prefix="FRAME_ERROR - cannot decode <<")
    close_ok_then_eof(ch1)


def test_truncated_connection_close_on_channel_0(raw):
    """RabbitMQ answers 541 INTERNAL_ERROR (its reader crashes decoding); 501/502 allowed."""
    c = raw()
    c.send(frame(FRAME_METHOD, 0, raw_method_payload(10, 50, b"\x00")))
    m = expect_drop_or_close(c, (541, 501, 502))
    assert m is not None, "RabbitMQ sends connection.close here"
    if m.reply_code == 541:
        assert (m.reply_text, m.class_id, m.method_id) == ("INTERNAL_ERROR", 0, 0)


# --- field tables ----------------------------------------------------------------------

def test_well_formed_field_table_accepted(ch1):
    ch1.send(frame(FRAME_METHOD, 1, declare_payload(table(b"\x03foot\x01"),
                                                    name=b"warren-fault-ok")))
    ch1.expect(spec.Queue.DeclareOk, channel=1)


@pytest.mark.parametrize("entries", [
    b"\x03fooZ\x01",                     # unknown type char
    b"\x03fooQ\x00\x00\x00\x00",         # unknown type char
    b"\x03fooI\x00\x01",                 # 32-bit int with 2 bytes
    b"\x03fooS\x00\x00\x00\x50abc",      # long string longer than the table
], ids=["type-Z", "type-Q", "int-cut", "longstr-cut"])
def test_bad_field_table_value(ch1, entries):
    """RabbitMQ drops the socket with no frame; connection.close 501/502 first is accepted."""
    ch1.send(frame(FRAME_METHOD, 1, declare_payload(table(entries))))
    expect_drop_or_close(ch1, (501, 502))


@pytest.mark.parametrize("length", [100, 3], ids=["beyond-payload", "cuts-entry"])
def test_field_table_length_wrong_gets_501(ch1, length):
    ch1.send(frame(FRAME_METHOD, 1, declare_payload(struct.pack(">I", length) +
                                                    b"\x03foot\x01")))
    expect_close(ch1, 501, 50, 10, prefix="FRAME_ERROR - cannot decode <<")
    close_ok_then_eof(ch1)


def test_known_argument_of_wrong_type_is_a_channel_error(ch1):
    ch1.send(frame(FRAME_METHOD, 1, declare_payload(
        table(b"\x0cx-max-lengthS\x00\x00\x00\x03abc"), name=b"warren-fault-q2")))
    m = ch1.expect(spec.Channel.Close, channel=1)
    assert (m.reply_code, m.class_id, m.method_id) == (406, 50, 10)
    assert m.reply_text == ("PRECONDITION_FAILED - invalid arg 'x-max-length' for queue "
                            "'warren-fault-q2' in vhost '/': \"expected integer, got longstr\"")
    ch1.send_method(1, spec.Channel.CloseOk())
    ch1.open_channel(1)


@pytest.mark.parametrize("props", [
    struct.pack(">H", 0x2000) + table(b"\x03fooZ\x01"),   # headers with unknown type
    struct.pack(">H", 0x8000) + b"\x10ab",                 # content-type cut short
], ids=["headers-bad-type", "content-type-cut"])
def test_malformed_content_properties(ch1, props):
    """RabbitMQ: 541 INTERNAL_ERROR (the channel crashes decoding them); 501/502 allowed."""
    ch1.send(method_frame(1, spec.Basic.Publish(routing_key="nowhere")) +
             frame(FRAME_HEADER, 1, struct.pack(">HHQ", 60, 0, 3) + props) +
             body_frame(1, b"abc"))
    m = expect_drop_or_close(ch1, (541, 501, 502))
    assert m is not None, "RabbitMQ sends connection.close here"
    if m.reply_code == 541:
        assert (m.reply_text, m.class_id, m.method_id) == ("INTERNAL_ERROR", 0, 0)


# --- methods on the wrong channel ------------------------------------------------------

@pytest.mark.parametrize("method", [
    spec.Queue.Declare(queue="", exclusive=True), spec.Basic.Qos(prefetch_count=1),
    spec.Channel.Open(),
    spec.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                            response=plain_response(), locale="en_US"),
    spec.Connection.TuneOk(channel_max=10, frame_max=4096, heartbeat=0),
    spec.Connection.Open(virtual_host="/"), spec.Connection.CloseOk()],
    ids=lambda m: m.NAME)
def test_wrong_method_on_channel_0_gets_504(raw, method):
    c = raw()
    c.send_method(0, method)
    expect_close(c, 504, method.INDEX >> 16, method.INDEX & 0xFFFF,
                 text=UNEXPECTED_IN_RUNNING)
    close_ok_then_eof(c)


@pytest.mark.parametrize("method", [
    spec.Connection.Open(virtual_host="/"),
    spec.Connection.Close(reply_code=200, reply_text="", class_id=0, method_id=0),
    spec.Connection.TuneOk(channel_max=10, frame_max=4096, heartbeat=0)],
    ids=lambda m: m.NAME)
def test_connection_method_on_open_channel_gets_503(ch1, method):
    ch1.send_method(1, method)
    expect_close(ch1, 503, method.INDEX >> 16, method.INDEX & 0xFFFF, text=COMMAND_INVALID)
    close_ok_then_eof(ch1)


# --- channel_max -----------------------------------------------------------------------

def test_channel_max_limits_number_of_open_channels(raw):
    c = raw(channel_max=2)
    c.open_channel(1)
    c.open_channel(7)
    c.send_method(3, spec.Channel.Open())
    expect_close(c, 530, 0, 0, text="NOT_ALLOWED - number of channels opened (2) has "
                                    "reached the negotiated channel_max (2)")
    close_ok_then_eof(c)


def test_channel_max_frees_slot_on_close(raw):
    c = raw(channel_max=2)
    c.open_channel(1)
    c.open_channel(7)
    c.send_method(7, spec.Channel.Close(reply_code=200, reply_text="", class_id=0,
                                        method_id=0))
    c.expect(spec.Channel.CloseOk, channel=7)
    c.open_channel(3)


@pytest.mark.parametrize("channel_max,number", [(10, 11), (0, 65535)],
                         ids=["cm10-ch11", "default-ch65535"])
def test_channel_number_above_channel_max_is_accepted(raw, channel_max, number):
    """RabbitMQ limits how many channels are open, not the channel numbers."""
    kw = {"channel_max": channel_max} if channel_max else {}
    c = raw(**kw)
    c.open_channel(number)
    qos(c, number)


def test_non_open_method_beyond_channel_max_gets_530(raw):
    c = raw(channel_max=1)
    c.open_channel(1)
    c.send_method(2, spec.Basic.Qos(prefetch_count=1))
    expect_close(c, 530, 0, 0, text="NOT_ALLOWED - number of channels opened (1) has "
                                    "reached the negotiated channel_max (1)")
    close_ok_then_eof(c)


# --- closing channels and connections ----------------------------------------------------

def test_client_channel_close_gets_close_ok_and_channel_reopens(ch1):
    ch1.send_method(1, spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0,
                                          method_id=0))
    ch1.expect(spec.Channel.CloseOk, channel=1)
    ch1.open_channel(1)
    qos(ch1)


def test_method_after_channel_close_ok_gets_504(ch1):
    ch1.send_method(1, spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0,
                                          method_id=0))
    ch1.expect(spec.Channel.CloseOk, channel=1)
    ch1.send_method(1, spec.Basic.Qos(prefetch_count=1))
    expect_close(ch1, 504, 60, 10, text=CHANNEL_OPEN_EXPECTED)
    close_ok_then_eof(ch1)


def _server_closes_channel_1(c):
    c.send_method(1, spec.Queue.Declare(queue="warren-fault-no-such-queue", passive=True))
    m = c.expect(spec.Channel.Close, channel=1)
    assert (m.reply_code, m.class_id, m.method_id) == (404, 50, 10)
    assert m.reply_text == "NOT_FOUND - no queue 'warren-fault-no-such-queue' in vhost '/'"


def test_frames_on_closing_channel_are_dropped_until_close_ok(ch1):
    _server_closes_channel_1(ch1)
    ch1.send_method(1, spec.Basic.Qos(prefetch_count=1))
    ch1.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
    ch1.send(method_frame(1, spec.Basic.Publish(routing_key="nowhere")) +
             header_frame(1, 3) + body_frame(1, b"abc"))
    expect_nothing(ch1, 0.5)
    ch1.send_method(1, spec.Channel.CloseOk())
    ch1.send_method(1, spec.Channel.Open())
    ch1.expect(spec.Channel.OpenOk, channel=1)   # nothing else came first
    qos(ch1)


def test_channel_open_on_closing_channel_gets_504(ch1):
    """channel.open is the one method not dropped on a closing channel: it is a
    connection error (the server may send this close after later replies)."""
    _server_closes_channel_1(ch1)
    ch1.send_method(1, spec.Channel.Open())
    expect_close(ch1, 504, 20, 10, text="CHANNEL_ERROR - second 'channel.open' seen")
    close_ok_then_eof(ch1)


def test_other_channels_work_while_one_is_closing(ch1):
    _server_closes_channel_1(ch1)
    ch1.open_channel(2)
    qos(ch1, 2)
    ch1.send_method(1, spec.Channel.CloseOk())
    ch1.open_channel(1)


def test_channel_close_crossing_server_channel_close(ch1):
    """Both sides close at once: the server answers our close with close-ok and still
    takes our close-ok for its own close."""
    _server_closes_channel_1(ch1)
    ch1.send_method(1, spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0,
                                          method_id=0))
    ch1.expect(spec.Channel.CloseOk, channel=1)
    ch1.send_method(1, spec.Channel.CloseOk())
    ch1.open_channel(1)
    qos(ch1)


def test_client_connection_close_gets_close_ok(ch1):
    ch1.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0,
                                             method_id=0))
    ch1.expect(spec.Connection.CloseOk, channel=0)
    # anything after connection.close is ignored
    ch1.send_method(1, spec.Basic.Qos(prefetch_count=1))
    ch1.send_method(2, spec.Channel.Open())
    expect_nothing(ch1, 0.5)


def test_frames_ignored_after_server_connection_close(ch1):
    ch1.send_method(5, spec.Basic.Qos(prefetch_count=1))
    expect_close(ch1, 504, 60, 10, text=CHANNEL_OPEN_EXPECTED)
    ch1.send_method(1, spec.Basic.Qos(prefetch_count=1))
    ch1.send_method(2, spec.Channel.Open())
    ch1.send(frame(9, 1, b""))           # not even a frame error is reported now
    expect_nothing(ch1, 0.5)
    close_ok_then_eof(ch1)


@pytest.mark.slow
def test_server_drops_socket_if_client_never_closes_after_close_ok(ch1):
    """RabbitMQ waits up to 30 s for the client to close the socket after close-ok."""
    ch1.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0,
                                             method_id=0))
    ch1.expect(spec.Connection.CloseOk, channel=0)
    assert ch1.wait_closed(35.0)


@pytest.mark.slow
def test_server_drops_socket_if_close_ok_never_comes(ch1):
    """After its own connection.close RabbitMQ waits up to 30 s for close-ok."""
    ch1.send_method(5, spec.Basic.Qos(prefetch_count=1))
    expect_close(ch1, 504, 60, 10, text=CHANNEL_OPEN_EXPECTED)
    assert ch1.wait_closed(35.0)


# --- heartbeats ------------------------------------------------------------------------

def test_missed_heartbeats_close_connection(raw):
    """With heartbeat=1 RabbitMQ sends a heartbeat every ~0.5 s and, hearing nothing,
    drops the socket after ~3 s, with no connection.close."""
    c = raw(heartbeat=1)
    t0 = time.monotonic()
    beats = []
    while True:
        try:
            frm = c.recv_frame(timeout=10.0)
        except Closed:
            break
        except Timeout:
            pytest.fail("connection still open 10 s after the handshake")
        assert isinstance(frm, pika.frame.Heartbeat), "unexpected %r" % (frm,)
        assert frm.channel_number == 0
        beats.append(time.monotonic() - t0)
    elapsed = time.monotonic() - t0
    assert elapsed <= 10.0
    assert len(beats) >= 2, beats
    assert beats[0] <= 1.5, beats
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert all(g <= 1.2 for g in gaps), gaps


def test_client_heartbeats_keep_connection_alive(raw):
    c = raw(heartbeat=1)
    got = 0
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        c.send(heartbeat_frame(0))
        try:
            frm = c.recv_frame(timeout=0.3)
            assert isinstance(frm, pika.frame.Heartbeat), frm
            got += 1
        except Timeout:
            pass
    assert got >= 2
    c.open_channel(1)
    qos(c)


def test_no_heartbeats_when_disabled(raw):
    c = raw(heartbeat=0)
    expect_nothing(c, 1.5)
    c.open_channel(1)
    qos(c)
