#!/usr/bin/python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/ (a few valid inputs each).

Frames are encoded with pika (Debian's python3-pika), so the seeds come from another
implementation. Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import datetime
import decimal
import hashlib
import os
import struct

import pika.data
import pika.frame
import pika.spec as spec

HERE = os.path.dirname(os.path.abspath(__file__))


def method(ch, m):
    return pika.frame.Method(ch, m).marshal()


def header(ch, size, **props):
    return pika.frame.Header(ch, size, spec.BasicProperties(**props)).marshal()


def body(ch, data):
    return pika.frame.Body(ch, data).marshal()


def heartbeat():
    return pika.frame.Heartbeat().marshal()


def method_payload(m):
    return struct.pack(">I", m.INDEX) + b"".join(m.encode())


def table_bytes(t):
    pieces = []
    pika.data.encode_table(pieces, t)
    return b"".join(pieces)


TABLE = {
    "s": "text", "x": b"\x00\xff", "t": True, "I": -7, "l": 2**40, "D": decimal.Decimal("1.5"),
    "T": datetime.datetime(2024, 1, 2, 3, 4, 5), "F": {"inner": [1, "a", None]}, "V": None,
    "x-match": "any", "A": [[], {}],
}
# Types pika cannot write, as raw entries appended to a table: b B s u i f d.
RAW_ENTRIES = (b"\x02i8b\xfb" + b"\x02u8B\xfa" + b"\x03i16s\xfe\xd4" + b"\x03u16u\xfd\xe8"
               + b"\x03u32i\xee\x6b\x28\x00" + b"\x03f32f\x3f\xc0\x00\x00"
               + b"\x03f64d\xc0\x02\x00\x00\x00\x00\x00\x00")


def all_types_table():
    t = table_bytes(TABLE)
    entries = t[4:] + RAW_ENTRIES
    return struct.pack(">I", len(entries)) + entries


PROPS = dict(content_type="text/plain", content_encoding="utf-8", headers=TABLE,
             delivery_mode=2, priority=5, correlation_id="c", reply_to="r",
             expiration="1000", message_id="m", timestamp=1700000000, type="t",
             user_id="guest", app_id="a", cluster_id="cl")


def props_bytes(**props):
    """Property flags and values: a content header payload without class, weight, size."""
    return pika.frame.Header(1, 0, spec.BasicProperties(**props)).marshal()[7 + 12:-1]


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    for data in seeds:
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
            f.write(data)


def publish(ch, exchange, key, data, **props):
    return (method(ch, spec.Basic.Publish(exchange=exchange, routing_key=key))
            + header(ch, len(data), **props) + body(ch, data))


def main():
    write("frame_parser_fuzz", [
        b"\x01" + method(1, spec.Queue.Declare(queue="q", durable=True, arguments=TABLE)),
        b"\x00" + publish(1, "", "q", b"hello", **PROPS) + heartbeat(),
        b"\x02" + method(0, spec.Connection.Tune(2047, 131072, 60)) + body(3, b"x" * 5000),
        b"\x03" + heartbeat() + heartbeat(),
    ])

    write("field_table_fuzz", [
        b"\x00" + all_types_table(),
        b"\x00" + table_bytes({}),
        b"\x01" + b"F" + all_types_table(),
        b"\x01" + b"A" + struct.pack(">I", 7) + b"I\x00\x00\x00\x01Vt",
        b"\x02" + props_bytes(**PROPS),
        b"\x02" + props_bytes(content_type="a", delivery_mode=1),
        b"\x03" + method_payload(spec.Exchange.Declare(exchange="x", type="topic",
                                                       durable=True, arguments=TABLE)),
        b"\x03" + method_payload(spec.Basic.Nack(delivery_tag=7, multiple=True, requeue=True)),
        b"\x03" + method_payload(spec.Connection.StartOk(client_properties=TABLE,
                                                         mechanism="PLAIN",
                                                         response="\0guest\0guest",
                                                         locale="en_US")),
    ])

    def rec(kind, payload):
        return struct.pack(">BH", kind, len(payload)) + payload

    def publish_records(data, pieces=1):
        out = rec(0, method_payload(spec.Basic.Publish(exchange="x", routing_key="k")))
        hdr = pika.frame.Header(1, len(data), spec.BasicProperties(**PROPS)).marshal()[7:-1]
        out += rec(1, hdr)
        step = max(1, (len(data) + pieces - 1) // pieces)
        for i in range(0, len(data), step):
            out += rec(2, data[i:i + step])
        return out

    write("command_assembler_fuzz", [
        b"\x20" + publish_records(b"hello world", 3),
        b"\xff" + publish_records(b"") + rec(0, method_payload(spec.Basic.Ack(delivery_tag=1))),
        b"\x04" + publish_records(b"too long body", 2) + rec(3, b""),
        b"\x40" + rec(0, method_payload(spec.Queue.Declare(queue="q", arguments=TABLE)))
        + rec(0, method_payload(spec.Basic.Get(queue="q"))),
    ])

    conversation = (
        method(1, spec.Queue.Declare(queue="q1"))
        + method(1, spec.Exchange.Declare(exchange="t", type="topic"))
        + method(1, spec.Queue.Bind(queue="q1", exchange="t", routing_key="a.#"))
        + publish(1, "t", "a.b", b"payload", **PROPS)
        + method(1, spec.Basic.Get(queue="q1"))
        + method(1, spec.Basic.Ack(delivery_tag=1))
    )
    consumer = (
        method(2, spec.Confirm.Select())
        + method(2, spec.Queue.Declare(queue="", exclusive=True))
        + method(2, spec.Basic.Qos(prefetch_count=1))
        + method(2, spec.Basic.Consume(queue="", consumer_tag="c1"))
        + publish(2, "", "", b"x" * 10000)
        + publish(2, "", "", b"second")
        + method(2, spec.Basic.Nack(delivery_tag=1, requeue=True))
        + method(2, spec.Basic.Cancel(consumer_tag="c1"))
    )
    tx = (
        method(1, spec.Tx.Select())
        + method(1, spec.Queue.Declare(queue="txq", arguments={"x-max-length": 2}))
        + publish(1, "", "txq", b"a") + method(1, spec.Tx.Rollback())
        + publish(1, "", "txq", b"b") + method(1, spec.Tx.Commit())
        + method(1, spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0,
                                       method_id=0))
        + method(1, spec.Channel.Open())
    )
    headers = (
        method(1, spec.Exchange.Declare(exchange="h", type="headers"))
        + method(1, spec.Queue.Declare(queue="hq"))
        + method(1, spec.Queue.Bind(queue="hq", exchange="h",
                                    arguments={"x-match": "any", "a": 1, "b": None}))
        + publish(1, "h", "", b"m", headers={"a": 1})
        + method(1, spec.Queue.Purge(queue="hq"))
        + method(1, spec.Queue.Delete(queue="hq"))
        + method(0, spec.Connection.Close(reply_code=200, reply_text="", class_id=0,
                                          method_id=0))
    )
    write("connection_fuzz", [
        b"\x00" + conversation,
        b"\x05" + consumer,
        b"\x3f" + tx,
        b"\x01" + headers,
        b"\x00" + heartbeat() + method(1, spec.Basic.Get(queue="missing")),
    ])


if __name__ == "__main__":
    main()
