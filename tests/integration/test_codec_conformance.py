"""Codec conformance: Warren's generated codec against another implementation, pika.spec.

Every method pika.spec can encode is encoded with non-default field values (several
combinations of its bit fields, rich field tables with every type letter RabbitMQ knows),
then piped through build/tests/amqp_reencode, which decodes each frame with Warren's
decode_method / BasicProperties::decode and encodes it again. The output must equal the
input byte for byte. Content headers get the same treatment for many property sets.

No broker is started. The tool is found in $WARREN_BUILD_DIR (default <repo>/build).
"""
import datetime
import decimal
import inspect
import os
import struct
import subprocess

import pika.data
import pika.frame
import pika.spec
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("WARREN_BUILD_DIR", os.path.join(ROOT, "build"))
TOOL = os.path.join(BUILD_DIR, "tests", "amqp_reencode")


# ---------------------------------------------------------------------------------------
# Field values pika cannot produce itself (b B s u i f d): encoded raw through a small
# extension of pika.data.encode_value, so tables can hold every type letter.
class Raw:
    def __init__(self, type_char, packed):
        self.type_char = type_char
        self.packed = packed


_pika_encode_value = pika.data.encode_value


def _encode_value(pieces, value):
    if isinstance(value, Raw):
        pieces.append(value.type_char + value.packed)
        return 1 + len(value.packed)
    return _pika_encode_value(pieces, value)


pika.data.encode_value = _encode_value  # encode_table and arrays look it up at call time


def rich_table(tag):
    """A table with every type letter, nested tables and arrays, unicode and binary."""
    return {
        "tag": tag,
        "longstr": "h\u00e9llo w\u00f6rld \u2603",
        "empty-str": "",
        "bytes": b"\x00\x01\xfe\xff",
        "true": True,
        "false": False,
        "int32": -123456,
        "int32-max": 2**31 - 1,
        "int64": 2**40 + 3,
        "int64-neg": -(2**62),
        "decimal": decimal.Decimal("-12.345"),
        "decimal-int": decimal.Decimal("42"),
        "timestamp": datetime.datetime(2023, 11, 14, 22, 13, 20),
        "void": None,
        "int8": Raw(b"b", struct.pack(">b", -5)),
        "uint8": Raw(b"B", struct.pack(">B", 250)),
        "int16": Raw(b"s", struct.pack(">h", -300)),
        "uint16": Raw(b"u", struct.pack(">H", 65000)),
        "uint32": Raw(b"i", struct.pack(">I", 4000000000)),
        "float": Raw(b"f", struct.pack(">f", 1.5)),
        "double": Raw(b"d", struct.pack(">d", -2.25e-300)),
        "nested": {
            "inner": [1, "two", None, {"deep": True, "deeper": {"a": [[], {}]}}],
            "x-match": "any",
        },
        "array": [1, "a", None, [], {}, Raw(b"s", struct.pack(">h", 7)), b"\x00"],
        "empty-table": {},
        "empty-array": [],
    }


# ---------------------------------------------------------------------------------------
# Argument values by pika's parameter names. Each method is checked with several variants
# so that every bit field is seen both set and clear, and next to set or clear neighbours;
# variant 3 is all zeros, false and empty.
BIT_FIELDS = {
    "active", "auto_delete", "durable", "exclusive", "global_qos", "if_empty", "if_unused",
    "immediate", "insist", "internal", "mandatory", "multiple", "no_ack", "no_local",
    "nowait", "passive", "read", "redelivered", "requeue", "write",
}
LONGSTR_FIELDS = {"challenge", "channel_id", "locales", "mechanisms", "response"}
TABLE_FIELDS = {"arguments", "client_properties", "server_properties"}
INT_FIELDS = {
    # name: (octet/short/long/longlong value that is not the default)
    "version_major": 0xA1,
    "version_minor": 0x7F,
    "channel_max": 2047,
    "frame_max": 131072,
    "heartbeat": 580,
    "reply_code": 404,
    "class_id": 50,
    "method_id": 10,
    "ticket": 0xBEEF,
    "message_count": 0xFFFFFFF0,
    "consumer_count": 0x01020304,
    "prefetch_size": 0x0A0B0C0D,
    "prefetch_count": 65535,
    "delivery_tag": 2**63 + 5,
}


def value_for(name, index, variant):
    if name in BIT_FIELDS:
        if variant == 0:
            return True
        if variant == 1:
            return index % 2 == 0
        if variant == 2:
            return index % 2 == 1
        return False
    if name in INT_FIELDS:
        return INT_FIELDS[name] if variant != 3 else 0
    if name in TABLE_FIELDS:
        return rich_table("%s-%d" % (name, variant)) if variant != 3 else {}
    if name in LONGSTR_FIELDS:
        # Longer than a shortstr can be, with NULs and high bytes.
        return (b"\x00PLAIN\xffguest\x00" + bytes(range(256)) * 2) if variant != 3 else b""
    # Everything else is a shortstr: unicode near the 255-byte limit, or empty.
    if variant == 3:
        return ""
    if variant == 2:
        return "\u00e9" * 127  # 254 bytes
    return "%s-v%d \u2603" % (name, variant)


VARIANTS = range(4)


def method_classes():
    return [m for _, m in sorted(pika.spec.methods.items())]


def build_method(method_class, variant):
    params = list(inspect.signature(method_class.__init__).parameters)[1:]
    kwargs = {}
    for i, name in enumerate(params):
        assert (name in BIT_FIELDS or name in INT_FIELDS or name in TABLE_FIELDS
                or name in LONGSTR_FIELDS or name.endswith(("_tag", "text", "host",
                "queue", "exchange", "key", "type", "destination", "source", "reason",
                "mechanism", "locale", "capabilities", "known_hosts", "out_of_band",
                "cluster_id", "realm"))), "no test value for %s.%s" % (method_class.NAME, name)
        kwargs[name] = value_for(name, i, variant)
    return method_class(**kwargs)


def raw_frame(frame_type, channel, payload):
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def method_payload(method):
    return struct.pack(">I", method.INDEX) + b"".join(method.encode())


def reencode(data):
    if not os.access(TOOL, os.X_OK):
        pytest.fail("%s is missing: build it (ninja -C %s tests/amqp_reencode)" % (TOOL, BUILD_DIR))
    proc = subprocess.run([TOOL], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


def assert_same_bytes(data):
    code, out, err = reencode(data)
    assert code == 0, err
    if out != data:
        at = next((i for i, (a, b) in enumerate(zip(out, data)) if a != b), min(len(out), len(data)))
        pytest.fail("re-encoded bytes differ at offset %d (in %d bytes, out %d bytes):\n"
                    "  pika:   %s\n  warren: %s" % (at, len(data), len(out),
                                                    data[max(0, at - 16):at + 16].hex(),
                                                    out[max(0, at - 16):at + 16].hex()))


# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method_class", method_classes(), ids=lambda m: m.NAME)
def test_method_reencodes_byte_for_byte(method_class):
    frames = b"".join(pika.frame.Method(1 + v, build_method(method_class, v)).marshal()
                      for v in VARIANTS)
    frames += pika.frame.Method(65535, build_method(method_class, 0)).marshal()
    assert_same_bytes(frames)


def test_unknown_method_is_refused():
    code, _, err = reencode(raw_frame(1, 1, struct.pack(">HH", 60, 999)))
    assert code != 0
    assert "unknown method" in err


PROPERTY_VALUES = {
    "content_type": "application/json; charset=utf-8",
    "content_encoding": "gzip",
    "headers": rich_table("headers"),
    "delivery_mode": 2,
    "priority": 9,
    "correlation_id": "corr-\u00e9",
    "reply_to": "amq.rabbitmq.reply-to.g1h2AA==",
    "expiration": "60000",
    "message_id": "m" * 255,
    "timestamp": 1700000000,
    "type": "order.created",
    "user_id": "guest",
    "app_id": "conformance",
    "cluster_id": "c1",
}

PROPERTY_SETS = {"none": {}, "all": dict(PROPERTY_VALUES)}
PROPERTY_SETS.update({"only-" + k: {k: v} for k, v in PROPERTY_VALUES.items()})
PROPERTY_SETS["every-other"] = {k: v for i, (k, v) in enumerate(PROPERTY_VALUES.items())
                                if i % 2 == 0}
PROPERTY_SETS["empty-strings"] = {k: ("" if isinstance(v, str) else v)
                                  for k, v in PROPERTY_VALUES.items()}
PROPERTY_SETS["empty-headers"] = {"headers": {}, "delivery_mode": 1}


def test_property_names_cover_pika():
    params = set(list(inspect.signature(pika.spec.BasicProperties.__init__).parameters)[1:])
    assert params == set(PROPERTY_VALUES)


@pytest.mark.parametrize("name", sorted(PROPERTY_SETS))
def test_content_header_reencodes_byte_for_byte(name):
    props = pika.spec.BasicProperties(**PROPERTY_SETS[name])
    data = pika.frame.Header(3, 2**40 + 1, props).marshal()
    data += pika.frame.Header(4, 0, props).marshal()
    assert_same_bytes(data)


def test_publish_sequence_with_body_and_heartbeat_frames():
    props = pika.spec.BasicProperties(**PROPERTY_VALUES)
    body = bytes(range(256)) * 20
    data = pika.frame.Method(1, pika.spec.Basic.Publish(exchange="x", routing_key="k",
                                                        mandatory=True)).marshal()
    data += pika.frame.Header(1, len(body), props).marshal()
    data += pika.frame.Body(1, body[:4000]).marshal()
    data += pika.frame.Body(1, body[4000:]).marshal()
    data += pika.frame.Heartbeat().marshal()
    assert_same_bytes(data)


def test_the_tool_really_reencodes():
    # A 't' value of 2 reads as true and is written back as 1, so the output differs: the
    # tool is not a pass-through.
    args = {"flag": Raw(b"t", b"\x02")}
    data = pika.frame.Method(1, pika.spec.Queue.Declare(queue="q", arguments=args)).marshal()
    code, out, err = reencode(data)
    assert code == 0, err
    expected = pika.frame.Method(1, pika.spec.Queue.Declare(queue="q",
                                                            arguments={"flag": True})).marshal()
    assert out == expected


@pytest.mark.parametrize("data", [
    # Truncated method arguments (frame intact).
    b"\x01\x00\x01\x00\x00\x00\x05\x00\x32\x00\x0a\x00\xce",
    # Bytes left after the arguments.
    raw_frame(1, 1, method_payload(pika.spec.Basic.Ack(delivery_tag=1)) + b"\x00"),
    # A content header of another class than basic.
    raw_frame(2, 1, struct.pack(">HHQH", 50, 0, 0, 0)),
    # Properties with a flag bit basic does not have.
    raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 0, 0x0002)),
    # Input ending inside a frame.
    pika.frame.Method(1, pika.spec.Basic.Ack(delivery_tag=1)).marshal()[:-3],
    # Unknown field type in a table.
    pika.frame.Method(1, pika.spec.Queue.Declare(
        queue="q", arguments={"k": Raw(b"Z", b"")})).marshal(),
    # Bad frame end.
    pika.frame.Heartbeat().marshal()[:-1] + b"\x00",
], ids=["truncated-args", "trailing-bytes", "non-basic-header", "bad-property-flags",
        "partial-frame", "unknown-field-type", "bad-frame-end"])
def test_the_tool_refuses_malformed_input(data):
    code, _, err = reencode(data)
    assert code != 0
    assert err
