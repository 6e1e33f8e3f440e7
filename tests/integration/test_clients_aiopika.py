"""aio-pika (Debian's python3-aio-pika over aiormq, asyncio) against the broker.

Each test runs one coroutine with asyncio.run under an overall time limit (there is no
pytest-asyncio here). aio-pika opens channels in confirm mode unless told otherwise and
publishes with mandatory=True, matching returned messages to publishes by message_id
(aiormq fills one in).
"""
import asyncio
import datetime
import functools

import pytest

aio_pika = pytest.importorskip("aio_pika")
aiormq = pytest.importorskip("aiormq")

from aio_pika import DeliveryMode, ExchangeType, Message  # noqa: E402
from aio_pika.exceptions import (  # noqa: E402
    ChannelClosed, ChannelNotFoundEntity, ChannelPreconditionFailed, QueueEmpty)

LIMIT = 30  # seconds for a whole scenario
OP = 10     # seconds for one operation


def run_async(fn):
    """Turns `async def test_x(broker, uniq)` into a sync test run by asyncio.run."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        async def limited():
            return await asyncio.wait_for(fn(*args, **kwargs), LIMIT)
        return asyncio.run(limited())
    return wrapper


async def connect(broker):
    return await aio_pika.connect_robust(broker.url, timeout=OP)


async def get_one(queue, no_ack=False, timeout=OP):
    """basic.get until a message comes (publishing is asynchronous to routing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        m = await queue.get(no_ack=no_ack, fail=False, timeout=OP)
        if m is not None:
            return m
        if loop.time() > deadline:
            raise AssertionError("no message in %s" % queue.name)
        await asyncio.sleep(0.05)


async def close(conn):
    await asyncio.wait_for(conn.close(), OP)


async def cleanup(broker, queues=(), exchanges=()):
    conn = await aio_pika.connect(broker.url, timeout=OP)
    try:
        ch = await conn.channel()
        for q in queues:
            await ch.queue_delete(q)
        for x in exchanges:
            await ch.exchange_delete(x)
    finally:
        await close(conn)


@run_async
async def test_connect_robust_channel_and_close(broker):
    conn = await connect(broker)
    assert not conn.is_closed
    caps = conn.transport.connection.server_properties["capabilities"]
    assert caps["publisher_confirms"] is True      # aiormq refuses confirm channels otherwise
    assert caps["basic.nack"] is True              # aiormq refuses nack otherwise
    ch1 = await conn.channel()
    ch2 = await conn.channel(publisher_confirms=False)
    assert ch1.number != ch2.number
    assert not ch1.is_closed and not ch2.is_closed
    await ch2.close()
    assert ch2.is_closed and not ch1.is_closed
    # the connection closes the channels that are left
    await conn.close()
    assert conn.is_closed
    assert ch1.is_closed
    # a second close is harmless
    await conn.close()


@run_async
async def test_exchange_types_and_bindings(broker, uniq):
    names = {t: "%s-%s" % (uniq, t.value) for t in
             (ExchangeType.DIRECT, ExchangeType.FANOUT, ExchangeType.TOPIC, ExchangeType.HEADERS)}
    qnames = [uniq + "-q1", uniq + "-q2"]
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        ex = {t: await ch.declare_exchange(n, t, auto_delete=False) for t, n in names.items()}
        q1 = await ch.declare_queue(qnames[0])
        q2 = await ch.declare_queue(qnames[1])
        await q1.bind(ex[ExchangeType.DIRECT], routing_key="k1")
        await q2.bind(ex[ExchangeType.DIRECT], routing_key="k2")
        await q1.bind(ex[ExchangeType.FANOUT])
        await q2.bind(ex[ExchangeType.FANOUT])
        await q1.bind(ex[ExchangeType.TOPIC], routing_key="*.one")
        await q2.bind(ex[ExchangeType.TOPIC], routing_key="two.#")
        await q1.bind(ex[ExchangeType.HEADERS], arguments={"x-match": "all", "a": 1, "b": "x"})
        await q2.bind(ex[ExchangeType.HEADERS], arguments={"x-match": "any", "a": 2, "b": "y"})

        async def pub(t, body, rk="", headers=None):
            await ex[t].publish(Message(body, headers=headers), routing_key=rk)

        await pub(ExchangeType.DIRECT, b"d1", "k1")
        await pub(ExchangeType.DIRECT, b"d2", "k2")
        await pub(ExchangeType.FANOUT, b"f")
        await pub(ExchangeType.TOPIC, b"t1", "x.one")
        await pub(ExchangeType.TOPIC, b"t2", "two.x.y")
        await pub(ExchangeType.TOPIC, b"t-none", "three")
        await pub(ExchangeType.HEADERS, b"h1", headers={"a": 1, "b": "x"})
        await pub(ExchangeType.HEADERS, b"h2", headers={"a": 3, "b": "y"})
        await pub(ExchangeType.HEADERS, b"h-none", headers={"a": 1})

        async def bodies(q, n):
            return [(await get_one(q, no_ack=True)).body for _ in range(n)]

        assert await bodies(q1, 4) == [b"d1", b"f", b"t1", b"h1"]
        assert await bodies(q2, 4) == [b"d2", b"f", b"t2", b"h2"]
        assert await q1.get(no_ack=True, fail=False) is None
        assert await q2.get(no_ack=True, fail=False) is None

        # unbinding stops the routing
        await q1.unbind(ex[ExchangeType.DIRECT], routing_key="k1")
        await pub(ExchangeType.DIRECT, b"d1-again", "k1")
        await asyncio.sleep(0.1)
        assert await q1.get(no_ack=True, fail=False) is None
    finally:
        await close(conn)
        await cleanup(broker, qnames, names.values())


@run_async
async def test_exchange_to_exchange_binding(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        src = await ch.declare_exchange(uniq + "-src", ExchangeType.TOPIC)
        dst = await ch.declare_exchange(uniq + "-dst", ExchangeType.FANOUT)
        await dst.bind(src, routing_key="a.#")
        q = await ch.declare_queue(uniq, exclusive=True)
        await q.bind(dst)
        await src.publish(Message(b"yes"), routing_key="a.b")
        await src.publish(Message(b"no"), routing_key="b.a", mandatory=False)
        assert (await get_one(q, no_ack=True)).body == b"yes"
        await asyncio.sleep(0.1)
        assert await q.get(no_ack=True, fail=False) is None
        await dst.unbind(src, routing_key="a.#")
    finally:
        await close(conn)
        await cleanup(broker, exchanges=[uniq + "-src", uniq + "-dst"])


@run_async
async def test_publish_properties_roundtrip(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(uniq, exclusive=True, arguments={"x-max-priority": 9})
        ts = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        # pamqp 3.2 cannot encode table ints in -128..-1 (struct error in the writer task,
        # the publish then never completes), so the negative int is a 16-bit one.
        headers = {"str": "s", "int": -300, "big": 2 ** 40, "float": 2.5, "bool": False,
                   "list": [1, "two", True], "table": {"nested": "yes"}, "bytes": b"\x00\xff",
                   "none": None}
        confirm = await ch.default_exchange.publish(Message(
            b"payload", headers=headers, content_type="text/plain",
            content_encoding="utf-8", delivery_mode=DeliveryMode.PERSISTENT, priority=7,
            correlation_id="corr", reply_to="rq", expiration=60, message_id="mid",
            timestamp=ts, type="t", user_id="guest", app_id="aio"), routing_key=uniq)
        assert isinstance(confirm, aiormq.spec.Basic.Ack)
        m = await get_one(q)
        assert m.body == b"payload"
        assert m.content_type == "text/plain"
        assert m.content_encoding == "utf-8"
        assert m.delivery_mode == DeliveryMode.PERSISTENT
        assert m.priority == 7
        assert m.correlation_id == "corr"
        assert m.reply_to == "rq"
        assert m.expiration == 60  # sent as the string "60000" (milliseconds)
        assert m.message_id == "mid"
        assert m.timestamp.replace(tzinfo=None) == ts.replace(tzinfo=None)  # naive on the way in
        assert m.type == "t"
        assert m.user_id == "guest"
        assert m.app_id == "aio"
        assert m.routing_key == uniq
        assert m.exchange == ""
        assert m.redelivered is False
        got = dict(m.headers)
        assert got["bytes"] in (b"\x00\xff", bytearray(b"\x00\xff"))
        del got["bytes"]
        expected = dict(headers)
        del expected["bytes"]
        # aio-pika's header_converter sends a float as its JSON text in a byte array ('x')
        expected["float"] = bytearray(b"2.5")
        assert got == expected
        await m.ack()
    finally:
        await close(conn)


@run_async
async def test_queue_iterator_with_process_ack(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=3)
        q = await ch.declare_queue(uniq, auto_delete=True)
        for i in range(10):
            await ch.default_exchange.publish(Message(str(i).encode()), routing_key=uniq)
        seen = []
        async with q.iterator() as it:
            async for message in it:
                async with message.process():
                    seen.append(int(message.body))
                if len(seen) == 10:
                    break
        assert seen == list(range(10))
        # leaving the iterator cancels its consumer; the auto-delete queue lost its last
        # consumer, so it is gone
        ch2 = await conn.channel()
        with pytest.raises(ChannelNotFoundEntity):
            await ch2.declare_queue(uniq, passive=True)
    finally:
        await close(conn)
        await cleanup(broker, [uniq])


@run_async
async def test_nack_requeue_reject_and_nack_multiple(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(uniq, exclusive=True)
        for b in (b"a", b"b", b"c"):
            await ch.default_exchange.publish(Message(b), routing_key=uniq)
        a = await get_one(q)
        assert (a.body, a.redelivered) == (b"a", False)
        await a.nack(requeue=True)
        a2 = await get_one(q)
        # requeued to its original position, flagged redelivered
        assert (a2.body, a2.redelivered) == (b"a", True)
        await a2.reject(requeue=False)          # dropped
        b = await get_one(q)
        c = await get_one(q)
        assert (b.body, c.body) == (b"b", b"c")
        await c.nack(multiple=True, requeue=True)  # returns b and c
        got = [await get_one(q) for _ in range(2)]
        assert [(m.body, m.redelivered) for m in got] == [(b"b", True), (b"c", True)]
        await got[1].ack(multiple=True)
        await asyncio.sleep(0.05)
        assert await q.get(fail=False) is None
    finally:
        await close(conn)


@run_async
async def test_publisher_confirms_and_returns(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()  # confirms on by default
        q = await ch.declare_queue(uniq, exclusive=True)
        results = await asyncio.gather(*[
            ch.default_exchange.publish(Message(b"%d" % i), routing_key=uniq)
            for i in range(50)])
        assert all(isinstance(r, aiormq.spec.Basic.Ack) for r in results)
        info = await ch.declare_queue(uniq, passive=True)
        assert info.declaration_result.message_count == 50

        # unroutable, mandatory (aio-pika's default): the basic.return arrives before the ack
        returned = await ch.default_exchange.publish(Message(b"lost"), routing_key=uniq + "-none")
        assert not isinstance(returned, aiormq.spec.Basic.Ack)
        assert returned.body == b"lost"

        # not mandatory: simply acked
        r = await ch.default_exchange.publish(Message(b"lost"), routing_key=uniq + "-none",
                                              mandatory=False)
        assert isinstance(r, aiormq.spec.Basic.Ack)

        # with on_return_raises the publish fails instead
        ch2 = await conn.channel(on_return_raises=True)
        with pytest.raises(aio_pika.exceptions.DeliveryError) as e:
            await ch2.default_exchange.publish(Message(b"lost"), routing_key=uniq + "-none")
        assert e.value.frame.reply_code == 312
        assert e.value.frame.reply_text == "NO_ROUTE"
    finally:
        await close(conn)


@run_async
async def test_transactions(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=False)
        q = await ch.declare_queue(uniq, exclusive=True)
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(Message(b"rolled-back"), routing_key=uniq)
        await tx.rollback()
        await asyncio.sleep(0.1)
        assert await q.get(fail=False) is None
        await ch.default_exchange.publish(Message(b"committed"), routing_key=uniq)
        await tx.commit()
        m = await q.get(fail=False)
        assert m is not None and m.body == b"committed"
        # an ack inside a transaction takes effect on commit only
        await m.ack()
        await tx.rollback()
        info = await ch.declare_queue(uniq, passive=True)
        assert info.declaration_result.message_count == 0  # still unacked, not ready
        await ch.close()
        # closing the channel returns the unacked message
        ch = await conn.channel(publisher_confirms=False)
        q = await ch.get_queue(uniq, ensure=False)
        m = await get_one(q)
        assert (m.body, m.redelivered) == (b"committed", True)
        await m.ack()

        # the async context manager commits
        async with ch.transaction():
            await ch.default_exchange.publish(Message(b"ctx"), routing_key=uniq)
        assert (await get_one(q, no_ack=True)).body == b"ctx"
    finally:
        await close(conn)


@run_async
async def test_transaction_on_confirm_channel_is_406(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True)
        with pytest.raises(ChannelPreconditionFailed) as e:
            await ch.channel.tx_select(timeout=OP)
        assert e.value.args[0].startswith("PRECONDITION_FAILED")
        ch2 = await conn.channel()
        await ch2.declare_queue(uniq, exclusive=True)
    finally:
        await close(conn)


@run_async
async def test_basic_get_and_empty(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(uniq, exclusive=True)
        assert await q.get(fail=False) is None
        with pytest.raises(QueueEmpty):
            await q.get(fail=True)
        for b in (b"1", b"2", b"3"):
            await ch.default_exchange.publish(Message(b), routing_key=uniq)
        m = await get_one(q)
        assert m.body == b"1"
        assert m.message_count == 2       # messages left, from basic.get-ok
        assert m.delivery_tag == 1
        await m.ack()
        m = await get_one(q, no_ack=True)
        assert (m.body, m.message_count) == (b"2", 1)
        purged = await q.purge()
        assert purged.message_count == 1
        assert await q.get(fail=False) is None
    finally:
        await close(conn)


@run_async
async def test_passive_declare_missing_is_channel_not_found(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        with pytest.raises(ChannelNotFoundEntity) as e:
            await ch.get_queue(uniq + "-missing", ensure=True)
        assert e.value.args[0] == "NOT_FOUND - no queue '%s-missing' in vhost '/'" % uniq
        ch2 = await conn.channel()
        with pytest.raises(ChannelNotFoundEntity) as e:
            await ch2.get_exchange(uniq + "-missing-x", ensure=True)
        assert e.value.args[0] == "NOT_FOUND - no exchange '%s-missing-x' in vhost '/'" % uniq
        # the connection survives channel errors
        ch3 = await conn.channel()
        q = await ch3.declare_queue(uniq, exclusive=True)
        await ch3.default_exchange.publish(Message(b"fine"), routing_key=uniq)
        assert (await get_one(q, no_ack=True)).body == b"fine"
        assert not conn.is_closed
    finally:
        await close(conn)


@run_async
async def test_redeclare_with_other_durability_is_precondition_failed(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.declare_queue(uniq, durable=False, auto_delete=False)
        ch2 = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed) as e:
            await ch2.declare_queue(uniq, durable=True)
        assert e.value.args[0] == ("PRECONDITION_FAILED - inequivalent arg 'durable' for "
                                   "queue '%s' in vhost '/': received 'true' but current "
                                   "is 'false'" % uniq)
        await ch.queue_delete(uniq)
    finally:
        await close(conn)


@run_async
async def test_use_after_channel_close_raises(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(uniq, exclusive=True)
        await ch.close()
        assert ch.is_closed
        with pytest.raises((ChannelClosed, RuntimeError, aio_pika.exceptions.ChannelInvalidStateError)):
            await q.get(fail=False)
        # the exclusive queue stays while its connection lives
        ch2 = await conn.channel()
        q2 = await ch2.get_queue(uniq, ensure=True)
        assert q2.name == uniq
    finally:
        await close(conn)


@run_async
async def test_prefetch_limits_unacked_deliveries(broker, uniq):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=2)
        q = await ch.declare_queue(uniq, exclusive=True)
        for i in range(6):
            await ch.default_exchange.publish(Message(b"%d" % i), routing_key=uniq)
        got = []

        async def on_message(m):
            got.append(m)

        tag = await q.consume(on_message)
        await asyncio.sleep(0.5)
        assert len(got) == 2
        await got[0].ack()
        await asyncio.sleep(0.3)
        assert len(got) == 3
        await got[2].ack(multiple=True)
        await asyncio.sleep(0.3)
        assert len(got) == 5
        await q.cancel(tag)
        assert [m.body for m in got] == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        await close(conn)
