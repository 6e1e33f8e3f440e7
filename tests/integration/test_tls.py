"""TLS (AMQPS) and SASL EXTERNAL.

Covers: listeners.ssl.default with ssl_options.cacertfile/certfile/keyfile serves pika and
amqplib over TLS, including 1 MiB and 100 KB messages; the management API over HTTPS
(management.ssl.*); TLS 1.3 by default and only the configured versions with
ssl_options.versions.N; a plain-text AMQP client on the TLS port and a TLS client on the
plain port are closed promptly (no hang) and the broker keeps serving; ssl_options.verify =
verify_peer with fail_if_no_peer_cert refuses a client without a certificate and accepts one
signed by the CA; EXTERNAL (auth_mechanisms.N) logs in as the certificate's common name or
distinguished name (ssl_cert_login_from), is offered only with a client certificate, and
refuses a certificate whose user does not exist. Certificates are made with openssl here.
"""
import os
import shutil
import socket
import ssl
import subprocess
import time

import pika
import pytest

from conftest import free_port

pytestmark = pytest.mark.warren_only

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients", "node")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=Warren Test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, subj, ext in (("server", "/CN=localhost", ["-extfile", "server.ext"]),
                            ("client", "/C=GB/O=Warren Test/CN=tls-client", []),
                            ("stranger", "/CN=nobody-here", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subj,
                "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", name + ".pem", *ext, cwd=d)
    return d


def tls_config(certs, port, extra=""):
    return ("listeners.ssl.default = %d\n"
            "ssl_options.cacertfile = %s/ca.pem\n"
            "ssl_options.certfile = %s/server.pem\n"
            "ssl_options.keyfile = %s/server.key\n" % (port, certs, certs, certs)) + extra


def client_context(certs, cert=None, max_version=None):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(certs, cert + ".pem"), os.path.join(certs, cert + ".key"))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def tls_params(port, certs, cert=None, credentials=None):
    kw = {"credentials": credentials} if credentials else {}
    return pika.ConnectionParameters(
        host="127.0.0.1", port=port,
        ssl_options=pika.SSLOptions(client_context(certs, cert), "localhost"), **kw)


def roundtrip(params, queue):
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare(queue, exclusive=True)
    ch.basic_publish("", queue, b"over tls")
    m, _, body = ch.basic_get(queue, auto_ack=True)
    conn.close()
    return body


def wait_for_log(broker, text, timeout=5):
    deadline = time.monotonic() + timeout
    while text not in broker.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def closed_within(sock, seconds):
    """True when the peer closes (EOF or reset) before `seconds` pass."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def test_pika_over_tls_with_tls13_by_default(make_broker, certs, uniq):
    port = free_port()
    b = make_broker(config_text=tls_config(certs, port))
    assert roundtrip(tls_params(port, certs), uniq) == b"over tls"
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with client_context(certs).wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.3"
    # The plain listener is still there.
    assert roundtrip(b.pika_params(), uniq + "-plain") == b"over tls"


def test_versions_setting_limits_the_protocol(make_broker, certs):
    port = free_port()
    make_broker(config_text=tls_config(certs, port, "ssl_options.versions.1 = tlsv1.2\n"))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with client_context(certs).wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.2"


def test_plain_client_on_tls_port_and_tls_client_on_plain_port_are_closed(make_broker, certs, uniq):
    port = free_port()
    b = make_broker(config_text=tls_config(certs, port))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        assert closed_within(s, 5)
    with socket.create_connection(("127.0.0.1", b.port)) as raw:
        raw.settimeout(5)
        started = time.monotonic()
        with pytest.raises((ssl.SSLError, ConnectionResetError)) as e:
            client_context(certs).wrap_socket(raw, server_hostname="localhost")
        # Refused by the broker (it answered the ClientHello with AMQP's header and closed),
        # not a timeout of ours.
        assert not isinstance(e.value, socket.timeout)
        assert time.monotonic() - started < 2
    assert roundtrip(tls_params(port, certs), uniq) == b"over tls"


def test_verify_peer_requires_a_client_certificate(make_broker, certs, uniq):
    port = free_port()
    b = make_broker(config_text=tls_config(certs, port, "ssl_options.verify = verify_peer\n"
                                                        "ssl_options.fail_if_no_peer_cert = true\n"))
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        roundtrip(tls_params(port, certs), uniq)
    assert wait_for_log(b, "TLS handshake with")
    assert roundtrip(tls_params(port, certs, cert="client"), uniq) == b"over tls"


def external_config(certs, port, login_from, user):
    return tls_config(certs, port,
                      "ssl_options.verify = verify_peer\n"
                      "auth_mechanisms.1 = PLAIN\n"
                      "auth_mechanisms.2 = AMQPLAIN\n"
                      "auth_mechanisms.3 = EXTERNAL\n"
                      "ssl_cert_login_from = %s\n"
                      "default_user = %s\n"
                      "default_pass = unused-password\n" % (login_from, user))


def test_external_logs_in_as_the_certificate_common_name(make_broker, certs, uniq):
    port = free_port()
    make_broker(config_text=external_config(certs, port, "common_name", "tls-client"))
    params = tls_params(port, certs, cert="client", credentials=pika.credentials.ExternalCredentials())
    assert roundtrip(params, uniq) == b"over tls"


def test_external_with_the_distinguished_name(make_broker, certs, uniq):
    port = free_port()
    make_broker(config_text=external_config(certs, port, "distinguished_name",
                                            "CN=tls-client,O=Warren Test,C=GB"))
    params = tls_params(port, certs, cert="client", credentials=pika.credentials.ExternalCredentials())
    assert roundtrip(params, uniq) == b"over tls"


def test_external_refused_for_unknown_user_and_without_certificate(make_broker, certs, uniq):
    port = free_port()
    b = make_broker(config_text=external_config(certs, port, "common_name", "tls-client"))
    ext = pika.credentials.ExternalCredentials()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        roundtrip(tls_params(port, certs, cert="stranger", credentials=ext), uniq)
    # No client certificate: EXTERNAL is not offered, so pika finds no common mechanism.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        roundtrip(tls_params(port, certs, credentials=ext), uniq)
    assert "no user 'nobody-here' for the client certificate" in b.log()
    assert "no user '' for the client certificate" not in b.log()
    assert offered_mechanisms(port, certs) == ["PLAIN", "AMQPLAIN"]
    assert offered_mechanisms(port, certs, cert="client") == ["PLAIN", "AMQPLAIN", "EXTERNAL"]


def offered_mechanisms(port, certs, cert=None):
    """The mechanisms connection.start lists on a TLS connection (with a client cert or not)."""
    import rawamqp
    with rawamqp.RawConnection("127.0.0.1", port) as raw:
        raw.sock = client_context(certs, cert).wrap_socket(raw.sock, server_hostname="localhost")
        start = raw.begin()
        mech = start.mechanisms
        return (mech.decode() if isinstance(mech, bytes) else mech).split()


def test_amqplib_over_tls(make_broker, certs):
    node = shutil.which("node")
    assert node, "node is needed (see tests/integration/apt-packages.txt)"
    port = free_port()
    make_broker(config_text=tls_config(certs, port))
    script = r"""
const amqp = require('amqplib'); const fs = require('fs');
(async () => {
  const c = await amqp.connect('amqps://guest:guest@localhost:%d/',
                               {ca: [fs.readFileSync('%s/ca.pem')], servername: 'localhost'});
  const ch = await c.createChannel();
  const q = await ch.assertQueue('', {exclusive: true});
  ch.sendToQueue(q.queue, Buffer.from('node over tls'));
  let m = null;
  for (let i = 0; i < 50 && !m; i++) { m = await ch.get(q.queue, {noAck: true}); if (!m) await new Promise(r => setTimeout(r, 20)); }
  console.log(m ? m.content.toString() : 'nothing');
  await c.close();
})().catch(e => { console.error(e); process.exit(1); });
""" % (port, certs)
    r = subprocess.run([node, "-e", script], cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "node over tls"


def test_management_api_over_https(make_broker, certs):
    import base64
    import json
    import urllib.request
    port = free_port()
    make_broker(config_text=("management.ssl.port = %d\n"
                             "management.ssl.cacertfile = %s/ca.pem\n"
                             "management.ssl.certfile = %s/server.pem\n"
                             "management.ssl.keyfile = %s/server.key\n" % (port, certs, certs, certs)))
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    req = urllib.request.Request("https://localhost:%d/api/whoami" % port)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, context=client_context(certs), timeout=10) as r:
        assert r.status == 200
        assert json.loads(r.read())["name"] == "guest"
    # Plain HTTP on the HTTPS port gets no answer, just a close.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_within(s, 5)


def test_large_messages_over_tls(make_broker, certs, uniq):
    # Frames that span many TLS records, reads that fill and grow the buffer, and gathered
    # writes through the TLS stream.
    port = free_port()
    make_broker(config_text=tls_config(certs, port))
    conn = pika.BlockingConnection(tls_params(port, certs))
    ch = conn.channel()
    ch.queue_declare(uniq, exclusive=True)
    bodies = [os.urandom(1 << 20)] + [os.urandom(100_000) for _ in range(50)]
    for body in bodies:
        ch.basic_publish("", uniq, body)
    got = []
    for _ in bodies:
        m, _, body = ch.basic_get(uniq, auto_ack=True)
        assert m is not None
        got.append(body)
    assert got == bodies
    conn.close()
