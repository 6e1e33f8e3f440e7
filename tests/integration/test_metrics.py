"""Prometheus metrics on the management listener: /metrics (aggregated) and
/metrics/per-object (labelled by vhost and queue), with RabbitMQ's prometheus plugin's metric
names (checked against RabbitMQ 3.10.8), parsed with prometheus_client's text parser
(Debian's python3-prometheus-client)."""
import time
import urllib.error
import urllib.request

import pytest

from helpers import close_quietly
from mgmt_helpers import connect, mbroker  # noqa: F401

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

pytestmark = pytest.mark.warren_only


def scrape(b, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (b.http_port, path), timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples = {}
    types = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_reflect_queues_connections_and_consumers(mbroker):
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare("metrics-q")
        for _ in range(3):
            ch.basic_publish("", "metrics-q", b"x" * 10)
        ch.queue_declare("metrics-c")
        ch.basic_qos(prefetch_count=10)
        ch.basic_publish("", "metrics-c", b"y")
        ch.basic_consume("metrics-c", lambda *a: None)
        conn.process_data_events(time_limit=0.3)
        deadline = time.time() + 5
        while True:
            samples, types = scrape(mbroker, "/metrics/per-object")
            if value(samples, "rabbitmq_queue_messages_ready", vhost="/", queue="metrics-q") == 3:
                break
            assert time.time() < deadline
            time.sleep(0.05)
        assert value(samples, "rabbitmq_queue_messages_unacked", vhost="/", queue="metrics-c") == 1
        assert value(samples, "rabbitmq_queue_messages", vhost="/", queue="metrics-q") == 3
        assert value(samples, "rabbitmq_queue_consumers", vhost="/", queue="metrics-c") == 1
        assert value(samples, "rabbitmq_queue_messages_ready_bytes", vhost="/", queue="metrics-q") == 30
        agg, types = scrape(mbroker)
        assert types["rabbitmq_connections"] == "gauge"
        assert value(agg, "rabbitmq_connections") >= 1
        assert value(agg, "rabbitmq_channels") >= 1
        assert value(agg, "rabbitmq_consumers") >= 1
        assert value(agg, "rabbitmq_queues") >= 2
        assert value(agg, "rabbitmq_queue_messages_ready") >= 3
        assert value(agg, "rabbitmq_queue_messages_unacked") >= 1
        assert value(agg, "rabbitmq_alarms_memory_used_watermark") == 0
        assert value(agg, "rabbitmq_alarms_free_disk_space_watermark") == 0
        # Aggregated: no per-queue labels.
        assert not [k for k in agg if k[0] == "rabbitmq_queue_messages_ready" and k[1]]
        ch.queue_delete("metrics-q")
        ch.queue_delete("metrics-c")
    finally:
        close_quietly(conn)


def test_metrics_label_escaping_and_methods(mbroker):
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare('odd"na\\me')
        samples, _ = scrape(mbroker, "/metrics/per-object")
        assert value(samples, "rabbitmq_queue_messages", vhost="/", queue='odd"na\\me') == 0
        ch.queue_delete('odd"na\\me')
    finally:
        close_quietly(conn)
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % mbroker.http_port, method="POST",
                                 data=b"")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_prometheus_port_serves_only_metrics():
    import tempfile
    from conftest import free_port, start_warren
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_warren(d, http_port=None, config_text="prometheus.tcp.port = %d\n" % port)
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
                families = {f.name for f in text_string_to_metric_families(r.read().decode())}
            assert {"rabbitmq_connections", "rabbitmq_queue_messages_ready"} <= families
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen("http://127.0.0.1:%d/api/overview" % port, timeout=10)
            assert e.value.code == 404
        finally:
            b.stop()
