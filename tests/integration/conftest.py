"""Integration-test harness: starts the real `build/warren` on free loopback ports.

Every test gets a broker through the `broker` fixture (one per test module) or the
`fresh_broker` fixture (one per test, for tests that stop or restart it).

Set WARREN_TEST_BROKER=host:port to run the suite against an already running broker
(for example RabbitMQ started by scripts/rabbitmq-side) to check that a test asserts
what RabbitMQ really does; tests marked `warren_only` are then skipped.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(ROOT, "build", "warren"))
EXTERNAL = os.environ.get("WARREN_TEST_BROKER")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("broker exited early with %s" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("broker did not listen on %s:%d" % (host, port))


class Broker:
    """A running broker: host, port, AMQP URL, and (for Warren) its process."""

    def __init__(self, host, port, proc=None, data_dir=None, args=None, log_path=None,
                 http_port=0, bind="127.0.0.1"):
        self.http_port = http_port
        self.bind = bind
        self.host = host
        self.port = port
        self.proc = proc
        self.data_dir = data_dir
        self.args = args or []
        self.log_path = log_path

    @property
    def url(self):
        return "amqp://guest:guest@%s:%d/" % (self.host, self.port)

    def pika_params(self, **kw):
        import pika
        return pika.ConnectionParameters(host=self.host, port=self.port, **kw)

    def log(self):
        if self.log_path and os.path.exists(self.log_path):
            with open(self.log_path, errors="replace") as f:
                return f.read()
        return ""

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Signals the broker and waits for it to exit. Warren stops in well under a second;
        the bound is generous for a loaded 2-core CI machine. A broker that does not stop
        fails the test with the end of its log."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("warren did not stop within %.0f s of signal %d; its log ends:\n%s"
                                 % (timeout, sig, self.log()[-3000:]))

    def restart(self):
        """Stops (if running) and starts again on the same port and data directory."""
        self.stop()
        started = start_warren(self.data_dir, self.port, self.args, http_port=self.http_port,
                               bind=self.bind)
        self.proc, self.log_path = started.proc, started.log_path
        return self


def start_warren(data_dir, port=None, extra_args=None, config_text=None, http_port=0,
                 bind="127.0.0.1"):
    """Starts build/warren; http_port=None picks a free port for the management API."""
    port = port or free_port()
    extra_args = list(extra_args or [])
    if config_text is not None:
        cfg = os.path.join(data_dir, "test-rabbitmq.conf")
        with open(cfg, "w") as f:
            f.write(config_text)
        extra_args += ["--config", cfg]  # kept by restart()
    if http_port is None:
        http_port = free_port()
    args = [WARREN_BIN, "--amqp-port", str(port), "--http-port", str(http_port),
            "--data-dir", data_dir, "--bind", bind] + extra_args
    log_path = os.path.join(data_dir, "warren-%d.log" % int(time.time() * 1000))
    log = open(log_path, "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_for_port("127.0.0.1", port, proc=proc)
    if http_port:
        wait_for_port("127.0.0.1", http_port, proc=proc)
    return Broker("127.0.0.1", port, proc, data_dir, extra_args, log_path,
                  http_port=http_port, bind=bind)


def pytest_configure(config):
    config.addinivalue_line("markers", "warren_only: needs the Warren process itself")
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")


def pytest_collection_modifyitems(config, items):
    if EXTERNAL:
        skip = pytest.mark.skip(reason="needs a Warren process (WARREN_TEST_BROKER is set)")
        for item in items:
            if "warren_only" in item.keywords:
                item.add_marker(skip)


def _external():
    host, port = EXTERNAL.rsplit(":", 1)
    return Broker(host, int(port))


@pytest.fixture(scope="module")
def broker():
    if EXTERNAL:
        yield _external()
        return
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_warren(d)
        try:
            yield b
        finally:
            b.stop()


@pytest.fixture
def fresh_broker():
    """A broker of the test's own; with WARREN_TEST_BROKER it is the external one."""
    if EXTERNAL:
        yield _external()
        return
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_warren(d)
        try:
            yield b
        finally:
            b.stop()


@pytest.fixture
def make_broker():
    """Factory for brokers with extra arguments or a config file: make_broker(args, config_text)."""
    made = []
    dirs = []

    def make(extra_args=None, config_text=None):
        if EXTERNAL:
            return _external()
        d = tempfile.TemporaryDirectory(prefix="warren-test-")
        dirs.append(d)
        b = start_warren(d.name, extra_args=extra_args, config_text=config_text)
        made.append(b)
        return b

    yield make
    for b in made:
        try:
            b.stop()
        except Exception:
            pass
    for d in dirs:
        d.cleanup()


@pytest.fixture
def uniq(request):
    """A name unique to this test, for queues and exchanges."""
    return "t-%s-%d" % (request.node.name.replace("[", "-").replace("]", "")[:60], os.getpid())
