"""rabbitmq.conf: every key Warren supports, its effect seen from outside, and the errors.

Covers: one rabbitmq.conf holding every supported key (non-default values) read by one
broker, started with nothing but --config and --data-dir, and each key's effect checked
where a client can see it: listener address and port, management, HTTPS and Prometheus
ports and addresses (every listener in /api/overview), TLS versions, ciphers and peer
verification on both TLS listeners, the SASL mechanisms offered, EXTERNAL's user name, the
tune offer (heartbeat, frame_max, channel_max), handshake and consumer timeouts,
max_message_size's 406, the default user, password, vhost, tags and permissions (AMQP and
HTTP, with 403s outside the permissions), definitions loaded at start, the console log
level and a log file under log.dir at its own level, queue_memory_limit paging, message
rates sampled at collect_statistics_interval; a second file for the keys that would
contradict the first (management.load_definitions, loopback_users.NAME, log.level,
listeners.tcp.N on every address, store_backlog_limit's flow control, default_user_tags
without administrator); management.tcp.ip and prometheus.tcp.ip on loopback while AMQP
listens on every address; log.console = false with a log file in the data directory, and a
log file that cannot be opened; memory and disk alarm keys (with RabbitMQ's rule that a
relative watermark wins over an absolute one), the paging ratio, several listeners.tcp.N,
RabbitMQ's loopback_users translation; unknown keys warned about once per key, with their
first line; values RabbitMQ refuses (unparsable, out of range, a line without `=`) stop the
broker with the file, line and key.

SUPPORTED_KEYS lists every key Warren reads; one test checks that the files used here set
each of them, another that the list matches the keys common/config.cpp accepts. A key whose
effect cannot be seen from outside must still be in a file here, accepted with no warning.
Expectations follow RabbitMQ 3.10.8 where it has the key (checked with scripts/rabbitmq-side
style nodes: the 406 text, the watermark precedence, loopback_users, the validators).
"""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pika
import pika.exceptions as pexc
import pytest

import rawamqp
from conftest import ROOT, WARREN_BIN, Broker, free_port, wait_for_port
from helpers import PIKA_TIMEOUTS, close_quietly, wait_for
from mgmt_helpers import Api, non_loopback_address
from test_tls import certs, client_context  # noqa: F401 (certs is a fixture)

pytestmark = pytest.mark.warren_only

# Every key (or key pattern: $name is any suffix) that Warren's rabbitmq.conf reader accepts.
SUPPORTED_KEYS = {
    "listeners.tcp.$name", "listeners.ssl.$name",
    "ssl_options.cacertfile", "ssl_options.certfile", "ssl_options.keyfile",
    "ssl_options.verify", "ssl_options.fail_if_no_peer_cert",
    "ssl_options.versions.$name", "ssl_options.ciphers.$name",
    "management.tcp.port", "management.ssl.port",
    "management.ssl.cacertfile", "management.ssl.certfile", "management.ssl.keyfile",
    "management.ssl.verify", "management.ssl.fail_if_no_peer_cert",
    "management.ssl.versions.$name", "management.ssl.ciphers.$name",
    "management.tcp.ip", "prometheus.tcp.port", "prometheus.tcp.ip",
    "collect_statistics_interval",
    "auth_mechanisms.$name", "ssl_cert_login_from",
    "heartbeat", "frame_max", "channel_max", "handshake_timeout", "max_message_size",
    "consumer_timeout",
    "default_user", "default_pass", "default_vhost", "default_user_tags.$name",
    "default_permissions.configure", "default_permissions.write", "default_permissions.read",
    "load_definitions", "management.load_definitions",
    "loopback_users", "loopback_users.$name",
    "vm_memory_high_watermark.relative", "vm_memory_high_watermark.absolute",
    "vm_memory_high_watermark_paging_ratio", "disk_free_limit.absolute",
    "queue_memory_limit", "store_backlog_limit",
    "log.level", "log.console", "log.console.level", "log.file", "log.file.level", "log.dir",
}

# Keys whose suffix is a free name (listener names, list indexes, user names, tags).
NAMED_PREFIXES = ("listeners.tcp.", "listeners.ssl.", "auth_mechanisms.", "loopback_users.",
                  "default_user_tags.",
                  "ssl_options.versions.", "ssl_options.ciphers.",
                  "management.ssl.versions.", "management.ssl.ciphers.")

# The one file with every key that does not contradict another. Placeholders are filled in
# by the fixture; the keys are what the coverage test reads.
EVERY_KEY_CONF = """\
# Warren reads RabbitMQ's rabbitmq.conf: one `key = value` a line.
listeners.tcp.default = 127.0.0.1:{amqp_port}
listeners.ssl.default = 127.0.0.1:{amqps_port}
ssl_options.cacertfile = {certs}/ca.pem
ssl_options.certfile = {certs}/server.pem
ssl_options.keyfile = {certs}/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.2
ssl_options.ciphers.1 = ECDHE-RSA-AES128-GCM-SHA256
management.tcp.port = {http_port}
management.tcp.ip = 127.0.0.1
management.ssl.port = {https_port}
management.ssl.cacertfile = {certs}/ca.pem
management.ssl.certfile = {certs}/server.pem
management.ssl.keyfile = {certs}/server.key
management.ssl.verify = verify_peer
management.ssl.fail_if_no_peer_cert = true
management.ssl.versions.1 = tlsv1.3
management.ssl.ciphers.1 = TLS_AES_256_GCM_SHA384
prometheus.tcp.port = {prometheus_port}
prometheus.tcp.ip = 127.0.0.1
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = EXTERNAL
ssl_cert_login_from = common_name
heartbeat = 7
frame_max = 16384
channel_max = 17
handshake_timeout = 800
max_message_size = 4096
consumer_timeout = 1000
# Message rates sampled every 500 ms (RabbitMQ's default: 5 s).
collect_statistics_interval = 500
default_user = cfg-admin
default_pass = cfg-secret
default_vhost = cfg-vhost
# The first tag replaces the default [administrator]; administrator is set again (the
# tests use the whole API as cfg-admin).
default_user_tags.administrator = true
default_user_tags.monitoring = true
# What the tests here use as cfg-admin, and nothing else: server-named and cfg-* queues,
# the default exchange to publish.
default_permissions.configure = ^(amq\\.gen-.*|paged-by-config|cfg-.*)$
default_permissions.write = ^(amq\\.default|amq\\.gen-.*|paged-by-config|cfg-.*)$
default_permissions.read = ^(amq\\.gen-.*|paged-by-config|cfg-.*)$
load_definitions = {definitions}
# RabbitMQ: when both are set, the relative watermark is used (neither raises an alarm here).
vm_memory_high_watermark.relative = 0.9
vm_memory_high_watermark.absolute = 64GiB
vm_memory_high_watermark_paging_ratio = 0.9
disk_free_limit.absolute = 1MB
queue_memory_limit = 100KB
store_backlog_limit = 32MiB
# The console at warning, a file under log.dir at debug: each level filters its own output.
log.console = true
log.console.level = warning
log.dir = {log_dir}
log.file = warren-file.log
log.file.level = debug
"""

# The keys that would contradict the file above: another definitions key, loopback users,
# a log level that shows debug lines, a listener on every address, and default user tags
# without administrator.
SECOND_CONF = """\
listeners.tcp.1 = 0.0.0.0:{amqp_port}
management.tcp.port = {http_port}
management.load_definitions = {definitions}
loopback_users.local-only = true
log.level = debug
store_backlog_limit = 100KB
default_user_tags.monitoring = true
default_user_tags.management = false
"""

# The management and Prometheus listeners on loopback while AMQP listens on every address.
LISTENER_IP_CONF = """\
listeners.tcp.default = 0.0.0.0:{amqp_port}
management.tcp.port = {http_port}
management.tcp.ip = 127.0.0.1
prometheus.tcp.port = {prometheus_port}
prometheus.tcp.ip = 127.0.0.1
"""

# No console output; a relative log.file without log.dir is in the data directory.
LOG_FILE_ONLY_CONF = """\
log.console = false
log.file = file-only.log
"""

# Alarm keys, one broker each: (config, memory alarm expected, disk alarm expected).
ALARM_CASES = {
    "relative": ("vm_memory_high_watermark.relative = 0.0001\n", True, False),
    "absolute": ("vm_memory_high_watermark.absolute = 1MB\n", True, False),
    # RabbitMQ 3.10.8 (rabbit.schema, `rabbitmqctl status`): with both set, the relative
    # watermark is used and the absolute one ignored.
    "relative-wins": ("vm_memory_high_watermark.absolute = 1MB\n"
                      "vm_memory_high_watermark.relative = 0.9\n", False, False),
    "disk": ("disk_free_limit.absolute = {disk_limit}\n", False, True),
}

PAGING_RATIO_CONF = ("vm_memory_high_watermark.absolute = 64GiB\n"
                     "vm_memory_high_watermark_paging_ratio = 0.0001\n")

SEVERAL_LISTENERS_CONF = ("listeners.tcp.first = 127.0.0.1:{port1}\n"
                          "listeners.tcp.second = 127.0.0.1:{port2}\n")

# RabbitMQ's translation of loopback_users: `none` gives an empty list whatever else is
# set; otherwise the list is exactly the users set to true (guest is no longer in it).
LOOPBACK_CASES = {
    "name-list-replaces-guest": "loopback_users.someone-else = true\n",
    "none-wins": "loopback_users = none\nloopback_users.guest = true\n",
}

ALL_CONFS = [EVERY_KEY_CONF, SECOND_CONF, LISTENER_IP_CONF, LOG_FILE_ONLY_CONF,
             PAGING_RATIO_CONF, SEVERAL_LISTENERS_CONF] \
    + [c for c, _, _ in ALARM_CASES.values()] + list(LOOPBACK_CASES.values())

TIMEOUT_TEXT = ("PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "
                "Timeout value used: %d ms. This timeout value can be configured, see "
                "consumers doc guide to learn more")
IGNORED = "is not supported by Warren and is ignored"
# A log line: "2026-01-31 12:00:00.123 [info] ..." (spdlog's pattern, as Warren's console).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
                      r"\[(debug|info|warning|error|critical)\] ")


# ----------------------------------------------------------------------------- helpers

def conf_keys(text):
    """The keys a rabbitmq.conf text sets (comments and blank lines skipped)."""
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line.split("=", 1)[0].strip())
    return keys


def key_pattern(key):
    for prefix in NAMED_PREFIXES:
        if key.startswith(prefix):
            return prefix + "$name"
    return key


def start(data_dir, config_text, wait_ports=(), extra_args=()):
    """Starts warren with rabbitmq.conf `config_text` in data_dir and only --config and
    --data-dir (plus extra_args); waits until every port in wait_ports listens on loopback."""
    cfg = os.path.join(data_dir, "rabbitmq.conf")
    with open(cfg, "w") as f:
        f.write(config_text)
    log_path = os.path.join(data_dir, "warren.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([WARREN_BIN, "--config", cfg, "--data-dir", data_dir,
                                 *extra_args], stdout=log, stderr=subprocess.STDOUT)
    b = Broker("127.0.0.1", wait_ports[0] if wait_ports else 0, proc, data_dir,
               log_path=log_path)
    try:
        for port in wait_ports:
            wait_for_port("127.0.0.1", port, proc=proc)
    except Exception as e:
        b.stop()
        raise AssertionError("broker did not start (%s):\n%s" % (e, b.log()))
    return b


def start_small(data_dir, config_text):
    """A broker for a config that sets neither listener: free loopback ports by flag, the
    management API on (for /metrics and the health checks)."""
    port, http_port = free_port(), free_port()
    b = start(data_dir, config_text, wait_ports=(port, http_port),
              extra_args=["--amqp-port", str(port), "--http-port", str(http_port),
                          "--bind", "127.0.0.1"])
    b.http_port = http_port
    return b


def refused(data_dir, config_text):
    """Runs warren on a config that must be refused; returns (exit code, output). A broker
    that starts instead is stopped and the test fails."""
    cfg = os.path.join(data_dir, "rabbitmq.conf")
    with open(cfg, "w") as f:
        f.write(config_text)
    proc = subprocess.Popen([WARREN_BIN, "--config", cfg, "--data-dir", data_dir,
                             "--amqp-port", str(free_port()), "--http-port", "0",
                             "--bind", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
        pytest.fail("the broker started instead of refusing the config:\n" + out)
    return proc.returncode, out


def warning_lines(log, key):
    return [line for line in log.splitlines() if "'%s'" % key in line and IGNORED in line]


def rabbit_password_hash(password):
    """rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def pika_as(port, user, password, vhost="/", host="127.0.0.1", **kw):
    params = dict(PIKA_TIMEOUTS)
    params.update(kw)
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=host, port=port, virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password), **params))


def http_get(url, context=None, auth=None):
    """(status, body bytes) of a GET."""
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.MULTILINE)
    assert m, "no %s in /metrics" % name
    return float(m.group(1))


def swap_rows(data_dir, queue):
    """Transient messages of `queue` paged out to warren.db (read-only, WAL lets us in)."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "warren.db"),
                          uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM entries WHERE transient = 1 AND queue = ?",
                           (queue,)).fetchone()[0]
    finally:
        con.close()


def tls_socket(port, certs, cert=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return client_context(certs, cert).wrap_socket(raw, server_hostname="localhost")


def offered_mechanisms(port, certs=None, cert=None):
    """The mechanisms connection.start lists (over TLS when certs is given)."""
    with rawamqp.RawConnection("127.0.0.1", port) as raw:
        if certs:
            raw.sock = client_context(certs, cert).wrap_socket(raw.sock,
                                                               server_hostname="localhost")
        mech = raw.begin().mechanisms
        return (mech.decode() if isinstance(mech, bytes) else mech).split()


# ----------------------------------------------------------------------------- the key list

def test_every_supported_key_is_set_by_a_config_here():
    covered = {key_pattern(k) for text in ALL_CONFS for k in conf_keys(text)}
    assert covered - SUPPORTED_KEYS == set(), "keys set here that SUPPORTED_KEYS lacks"
    assert SUPPORTED_KEYS - covered == set(), "supported keys no config here sets"
    # The first file has every key but the few that would contradict it.
    every = {key_pattern(k) for k in conf_keys(EVERY_KEY_CONF)}
    assert SUPPORTED_KEYS - every == {"management.load_definitions", "loopback_users",
                                      "loopback_users.$name", "log.level"}


def test_key_list_matches_the_keys_warren_accepts():
    """The keys common/config.cpp's Config::apply compares against, as patterns."""
    with open(os.path.join(ROOT, "common", "config.cpp")) as f:
        src = f.read()
    exact = set(re.findall(r'\bkey == "([^"]+)"', src))
    prefixes = set(re.findall(r'\bkey\.rfind\("([^"]+)", 0\)', src))
    tls_subs = set(re.findall(r'\bsub == "([^"]+)"', src))
    tls_subs |= {s + "$name" for s in re.findall(r'\bsub\.rfind\("([^"]+)", 0\)', src)}
    accepted = set(exact)
    for prefix in prefixes:
        if prefix in ("ssl_options.", "management.ssl."):
            accepted |= {prefix + s for s in tls_subs}
        else:
            accepted.add(prefix + "$name")
    assert tls_subs and prefixes and exact, "config.cpp no longer has the shape this reads"
    assert accepted == SUPPORTED_KEYS


# ----------------------------------------------------------------------------- every key

@pytest.fixture(scope="module")
def every_key(tmp_path_factory, certs):  # noqa: F811 (the imported fixture)
    d = str(tmp_path_factory.mktemp("every-key"))
    definitions = os.path.join(d, "definitions.json")
    with open(definitions, "w") as f:
        json.dump({
            # No password: this user can only log in with its certificate (EXTERNAL).
            "users": [{"name": "tls-client", "password_hash": "",
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}],
            "permissions": [{"user": "tls-client", "vhost": "cfg-vhost", "configure": ".*",
                             "write": ".*", "read": ".*"}],
            "queues": [{"name": "from-definitions", "vhost": "cfg-vhost", "durable": True,
                        "auto_delete": False, "arguments": {}}],
        }, f)
    ports = dict(amqp_port=free_port(), amqps_port=free_port(), http_port=free_port(),
                 https_port=free_port(), prometheus_port=free_port())
    log_dir = os.path.join(d, "logs")  # not there yet: the broker creates it
    b = start(d, EVERY_KEY_CONF.format(certs=certs, definitions=definitions, log_dir=log_dir,
                                       **ports),
              wait_ports=tuple(ports.values()))
    b.__dict__.update(ports)
    b.log_file = os.path.join(log_dir, "warren-file.log")
    try:
        yield b
    finally:
        b.stop()


def test_every_key_accepted_without_warning(every_key):
    assert IGNORED not in every_key.log()
    assert every_key.proc.poll() is None


def test_every_key_listener_address_and_port(every_key):
    with socket.create_connection(("127.0.0.1", every_key.amqp_port), timeout=5):
        pass
    addr = non_loopback_address()
    if addr is not None:
        # Bound to 127.0.0.1 only, not to every address.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((addr, every_key.amqp_port), timeout=5).close()
    api = Api(every_key, "cfg-admin", "cfg-secret")
    listeners = {(x["protocol"], x["ip_address"], x["port"])
                 for x in api.get("/overview")["listeners"]}
    # Every listener, with the address it is bound to (management.tcp.ip, prometheus.tcp.ip).
    assert listeners == {("amqp", "127.0.0.1", every_key.amqp_port),
                         ("amqp/ssl", "127.0.0.1", every_key.amqps_port),
                         ("http", "127.0.0.1", every_key.http_port),
                         ("https", "127.0.0.1", every_key.https_port),
                         ("http/prometheus", "127.0.0.1", every_key.prometheus_port)}


def test_every_key_default_user_password_and_vhost(every_key):
    c = pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="cfg-vhost")
    try:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"hello")
        assert wait_for(lambda: ch.basic_get(q, auto_ack=True)[2] == b"hello", timeout=3)
    finally:
        close_quietly(c)
    # guest is not created when default_user names another user.
    with pytest.raises(pexc.ProbableAuthenticationError):
        pika_as(every_key.amqp_port, "guest", "guest", vhost="cfg-vhost")
    # Nor is "/" when default_vhost names another vhost (RabbitMQ: 530 "vhost / not found").
    with pytest.raises(pexc.ProbableAccessDeniedError) as e:
        pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="/")
    assert "NOT_ALLOWED - vhost / not found" in str(e.value)
    api = Api(every_key, "cfg-admin", "cfg-secret")
    assert [v["name"] for v in api.get("/vhosts")] == ["cfg-vhost"]
    assert {u["name"] for u in api.get("/users")} == {"cfg-admin", "tls-client"}
    assert Api(every_key, "guest", "guest").call("GET", "/overview")[0] == 401


def tag_set(tags):
    """A user's tags from the API: a list, or RabbitMQ's older comma-separated string."""
    if isinstance(tags, str):
        return {t for t in tags.split(",") if t}
    return set(tags)


def test_every_key_default_user_tags(every_key):
    api = Api(every_key, "cfg-admin", "cfg-secret")
    assert tag_set(api.get("/whoami")["tags"]) == {"administrator", "monitoring"}
    users = {u["name"]: tag_set(u["tags"]) for u in api.get("/users")}
    assert users["cfg-admin"] == {"administrator", "monitoring"}


def test_every_key_default_permissions(every_key):
    api = Api(every_key, "cfg-admin", "cfg-secret")
    perm = api.get("/permissions/cfg-vhost/cfg-admin")
    assert (perm["configure"], perm["write"], perm["read"]) == (
        r"^(amq\.gen-.*|paged-by-config|cfg-.*)$",
        r"^(amq\.default|amq\.gen-.*|paged-by-config|cfg-.*)$",
        r"^(amq\.gen-.*|paged-by-config|cfg-.*)$")
    refused_text = ("ACCESS_REFUSED - access to %s in vhost 'cfg-vhost' refused for user "
                    "'cfg-admin'")

    def refused_op(op):
        """Runs op(channel) on a fresh connection; returns the channel's close (403)."""
        c = pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="cfg-vhost")
        try:
            ch = c.channel()
            with pytest.raises(pexc.ChannelClosedByBroker) as e:
                op(ch)
            assert e.value.reply_code == 403
            return e.value.reply_text
        finally:
            close_quietly(c)

    # Inside the patterns: a cfg-* queue, published to through the default exchange.
    c = pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="cfg-vhost")
    try:
        ch = c.channel()
        ch.queue_declare("cfg-permitted", exclusive=True)
        ch.basic_publish("", "cfg-permitted", b"ok")
        assert wait_for(lambda: ch.basic_get("cfg-permitted", auto_ack=True)[2] == b"ok",
                        timeout=3)
    finally:
        close_quietly(c)
    # configure: a queue outside the pattern.
    assert refused_op(lambda ch: ch.queue_declare("not-permitted")) == \
        refused_text % "queue 'not-permitted'"

    # write: publishing to an exchange outside the pattern (the error comes asynchronously).
    def publish_to_fanout(ch):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("amq.fanout", "", b"no")
        ch.queue_declare(q, passive=True)

    assert refused_op(publish_to_fanout) == refused_text % "exchange 'amq.fanout'"

    def bind_to_fanout(ch):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.fanout")

    # read: binding a queue (write on it is allowed) to an exchange outside the pattern.

    assert refused_op(bind_to_fanout) == refused_text % "exchange 'amq.fanout'"


def test_every_key_tune_offer(every_key):
    with rawamqp.RawConnection("127.0.0.1", every_key.amqp_port) as raw:
        raw.handshake(user="cfg-admin", password="cfg-secret", vhost="cfg-vhost")
        assert (raw.tune.heartbeat, raw.tune.frame_max, raw.tune.channel_max) == (7, 16384, 17)


def test_every_key_handshake_timeout(every_key):
    with socket.create_connection(("127.0.0.1", every_key.amqp_port), timeout=5) as s:
        started = time.monotonic()
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        elapsed = time.monotonic() - started
    assert 0.7 <= elapsed < 3.0, elapsed  # 800 ms, not the default 10 s


def test_every_key_max_message_size(every_key):
    c = pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="cfg-vhost")
    try:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x" * 4096)  # at the limit: accepted
        assert wait_for(lambda: ch.queue_declare(q, passive=True).method.message_count == 1,
                        timeout=3)
        ch.basic_publish("", q, b"x" * 5000)
        with pytest.raises(pexc.ChannelClosedByBroker) as e:
            ch.queue_declare(q, passive=True)
        # RabbitMQ 3.10.8's text.
        assert e.value.reply_code == 406
        assert e.value.reply_text == ("PRECONDITION_FAILED - message size 5000 is larger "
                                      "than configured max size 4096")
    finally:
        close_quietly(c)


def test_every_key_consumer_timeout(every_key):
    c = pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="cfg-vhost")
    try:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        closed = []
        ch._impl.add_on_close_callback(lambda _ch, reason: closed.append(reason))
        ch.basic_consume(q, lambda *a: None)  # never acks
        ch.basic_publish("", q, b"slow")
        started = time.monotonic()
        while not closed and time.monotonic() - started < 6:
            c.process_data_events(time_limit=0.05)
        assert closed, "the channel was not closed by the consumer timeout"
        assert closed[0].reply_code == 406
        assert closed[0].reply_text == TIMEOUT_TEXT % 1000
        assert 0.9 <= time.monotonic() - started < 4
    finally:
        close_quietly(c)


def test_every_key_auth_mechanisms(every_key, certs):  # noqa: F811
    # AMQPLAIN is gone; EXTERNAL is offered only over TLS with a client certificate.
    assert offered_mechanisms(every_key.amqp_port) == ["PLAIN"]
    assert sorted(offered_mechanisms(every_key.amqps_port, certs, "client")) == \
        ["EXTERNAL", "PLAIN"]


def test_every_key_amqps_listener_and_ssl_options(every_key, certs):  # noqa: F811
    # verify_peer + fail_if_no_peer_cert: no certificate, no connection.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_socket(every_key.amqps_port, certs) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            if s.recv(100) == b"":
                raise ConnectionResetError("closed")
    # versions.1 = tlsv1.2 and the one cipher allowed.
    with tls_socket(every_key.amqps_port, certs, "client") as s:
        assert s.version() == "TLSv1.2"
        assert s.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    # Bound to the listener's own address.
    addr = non_loopback_address()
    if addr is not None:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((addr, every_key.amqps_port), timeout=5).close()


def test_every_key_external_login_as_common_name(every_key, certs):  # noqa: F811
    params = pika.ConnectionParameters(
        host="127.0.0.1", port=every_key.amqps_port, virtual_host="cfg-vhost",
        credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(client_context(certs, "client"), "localhost"),
        **PIKA_TIMEOUTS)
    c = pika.BlockingConnection(params)
    try:
        # tls-client exists only through load_definitions, and has no password: the name
        # came from the certificate's CN (ssl_cert_login_from = common_name).
        c.channel().queue_declare("from-definitions", passive=True)
        api = Api(every_key, "cfg-admin", "cfg-secret")
        users = {(x["user"], x["auth_mechanism"]) for x in api.get("/connections")}
        assert ("tls-client", "EXTERNAL") in users
    finally:
        close_quietly(c)


def test_every_key_load_definitions(every_key):
    api = Api(every_key, "cfg-admin", "cfg-secret")
    assert api.get("/queues/cfg-vhost/from-definitions")["durable"] is True
    perm = api.get("/permissions/cfg-vhost/tls-client")
    assert (perm["configure"], perm["write"], perm["read"]) == (".*", ".*", ".*")


def test_every_key_management_https(every_key, certs):  # noqa: F811
    url = "https://localhost:%d/api/whoami" % every_key.https_port
    status, body = http_get(url, client_context(certs, "client"), "cfg-admin:cfg-secret")
    assert status == 200 and json.loads(body)["name"] == "cfg-admin"
    with tls_socket(every_key.https_port, certs, "client") as s:
        assert s.version() == "TLSv1.3"
        assert s.cipher()[0] == "TLS_AES_256_GCM_SHA384"
    # management.ssl.verify = verify_peer with fail_if_no_peer_cert: refused without one.
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        http_get(url, client_context(certs), "cfg-admin:cfg-secret")


def test_every_key_prometheus_port(every_key):
    status, body = http_get("http://127.0.0.1:%d/metrics" % every_key.prometheus_port)
    assert status == 200
    text = body.decode()
    # Neither watermark is reached: the relative one (0.9 of RAM) and 1 MB of free disk.
    assert metric(text, "rabbitmq_alarms_memory_used_watermark") == 0
    assert metric(text, "rabbitmq_alarms_free_disk_space_watermark") == 0
    # Only /metrics there.
    assert http_get("http://127.0.0.1:%d/api/overview" % every_key.prometheus_port)[0] == 404


def test_every_key_queue_memory_limit(every_key):
    c = pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="cfg-vhost")
    try:
        ch = c.channel()
        q = "paged-by-config"
        ch.queue_declare(q, arguments={})  # a default (not lazy) queue
        # 6 MB of bodies against a 100 KB limit (the default is 64 MiB); a queue pages out
        # once it holds 4 MiB more than its limit.
        n = 6000
        for i in range(n):
            ch.basic_publish("", q, b"%08d" % i + b"x" * 1000)
        assert wait_for(lambda: swap_rows(every_key.data_dir, q) > 0)
        got = []
        for _ in range(n):
            m, _p, body = ch.basic_get(q, auto_ack=True)
            assert m is not None, "get-empty after %d messages" % len(got)
            got.append(int(body[:8]))
        assert got == list(range(n))
        ch.queue_delete(q)
    finally:
        close_quietly(c)


def test_every_key_collect_statistics_interval(every_key):
    api = Api(every_key, "cfg-admin", "cfg-secret")

    def publish_rate():
        stats = api.get("/overview").get("message_stats") or {}
        return (stats.get("publish_details") or {}).get("rate", 0)

    c = pika_as(every_key.amqp_port, "cfg-admin", "cfg-secret", vhost="cfg-vhost")
    try:
        ch = c.channel()
        q = "cfg-stats"
        ch.queue_declare(q)
        assert wait_for(lambda: publish_rate() == 0, timeout=7)
        n = 50
        for _ in range(n):
            ch.basic_publish("", q, b"counted")
        ch.queue_declare(q, passive=True)  # every publish has been handled
        # Sampled every 500 ms: the rate shows soon, and is back to 0 within a second
        # after publishing stops (it would stay up to 5 s with RabbitMQ's default interval).
        assert wait_for(lambda: publish_rate() > 0, timeout=2)
        assert wait_for(lambda: publish_rate() == 0, timeout=1.5)
        stats = api.get("/queues/cfg-vhost/%s" % q)["message_stats"]
        assert stats["publish"] == n
        ch.queue_delete(q)
    finally:
        close_quietly(c)


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def test_every_key_console_and_file_log(every_key):
    # log.console.level = warning: refusals are logged, nothing at info (not even the
    # listening lines). log.file.level = debug: the file has all of it, debug lines too.
    with pytest.raises(pexc.ProbableAuthenticationError):
        pika_as(every_key.amqp_port, "cfg-admin", "wrong", vhost="cfg-vhost")
    # A client that resets its connection is a debug line.
    s = socket.create_connection(("127.0.0.1", every_key.amqp_port), timeout=5)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    s.recv(4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    assert wait_for(lambda: "login refused" in every_key.log(), timeout=3)
    assert wait_for(lambda: "read failed" in read_text(every_key.log_file), timeout=3)
    log = every_key.log()
    assert "[warning]" in log
    assert "[info]" not in log and "[debug]" not in log
    # log.file = warren-file.log is under log.dir, not in the data directory.
    assert not os.path.exists(os.path.join(every_key.data_dir, "warren-file.log"))
    text = read_text(every_key.log_file)
    lines = text.splitlines()
    bad = [line for line in lines if not LOG_LINE.match(line)]
    assert lines and not bad, bad
    levels = {LOG_LINE.match(line).group(1) for line in lines}
    assert {"debug", "info", "warning"} <= levels
    assert "listening for AMQP on 127.0.0.1:%d" % every_key.amqp_port in text
    assert "login refused" in text


# ----------------------------------------------------------------------------- the second file

@pytest.fixture
def remote_address():
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return addr


def test_second_file_keys(tmp_path, remote_address):
    d = str(tmp_path)
    definitions = os.path.join(d, "definitions.json")
    with open(definitions, "w") as f:
        json.dump({
            "users": [{"name": name, "password_hash": rabbit_password_hash("pw"),
                       "hashing_algorithm": "rabbit_password_hashing_sha256",
                       "tags": "management"} for name in ("local-only", "remote-user")],
            "permissions": [{"user": name, "vhost": "/", "configure": ".*", "write": ".*",
                             "read": ".*"} for name in ("local-only", "remote-user")],
        }, f)
    port, http_port = free_port(), free_port()
    b = start(d, SECOND_CONF.format(amqp_port=port, http_port=http_port,
                                    definitions=definitions), wait_ports=(port, http_port))
    b.http_port = http_port
    try:
        assert IGNORED not in b.log()
        # management.load_definitions imported the users; listeners.tcp.1 on 0.0.0.0 takes
        # clients on every address.
        pika_as(port, "remote-user", "pw", host=remote_address).close()
        pika_as(port, "local-only", "pw").close()
        # loopback_users.local-only = true: that user only from loopback, on AMQP and HTTP.
        with pytest.raises(pexc.ProbableAuthenticationError):
            pika_as(port, "local-only", "pw", host=remote_address)
        assert wait_for(lambda: "user 'local-only' can only connect via localhost" in b.log())
        status, j, _ = Api(b, "local-only", "pw", host=remote_address).call("GET", "/whoami")
        assert status == 401 and j["reason"] == "User can only log in via localhost"
        assert Api(b, "local-only", "pw").call("GET", "/whoami")[0] == 200
        # default_user_tags.monitoring = true replaced the default administrator tag of the
        # default user (guest); management = false added nothing.
        guest = Api(b, "guest", "guest")
        assert tag_set(guest.get("/whoami")["tags"]) == {"monitoring"}
        # Not an administrator any more (RabbitMQ: 401 "Not administrator user").
        status, j, _ = guest.call("GET", "/users")
        assert status == 401 and j["reason"] == "Not administrator user"
        assert guest.call("GET", "/overview")[0] == 200
        # log.level = debug: a client that resets its connection is a debug line.
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"AMQP\x00\x00\x09\x01")
        s.recv(4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
        assert wait_for(lambda: "read failed" in b.log())
        assert "[debug]" in b.log()
        # store_backlog_limit = 100KB: persistent 20 KB messages pause the publisher (flow).
        c = pika_as(port, "remote-user", "pw", heartbeat=0)
        ch = c.channel()
        ch.queue_declare("backlog", durable=True)
        for i in range(300):
            ch.basic_publish("", "backlog", b"y" * 20000, pika.BasicProperties(delivery_mode=2))
        assert wait_for(lambda: ch.queue_declare("backlog", durable=True, passive=True)
                        .method.message_count == 300, timeout=30)
        assert "flow (store backlog" in b.log()
        close_quietly(c)
    finally:
        b.stop()


def test_management_and_prometheus_ip(tmp_path, remote_address):
    """management.tcp.ip and prometheus.tcp.ip bind those listeners to their own address
    (by default they share the AMQP listener's)."""
    ports = dict(amqp_port=free_port(), http_port=free_port(), prometheus_port=free_port())
    b = start(str(tmp_path), LISTENER_IP_CONF.format(**ports), wait_ports=tuple(ports.values()))
    b.http_port = ports["http_port"]
    try:
        assert IGNORED not in b.log()
        socket.create_connection((remote_address, ports["amqp_port"]), timeout=5).close()
        for port in (ports["http_port"], ports["prometheus_port"]):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((remote_address, port), timeout=5).close()
        assert http_get("http://127.0.0.1:%d/metrics" % ports["prometheus_port"])[0] == 200
        listeners = {(x["protocol"], x["ip_address"], x["port"])
                     for x in Api(b).get("/overview")["listeners"]}
        assert listeners == {("amqp", "0.0.0.0", ports["amqp_port"]),
                             ("http", "127.0.0.1", ports["http_port"]),
                             ("http/prometheus", "127.0.0.1", ports["prometheus_port"])}
    finally:
        b.stop()


# ----------------------------------------------------------------------------- log files

def test_log_file_without_console(tmp_path):
    """log.console = false: nothing on stderr; the file (relative, so in the data directory
    when log.dir is not set) still gets every line at the default level."""
    d = str(tmp_path)
    b = start_small(d, LOG_FILE_ONLY_CONF)
    path = os.path.join(d, "file-only.log")
    try:
        with pytest.raises(pexc.ProbableAuthenticationError):
            pika_as(b.port, "guest", "wrong")
        assert wait_for(lambda: "login refused" in read_text(path), timeout=3)
        text = read_text(path)
        assert "[info]" in text and "[warning]" in text and "[debug]" not in text
        assert "listening for AMQP on 127.0.0.1:%d" % b.port in text
        assert all(LOG_LINE.match(line) for line in text.splitlines())
        assert b.log() == "", b.log()
    finally:
        b.stop()
    assert b.log() == "", b.log()  # not even the shutdown lines


def test_log_file_that_cannot_be_opened_stops_the_broker(tmp_path):
    d = str(tmp_path)
    blocker = os.path.join(d, "not-a-directory")
    with open(blocker, "w") as f:
        f.write("x")
    rc, out = refused(d, "log.dir = %s\nlog.file = warren.log\n" % blocker)
    assert rc != 0
    assert "cannot open log file %s" % os.path.join(blocker, "warren.log") in out, out


# ----------------------------------------------------------------------------- single keys

@pytest.mark.parametrize("case", sorted(ALARM_CASES))
def test_alarm_keys(tmp_path, case):
    text, memory, disk = ALARM_CASES[case]
    # The disk limit: 10 GB more than the free space, so the alarm is on at once.
    text = text.format(disk_limit=shutil.disk_usage(str(tmp_path)).free + 10_000_000_000)
    b = start_small(str(tmp_path), text)
    try:
        url = "http://127.0.0.1:%d/metrics" % b.http_port

        def alarms():
            body = http_get(url)[1].decode()
            return (metric(body, "rabbitmq_alarms_memory_used_watermark") == 1,
                    metric(body, "rabbitmq_alarms_free_disk_space_watermark") == 1)

        if memory or disk:
            assert wait_for(lambda: alarms() != (False, False), timeout=5)
        else:
            time.sleep(1.0)  # the broker checks every 200 ms
        assert alarms() == (memory, disk)
        assert IGNORED not in b.log()
    finally:
        b.stop()


def test_paging_ratio_key(tmp_path):
    # 0.0001 of a 64 GiB watermark is a few MB: the broker is above it from the start.
    b = start_small(str(tmp_path), PAGING_RATIO_CONF)
    try:
        assert wait_for(lambda: "above the paging threshold" in b.log(), timeout=5)
        assert IGNORED not in b.log()
    finally:
        b.stop()


def test_several_tcp_listeners(tmp_path):
    """RabbitMQ listens on every listeners.tcp.NAME."""
    port1, port2, http_port = free_port(), free_port(), free_port()
    b = start(str(tmp_path), SEVERAL_LISTENERS_CONF.format(port1=port1, port2=port2),
              wait_ports=(http_port,), extra_args=["--http-port", str(http_port)])
    b.http_port = http_port
    try:
        for port in (port1, port2):
            wait_for_port("127.0.0.1", port, timeout=5, proc=b.proc)
            pika_as(port, "guest", "guest").close()
        amqp = {(x["ip_address"], x["port"]) for x in Api(b).get("/overview")["listeners"]
                if x["protocol"] == "amqp"}
        assert amqp == {("127.0.0.1", port1), ("127.0.0.1", port2)}
    finally:
        b.stop()


@pytest.mark.parametrize("case", sorted(LOOPBACK_CASES))
def test_loopback_users_as_rabbitmq_translates_them(tmp_path, remote_address, case):
    """guest may connect from afar in both cases (RabbitMQ 3.10.8: `rabbitmqctl
    environment` shows loopback_users [<<"someone-else">>] and [])."""
    port = free_port()
    b = start(str(tmp_path), LOOPBACK_CASES[case], wait_ports=(port,),
              extra_args=["--amqp-port", str(port), "--http-port", "0", "--bind", "0.0.0.0"])
    try:
        pika_as(port, "guest", "guest", host=remote_address).close()
    finally:
        b.stop()


# ----------------------------------------------------------------------------- unknown keys

# RabbitMQ keys (core and plugins) Warren does not read.
UNKNOWN_KEYS = ["cluster_formation.peer_discovery_backend", "mqtt.listeners.tcp.default",
                "stomp.listeners.tcp.1", "cluster_name"]


def test_unknown_keys_warned_once_each_with_their_line(tmp_path):
    text = ("heartbeat = 30\n"
            "cluster_formation.peer_discovery_backend = classic_config\n"
            "mqtt.listeners.tcp.default = 1883\n"
            "# a comment\n"
            "stomp.listeners.tcp.1 = 61613\n"
            "channel_max = 100\n"
            "cluster_name = warren-test\n")
    b = start_small(str(tmp_path), text)
    try:
        log = b.log()
        lines = {"cluster_formation.peer_discovery_backend": 2, "mqtt.listeners.tcp.default": 3,
                 "stomp.listeners.tcp.1": 5, "cluster_name": 7}
        for key, lineno in lines.items():
            found = warning_lines(log, key)
            assert len(found) == 1, (key, found)
            assert "[warning]" in found[0] and "rabbitmq.conf:%d:" % lineno in found[0]
        assert log.count(IGNORED) == len(UNKNOWN_KEYS)
        # The known keys around them still apply.
        with rawamqp.RawConnection("127.0.0.1", b.port) as raw:
            raw.handshake()
            assert (raw.tune.heartbeat, raw.tune.channel_max) == (30, 100)
    finally:
        b.stop()


def test_unknown_key_repeated_is_warned_once(tmp_path):
    """Warren "warns once about keys it ignores" (README: "reported once as a warning"):
    one warning per key, at its first line, however often the key is repeated."""
    first, second = "cluster_formation.peer_discovery_backend", "mqtt.listeners.tcp.default"
    text = ("%s = classic_config\n"   # 1
            "%s = 1883\n"             # 2
            "heartbeat = 30\n"        # 3
            "%s = classic_config\n"   # 4
            "%s = 1884\n"             # 5
            "%s = classic_config\n"   # 6
            % (first, second, first, second, first))
    b = start_small(str(tmp_path), text)
    try:
        log = b.log()
        for key, lineno in ((first, 1), (second, 2)):
            found = warning_lines(log, key)
            assert len(found) == 1, found
            assert "rabbitmq.conf:%d:" % lineno in found[0]
        assert log.count(IGNORED) == 2
        assert b.proc.poll() is None
    finally:
        b.stop()


# ----------------------------------------------------------------------------- refused values

BAD_VALUES = [
    ("heartbeat", "abc"),
    ("listeners.tcp.default", "notaport"),
    ("listeners.tcp.default", "127.0.0.1:notaport"),
    ("listeners.ssl.default", "127.0.0.1:notaport"),
    ("vm_memory_high_watermark.relative", "2x"),
    ("channel_max", "70000"),
    ("management.tcp.port", "99999"),
    ("disk_free_limit.absolute", "10XB"),
    ("ssl_options.verify", "sometimes"),
    ("log.level", "loud"),
    ("loopback_users.guest", "maybe"),
    ("log.console", "maybe"),
    ("log.console.level", "loud"),
    ("log.file.level", "loud"),
    ("default_user_tags.monitoring", "maybe"),
    ("collect_statistics_interval", "50"),         # Warren's floor: 100 ms
    # Parsable, but RabbitMQ 3.10.8's validators refuse them at boot:
    ("max_message_size", "0"),                      # "between 0 and 512MB" (exclusive of 0)
    ("consumer_timeout", "0"),                      # "greater or equal to one"
    ("vm_memory_high_watermark_paging_ratio", "1.5"),  # "Float is not between 0 and 1"
    ("vm_memory_high_watermark_paging_ratio", "0"),
]


@pytest.mark.parametrize("key,value", BAD_VALUES, ids=["%s=%s" % kv for kv in BAD_VALUES])
def test_bad_value_refused_with_key_and_line(tmp_path, key, value):
    rc, out = refused(str(tmp_path), "# line 1\nheartbeat = 30\n%s = %s\nchannel_max = 9\n"
                      % (key, value))
    assert rc != 0
    errors = [line for line in out.splitlines() if "rabbitmq.conf:3:" in line]
    assert errors, out
    assert key in errors[0], "the error does not name %s: %s" % (key, errors[0])


def test_line_without_equals_refused_with_line(tmp_path):
    # RabbitMQ: "Syntax error in .../rabbitmq.conf after line 2 column 1".
    rc, out = refused(str(tmp_path), "heartbeat = 30\nchannel_max 9\n")
    assert rc != 0
    assert "rabbitmq.conf:2:" in out, out
