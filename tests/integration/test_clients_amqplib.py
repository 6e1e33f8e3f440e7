"""amqplib (Node.js, from npm) against the broker.

tests/integration/clients/node holds package.json and package-lock.json (amqplib pinned);
`npm ci` fills node_modules once per session when it is missing. If npm cannot install,
every test here fails. Each test runs one scenario of scenarios.js in its own node process:
`node scenarios.js <scenario> <amqp-url>` exits 0 and prints "OK <scenario>" on success.
"""
import os
import shutil
import subprocess

import pytest

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients", "node")

SCENARIOS = [
    "connect_close",
    "declare_bind",
    "send_consume_ack",
    "topic_publish",
    "prefetch",
    "nack_requeue",
    "confirm_channel",
    "check_queue_missing",
    "channel_error_isolation",
    "get_empty",
    "large_message",
    "headers_exchange",
    "purge_delete",
    "consumer_cancel_notification",
    "exchange_to_exchange",
    "exclusive_queue_locked",
    "recover_requeues",
    "dead_letter_x_death",
    "update_secret",
    "message_ttl_expired",
    "priority_queue",
    "reject_publish_confirms",
    "direct_reply_to",
]


@pytest.fixture(scope="session")
def node_scenarios():
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "node and npm are needed (see tests/integration/apt-packages.txt)"
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "amqplib")):
        has_lock = os.path.exists(os.path.join(NODE_DIR, "package-lock.json"))
        cmd = [npm, "ci" if has_lock else "install", "--no-audit", "--no-fund"]
        r = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(cmd), r.stdout, r.stderr)
    return [node, os.path.join(NODE_DIR, "scenarios.js")]


def run_scenario(cmd, scenario, url):
    r = subprocess.run(cmd + [scenario, url], cwd=NODE_DIR, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, "scenario %s exited %s:\n%s\n%s" % (
        scenario, r.returncode, r.stdout, r.stderr)
    assert "OK %s" % scenario in r.stdout
    return r


def test_scenario_list_is_complete(node_scenarios):
    r = subprocess.run(node_scenarios + ["list"], cwd=NODE_DIR, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_amqplib(node_scenarios, broker, scenario):
    run_scenario(node_scenarios, scenario, broker.url)
