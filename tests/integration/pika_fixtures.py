"""pika fixtures shared by the pika-driven suites: a connection, a channel, a janitor that
deletes what a test registers, and an assertion for channel errors."""
import pytest

from helpers import close_quietly, pika_connect, reply_text


@pytest.fixture
def conn(broker):
    c = pika_connect(broker)
    yield c
    close_quietly(c)


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def janitor(broker):
    """Deletes the queues and exchanges a test registers, through a fresh connection."""
    names = {"queues": [], "exchanges": []}

    class J:
        def queue(self, name):
            names["queues"].append(name)
            return name

        def exchange(self, name):
            names["exchanges"].append(name)
            return name

    yield J()
    c = pika_connect(broker)
    try:
        for q in names["queues"]:
            c.channel().queue_delete(q)
        for e in names["exchanges"]:
            c.channel().exchange_delete(e)
    finally:
        close_quietly(c)


def channel_closed(excinfo, code, text):
    """Asserts a ChannelClosedByBroker carries `code` and exactly `text` (as truncated)."""
    assert excinfo.value.reply_code == code, excinfo.value
    assert excinfo.value.reply_text == reply_text(text), excinfo.value
