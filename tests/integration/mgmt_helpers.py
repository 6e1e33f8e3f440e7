"""Helpers for the access-control, management API and warrenctl suites: a Warren with its
management API on a free port, a small HTTP client, and pika connections as any user."""
import base64
import json
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pika
import pytest

from conftest import EXTERNAL, start_warren
from helpers import PIKA_TIMEOUTS


def seg(s):
    """One path segment, percent-encoded as RabbitMQ's API wants it ("/" -> "%2F")."""
    return urllib.parse.quote(s, safe="")


class Api:
    """The management API as one user."""

    def __init__(self, broker, user="guest", password="guest", host="127.0.0.1"):
        self.base = "http://%s:%d/api" % (host, broker.http_port)
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

    def call(self, method, path, body=None, raw=None, headers=None):
        """Returns (status, parsed JSON or None, raw bytes)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", self.auth)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return status, parsed, text

    def get(self, path):
        status, j, _ = self.call("GET", path)
        assert status == 200, (path, status, j)
        return j

    def put(self, path, body=None):
        status, j, _ = self.call("PUT", path, body if body is not None else {})
        assert status in (201, 204), (path, status, j)
        return status

    def delete(self, path):
        status, j, _ = self.call("DELETE", path)
        assert status == 204, (path, status, j)
        return status


def start_mgmt_broker(data_dir, bind="127.0.0.1", extra_args=None, config_text=None):
    return start_warren(data_dir, http_port=None, bind=bind, extra_args=extra_args,
                        config_text=config_text)


def _mgmt_broker(config_text=None):
    if EXTERNAL:
        pytest.skip("needs a Warren process (WARREN_TEST_BROKER is set)")
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_mgmt_broker(d, config_text=config_text)
        try:
            yield b
        finally:
            b.stop()


@pytest.fixture(scope="module")
def mbroker():
    """A Warren of the module's own with its management API on."""
    yield from _mgmt_broker()


def rates_broker(interval_ms):
    """A management broker of its own that samples message rates every `interval_ms`
    (RabbitMQ's collect_statistics_interval, 5 s by default), so that rates move quickly."""
    yield from _mgmt_broker("collect_statistics_interval = %d\n" % interval_ms)


@pytest.fixture
def fresh_mbroker():
    """The same, for one test."""
    yield from _mgmt_broker()


@pytest.fixture
def api(mbroker):
    return Api(mbroker)


def connect(broker, user, password, vhost="/", host=None, **kw):
    params = dict(PIKA_TIMEOUTS)
    params.update(kw)
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=host or broker.host, port=broker.port, virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password), **params))


def make_user(api, name, password, vhost=None, conf=".*", write=".*", read=".*", tags=""):
    api.put("/users/" + seg(name), {"password": password, "tags": tags})
    if vhost is not None:
        api.put("/permissions/%s/%s" % (seg(vhost), seg(name)),
                {"configure": conf, "write": write, "read": read})


def non_loopback_address():
    """An address of this machine that is not loopback, or None."""
    candidates = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            candidates.append(s.getsockname()[0])
    except OSError:
        pass
    try:
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    for a in candidates:
        if not a.startswith("127.") and a != "0.0.0.0":
            return a
    return None
