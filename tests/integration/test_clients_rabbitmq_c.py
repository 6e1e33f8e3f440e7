"""rabbitmq-c (librabbitmq, Debian's librabbitmq-dev) and its amqp-tools CLIs against the broker.

clients/c/amqp_c_client.c is compiled once per session with `cc ... -lrabbitmq` into a
temporary directory; each test runs one of its scenarios (`<scenario> <host> <port>`,
exit 0 and "OK <scenario>" on success). The amqp-tools tests drive amqp-declare-queue,
amqp-publish, amqp-get, amqp-consume and amqp-delete-queue with --server/--port and
check the results with py-amqp (python3-amqp, kombu's transport).
"""
import os
import shutil
import subprocess
import time

import pytest

C_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients", "c",
                        "amqp_c_client.c")

SCENARIOS = [
    "roundtrip",
    "consume_ack",
    "confirm",
    "confirm_return",
    "channel_404",
    "large",
    "tx",
    "heartbeat",
    "exchange_bind",
]

TIMEOUT = 60


@pytest.fixture(scope="session")
def c_client(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (see tests/integration/apt-packages.txt)"
    out = str(tmp_path_factory.mktemp("amqp-c") / "amqp_c_client")
    r = subprocess.run([cc, "-std=c11", "-Wall", "-O1", "-o", out, C_SOURCE, "-lrabbitmq"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, "compiling %s failed:\n%s" % (C_SOURCE, r.stderr)
    return out


def test_c_scenario_list_is_complete(c_client):
    r = subprocess.run([c_client, "list"], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0
    assert r.stdout.split() == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rabbitmq_c(c_client, broker, scenario):
    r = subprocess.run([c_client, scenario, broker.host, str(broker.port)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, "scenario %s exited %s:\n%s\n%s" % (
        scenario, r.returncode, r.stdout, r.stderr)
    assert r.stdout.strip() == "OK %s" % scenario


# ------------------------------------------------------------------ amqp-tools


def tool(broker, name, *args, input=None, check=True):
    exe = shutil.which(name)
    assert exe, "%s is missing (apt package amqp-tools)" % name
    r = subprocess.run([exe, "--server", broker.host, "--port", str(broker.port)] + list(args),
                       input=input, capture_output=True, timeout=TIMEOUT)
    if check:
        assert r.returncode == 0, "%s %s exited %s: %s" % (name, args, r.returncode, r.stderr)
    return r


@pytest.fixture
def py_amqp(broker):
    amqp = pytest.importorskip("amqp")
    conn = amqp.Connection("%s:%d" % (broker.host, broker.port), userid="guest",
                           password="guest", connect_timeout=10, read_timeout=10,
                           write_timeout=10)
    conn.connect()
    try:
        yield conn
    finally:
        try:
            conn.close()
        except Exception:
            pass


def passive(conn, q):
    """(message_count, consumer_count) of q, or None if it does not exist."""
    import amqp
    ch = conn.channel()
    try:
        _, count, consumers = ch.queue_declare(q, passive=True)
    except amqp.exceptions.NotFound:
        return None
    ch.close()
    return count, consumers


def get(conn, q, timeout=10):
    ch = conn.channel()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = ch.basic_get(q, no_ack=True)
            if m is not None:
                return m
            time.sleep(0.05)
    finally:
        ch.close()
    raise AssertionError("no message in %s" % q)


def test_cli_declare_and_delete_queue(broker, py_amqp, uniq):
    r = tool(broker, "amqp-declare-queue", "-q", uniq)
    assert r.stdout.decode().strip() == uniq
    assert passive(py_amqp, uniq) == (0, 0)
    # redeclaring is fine
    tool(broker, "amqp-declare-queue", "-q", uniq)
    r = tool(broker, "amqp-declare-queue", "-q", "")
    generated = r.stdout.decode().strip()
    assert generated.startswith("amq.gen-")
    assert passive(py_amqp, generated) == (0, 0)
    tool(broker, "amqp-delete-queue", "-q", generated)
    r = tool(broker, "amqp-delete-queue", "-q", uniq)
    assert r.stdout.decode().strip() == "0"  # messages deleted with it
    assert passive(py_amqp, uniq) is None
    # deleting a missing queue succeeds
    r = tool(broker, "amqp-delete-queue", "-q", uniq)
    assert r.stdout.decode().strip() == "0"


def test_cli_publish_with_properties_and_get(broker, py_amqp, uniq):
    tool(broker, "amqp-declare-queue", "-q", uniq)
    try:
        tool(broker, "amqp-publish", "-r", uniq, "-b", "hello cli", "-C", "text/plain",
             "-E", "utf-8", "-t", "reply-here", "-p", "-H", "k1: v1", "-H", "k2: v2")
        m = get(py_amqp, uniq)
        assert m.body in (b"hello cli", "hello cli")
        assert m.properties["content_type"] == "text/plain"
        assert m.properties["content_encoding"] == "utf-8"
        assert m.properties["reply_to"] == "reply-here"
        assert m.properties["delivery_mode"] == 2
        assert m.properties["application_headers"] == {"k1": "v1", "k2": "v2"}
        # amqp-get prints the body of one message, and exits 2 on an empty queue
        tool(broker, "amqp-publish", "-r", uniq, "-b", "for amqp-get")
        deadline = time.monotonic() + 10
        while passive(py_amqp, uniq)[0] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        r = tool(broker, "amqp-get", "-q", uniq)
        assert r.stdout == b"for amqp-get"
        r = tool(broker, "amqp-get", "-q", uniq, check=False)
        assert r.returncode == 2
    finally:
        tool(broker, "amqp-delete-queue", "-q", uniq)


def test_cli_get_missing_queue_reports_404(broker, uniq):
    r = tool(broker, "amqp-get", "-q", uniq + "-missing", check=False)
    assert r.returncode == 1
    assert ("server channel error 404, message: NOT_FOUND - no queue '%s-missing' in "
            "vhost '/'" % uniq) in r.stderr.decode()


def test_cli_line_buffered_publish_and_consume_count(broker, py_amqp, uniq):
    tool(broker, "amqp-declare-queue", "-q", uniq)
    try:
        tool(broker, "amqp-publish", "-r", uniq, "-l", input=b"one\ntwo\nthree\n")
        deadline = time.monotonic() + 10
        while passive(py_amqp, uniq)[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert passive(py_amqp, uniq) == (3, 0)
        # amqp-consume runs the command once per message with the body on its stdin
        # (-l keeps each line's newline in the body)
        r = tool(broker, "amqp-consume", "-q", uniq, "-c", "2", "--", "sh", "-c", "cat; echo '|'")
        assert r.stdout == b"one\n|\ntwo\n|\n"
        # the consumer acked both and went away; one message is left
        assert passive(py_amqp, uniq) == (1, 0)
        r = tool(broker, "amqp-consume", "-q", uniq, "-c", "1", "-A", "cat")
        assert r.stdout.decode().strip() == "three"
        assert passive(py_amqp, uniq) == (0, 0)
    finally:
        tool(broker, "amqp-delete-queue", "-q", uniq)


def test_cli_consume_binds_queue_to_exchange(broker, py_amqp, uniq):
    """amqp-consume -e declares the queue itself (auto-delete) and binds it."""
    exe = shutil.which("amqp-consume")
    proc = subprocess.Popen([exe, "--server", broker.host, "--port", str(broker.port),
                             "-q", uniq, "-e", "amq.direct", "-r", uniq + "-key", "-c", "1",
                             "-p", "1", "cat"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while (passive(py_amqp, uniq) or (0, 0))[1] < 1:
            assert time.monotonic() < deadline, "amqp-consume did not start consuming"
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        tool(broker, "amqp-publish", "-e", "amq.direct", "-r", uniq + "-key", "-b", "bound!")
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert out == b"bound!"
        # its consumer is gone, so the auto-delete queue is too
        deadline = time.monotonic() + 10
        while passive(py_amqp, uniq) is not None:
            assert time.monotonic() < deadline, "auto-delete queue was not deleted"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tool(broker, "amqp-delete-queue", "-q", uniq)
