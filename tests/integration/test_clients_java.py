"""The RabbitMQ Java client (Debian's librabbitmq-client-java) against the broker.

clients/java/JavaClient.java is compiled once per session with javac into a temporary
directory, against /usr/share/java/amqp-client.jar and slf4j-api.jar (libslf4j-java);
slf4j-nop.jar keeps SLF4J quiet at run time. Each test runs one scenario in its own JVM
(a run takes well under a second) and asserts its line "RESULT <scenario> OK".
"""
import os
import shutil
import subprocess

import pytest

JAVA_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients", "java",
                           "JavaClient.java")
JAR_DIR = "/usr/share/java"

SCENARIOS = [
    "connect_close",
    "declare",
    "publish_get",
    "consume_ack",
    "confirms",
    "channel_404",
    "exchange_binding",
    "tx",
    "consumer_cancel_notify",
    "mandatory_return",
    "qos_prefetch",
]

TIMEOUT = 60


def _jar(name, required=True):
    path = os.path.join(JAR_DIR, name)
    if required:
        assert os.path.exists(path), "%s is missing (see tests/integration/apt-packages.txt)" % path
    return path if os.path.exists(path) else None


@pytest.fixture(scope="session")
def java_cmd(tmp_path_factory):
    javac = shutil.which("javac")
    java = shutil.which("java")
    assert javac and java, "a JDK is needed (see tests/integration/apt-packages.txt)"
    compile_cp = [_jar("amqp-client.jar"), _jar("slf4j-api.jar")]
    out = str(tmp_path_factory.mktemp("java-client"))
    r = subprocess.run([javac, "-d", out, "-cp", os.pathsep.join(compile_cp), JAVA_SOURCE],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "javac failed:\n%s\n%s" % (r.stdout, r.stderr)
    run_cp = compile_cp + [j for j in [_jar("slf4j-nop.jar", required=False)] if j] + [out]
    return [java, "-cp", os.pathsep.join(run_cp), "JavaClient"]


def test_java_scenario_list_is_complete(java_cmd):
    r = subprocess.run(java_cmd + ["list"], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_java_client(java_cmd, broker, scenario):
    r = subprocess.run(java_cmd + [broker.host, str(broker.port), scenario],
                       capture_output=True, text=True, timeout=TIMEOUT)
    lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines == ["RESULT %s OK" % scenario], "exit %s\n%s\n%s" % (
        r.returncode, r.stdout, r.stderr)
    assert r.returncode == 0
