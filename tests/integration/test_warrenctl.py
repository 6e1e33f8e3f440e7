"""build/warrenctl: rabbitmqctl's command names, messages and output columns (compared with
rabbitmqctl 3.10.8), over the management API; --formatter json; one-line errors with
non-zero exits; the credentials file the broker writes; changes surviving a restart."""
import json
import os
import subprocess

import pika
import pytest

from conftest import ROOT
from helpers import close_quietly
from mgmt_helpers import Api, connect, fresh_mbroker, mbroker  # noqa: F401

pytestmark = pytest.mark.warren_only

WARRENCTL = os.environ.get("WARRENCTL_BIN", os.path.join(ROOT, "build", "warrenctl"))


def ctl(broker, *args, creds=True, data_dir=True):
    cmd = [WARRENCTL, "--http-port", str(broker.http_port)]
    if data_dir:
        cmd += ["--data-dir", broker.data_dir]
    if not creds:
        cmd += ["--username", "guest", "--password", "guest"]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def ok(broker, *args, **kw):
    rc, out, err = ctl(broker, *args, **kw)
    assert rc == 0, (args, rc, out, err)
    return out


def test_users_lifecycle(mbroker):
    out = ok(mbroker, "add_user", "alice", "apw")
    assert out.startswith('Adding user "alice" ...\n')
    rc, out, err = ctl(mbroker, "add_user", "alice", "apw")
    assert rc == 70 and err == 'Error: User "alice" already exists\n'
    assert ok(mbroker, "authenticate_user", "alice", "apw") == 'Authenticating user "alice" ...\nSuccess\n'
    rc, _, err = ctl(mbroker, "authenticate_user", "alice", "bad")
    assert rc == 65 and "invalid credentials" in err and err.count("\n") == 1
    assert ok(mbroker, "set_user_tags", "alice", "administrator", "management") == \
        'Setting tags for user "alice" to [administrator, management] ...\n'
    out = ok(mbroker, "list_users")
    lines = out.splitlines()
    assert lines[0] == "Listing users ..." and lines[1] == "user\ttags"
    assert "alice\t[administrator, management]" in lines
    assert "guest\t[administrator]" in lines
    users = json.loads(ok(mbroker, "list_users", "--formatter", "json"))
    assert {"user": "alice", "tags": ["administrator", "management"]} in users
    assert ok(mbroker, "-q", "list_users").splitlines()[0] == "user\ttags"
    assert ok(mbroker, "change_password", "alice", "new") == 'Changing password for user "alice" ...\n'
    ok(mbroker, "authenticate_user", "alice", "new")
    assert ok(mbroker, "delete_user", "alice") == 'Deleting user "alice" ...\n'
    rc, _, err = ctl(mbroker, "delete_user", "alice")
    assert rc == 67 and err == 'Error: User "alice" does not exist\n'


def test_vhosts_permissions_and_limits(mbroker):
    assert ok(mbroker, "add_vhost", "ctl-v") == 'Adding vhost "ctl-v" ...\n'
    assert "ctl-v" in ok(mbroker, "list_vhosts").splitlines()
    ok(mbroker, "add_user", "bob", "bpw")
    assert ok(mbroker, "set_permissions", "-p", "ctl-v", "bob", "^b", ".*", ".*") == \
        'Setting permissions for user "bob" in vhost "ctl-v" ...\n'
    assert ok(mbroker, "list_permissions", "-p", "ctl-v").splitlines() == [
        'Listing permissions for vhost "ctl-v" ...', "user\tconfigure\twrite\tread",
        "bob\t^b\t.*\t.*"]
    assert ok(mbroker, "list_user_permissions", "bob").splitlines() == [
        'Listing permissions for user "bob" ...', "vhost\tconfigure\twrite\tread",
        "ctl-v\t^b\t.*\t.*"]
    assert ok(mbroker, "set_topic_permissions", "-p", "ctl-v", "bob", "amq.topic", "^a", "^b") == \
        'Setting topic permissions on "amq.topic" for user "bob" in vhost "ctl-v" ...\n'
    assert ok(mbroker, "list_topic_permissions", "-p", "ctl-v").splitlines() == [
        'Listing topic permissions for vhost "ctl-v" ...', "user\texchange\twrite\tread",
        "bob\tamq.topic\t^a\t^b"]
    assert ok(mbroker, "set_vhost_limits", "-p", "ctl-v", '{"max-connections": 1}') == \
        'Setting vhost limits to "{"max-connections": 1}" for vhost "ctl-v" ...\n'
    c = connect(mbroker, "bob", "bpw", vhost="ctl-v")
    try:
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            connect(mbroker, "bob", "bpw", vhost="ctl-v")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("q")
        assert e.value.reply_code == 403
    finally:
        close_quietly(c)
    assert ok(mbroker, "clear_permissions", "-p", "ctl-v", "bob") == \
        'Clearing permissions for user "bob" in vhost "ctl-v" ...\n'
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(mbroker, "bob", "bpw", vhost="ctl-v")
    assert ok(mbroker, "delete_vhost", "ctl-v") == 'Deleting vhost "ctl-v" ...\n'
    rc, _, err = ctl(mbroker, "delete_vhost", "ctl-v")
    assert rc != 0 and err == 'Error: Virtual host "ctl-v" does not exist\n'


def test_listings_and_queue_commands(mbroker):
    c = connect(mbroker, "guest", "guest")
    try:
        ch = c.channel()
        ch.queue_declare("ctl-q")
        ch.exchange_declare("ctl-x", "fanout")
        ch.queue_bind("ctl-q", "ctl-x", "")
        ch.confirm_delivery()
        ch.basic_publish("", "ctl-q", b"1")
        ch.basic_publish("", "ctl-q", b"2")
        ch2 = c.channel()
        ch2.basic_consume("ctl-q", lambda *a: None, consumer_tag="ctl-tag")
        out = ok(mbroker, "list_queues").splitlines()
        assert out[:3] == ["Timeout: 60.0 seconds ...", "Listing queues for vhost / ...", "name\tmessages"]
        assert any(l.startswith("ctl-q\t") for l in out)
        out = ok(mbroker, "list_queues", "name", "durable", "consumers").splitlines()
        assert out[2] == "name\tdurable\tconsumers" and "ctl-q\tfalse\t1" in out
        out = ok(mbroker, "list_exchanges").splitlines()
        assert out[:2] == ["Listing exchanges for vhost / ...", "name\ttype"]
        assert "ctl-x\tfanout" in out and "\tdirect" in out and "amq.topic\ttopic" in out
        out = ok(mbroker, "list_bindings").splitlines()
        assert out[1] == "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments"
        assert "ctl-x\texchange\tctl-q\tqueue\t\t[]" in out
        assert "\texchange\tctl-q\tqueue\tctl-q\t[]" in out
        out = ok(mbroker, "list_connections").splitlines()
        assert out[:2] == ["Listing connections ...", "user\tpeer_host\tpeer_port\tstate"]
        assert any(l.startswith("guest\t127.0.0.1\t") and l.endswith("\trunning") for l in out[2:])
        out = ok(mbroker, "list_channels").splitlines()
        assert out[1] == "pid\tuser\tconsumer_count\tmessages_unacknowledged"
        out = ok(mbroker, "list_consumers").splitlines()
        assert out[:2] == ["Listing consumers in vhost / ...",
                           "queue_name\tchannel_pid\tconsumer_tag\tack_required\tprefetch_count\tactive\targuments"]
        assert any(l.startswith("ctl-q\t") and "\tctl-tag\t" in l for l in out)
        cons = json.loads(ok(mbroker, "list_consumers", "--formatter", "json"))
        assert cons[0]["consumer_tag"] == "ctl-tag"
        ch2.close()
        assert ok(mbroker, "purge_queue", "ctl-q") == "Purging queue 'ctl-q' in vhost '/' ...\n"
        rc, _, err = ctl(mbroker, "purge_queue", "nope")
        assert rc != 0 and err.count("\n") == 1
        ch.basic_publish("", "ctl-q", b"3")
        assert ok(mbroker, "delete_queue", "ctl-q") == (
            "Deleting queue 'ctl-q' on vhost '/' ...\nQueue was successfully deleted with 1 messages\n")
        rc, _, err = ctl(mbroker, "delete_queue", "ctl-q")
        assert rc != 0 and err == "Error: Queue not found\n"
        name = json.loads(ok(mbroker, "list_connections", "name", "--formatter", "json"))[0]["name"]
        assert ok(mbroker, "close_connection", name, "go away") == \
            "Closing connection %s, reason: go away...\n" % name
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            for _ in range(50):
                c.process_data_events(0.1)
        assert e.value.reply_code == 320 and e.value.reply_text == "CONNECTION_FORCED - go away"
    finally:
        close_quietly(c)


def test_status(mbroker):
    out = ok(mbroker, "status")
    assert "Status of node warren@localhost ..." in out
    assert "port: %d, protocol: amqp" % mbroker.port in out
    assert "rabbitmq_version" in json.loads(ok(mbroker, "status", "--formatter", "json"))


def test_credentials_and_failures(mbroker):
    # Without the credentials file, guest/guest on loopback.
    ok(mbroker, "list_vhosts", data_dir=False, creds=False)
    rc, _, err = ctl(mbroker, "--username", "guest", "--password", "wrong", "list_users", data_dir=False)
    assert rc == 77 and "Login failed" in err and err.count("\n") == 1
    rc, _, err = subprocess.run([WARRENCTL, "--http-port", "1", "list_users"], capture_output=True,
                                text=True, timeout=30).returncode, None, None
    assert rc == 69
    r = subprocess.run([WARRENCTL, "--http-port", "1", "list_users"], capture_output=True, text=True)
    assert r.stderr.startswith("Error: unable to connect") and r.stderr.count("\n") == 1
    rc, _, err = ctl(mbroker, "no_such_command")
    assert rc == 64 and err == "Error: unknown command 'no_such_command'\n"
    # The credentials file is private to the broker's user.
    assert os.stat(os.path.join(mbroker.data_dir, "warrenctl.json")).st_mode & 0o777 == 0o600


def test_changes_survive_a_restart(fresh_mbroker):
    b = fresh_mbroker
    ok(b, "add_vhost", "keep")
    ok(b, "add_user", "carol", "cpw")
    ok(b, "set_user_tags", "carol", "monitoring")
    ok(b, "set_permissions", "-p", "keep", "carol", ".*", ".*", ".*")
    ok(b, "delete_user", "guest")
    b.restart()
    # The token changed with the restart; warrenctl reads the new file.
    assert "carol\t[monitoring]" in ok(b, "list_users").splitlines()
    assert "guest\t[administrator]" not in ok(b, "list_users").splitlines()
    assert "keep\t.*\t.*\t.*" in ok(b, "list_user_permissions", "carol").splitlines()
    connect(b, "carol", "cpw", vhost="keep").close()
    assert Api(b, "carol", "cpw").get("/whoami")["tags"] == ["monitoring"]
