"""Access control over AMQP as RabbitMQ does it, with pika: logins, vhost access, the
configure/write/read permissions on every operation (with the default exchange and
server-named queues), topic permissions, loopback-only users, changes taking effect at
once (deleted users and vhosts close their connections), vhost limits, slowed-down login
failures and logs without passwords. Every expected text was checked against RabbitMQ
3.10.8. Users and vhosts are made through the management API."""
import os
import tempfile
import time

import pika
import pytest

from helpers import close_quietly
from mgmt_helpers import (Api, api, connect, fresh_mbroker, make_user, mbroker,  # noqa: F401
                          non_loopback_address, seg,
                          start_mgmt_broker)

pytestmark = pytest.mark.warren_only

LOGIN_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                 "For details see the broker logfile.")


@pytest.fixture
def space(api, request):
    """A vhost and a user of the test's own: returns (vhost, user, password)."""
    name = request.node.name.replace("[", "-").replace("]", "")[:40]
    vhost, user, pw = "v-" + name, "u-" + name, "pw-" + name
    api.put("/vhosts/" + seg(vhost))
    api.put("/users/" + seg(user), {"password": pw, "tags": ""})
    yield vhost, user, pw
    api.call("DELETE", "/vhosts/" + seg(vhost))
    api.call("DELETE", "/users/" + seg(user))


def grant(api, vhost, user, conf, write, read):
    api.put("/permissions/%s/%s" % (seg(vhost), seg(user)),
            {"configure": conf, "write": write, "read": read})


def refused(excinfo, kind, name, vhost, user):
    e = excinfo.value
    assert e.reply_code == 403, e
    assert e.reply_text == "ACCESS_REFUSED - access to %s '%s' in vhost '%s' refused for user '%s'" % (
        kind, name, vhost, user), e


def publish_confirmed(ch, exchange, key, body=b"x"):
    ch.confirm_delivery()
    ch.basic_publish(exchange, key, body)


# ---------------------------------------------------------------- logins and vhosts

def test_wrong_password_is_refused(mbroker):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        connect(mbroker, "guest", "wrong")
    assert LOGIN_REFUSED in str(e.value)


def test_unknown_user_is_refused(mbroker):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        connect(mbroker, "nobody-at-all", "x")
    assert LOGIN_REFUSED in str(e.value)


def test_user_without_password_cannot_log_in(mbroker, api):
    api.put("/users/nopass", {"tags": ""})
    api.put("/permissions/%2F/nopass", {"configure": ".*", "write": ".*", "read": ".*"})
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(mbroker, "nopass", "")
    api.delete("/users/nopass")


def test_unknown_vhost_is_not_allowed(mbroker):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        connect(mbroker, "guest", "guest", vhost="no-such-vhost")
    assert "(530) 'NOT_ALLOWED - vhost no-such-vhost not found'" in str(e.value)


def test_vhost_without_permission_is_not_allowed(mbroker, api, space):
    vhost, user, pw = space
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        connect(mbroker, user, pw, vhost=vhost)
    assert "530" in str(e.value)
    assert "NOT_ALLOWED - access to vhost '%s' refused for user '%s'" % (vhost, user) in str(e.value)
    grant(api, vhost, user, ".*", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    c.close()


def test_vhosts_are_isolated(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", ".*")
    a = connect(mbroker, user, pw, vhost=vhost)
    g = connect(mbroker, "guest", "guest")
    try:
        a.channel().queue_declare("iso-q")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            g.channel().queue_declare("iso-q", passive=True)
        assert e.value.reply_code == 404
    finally:
        close_quietly(a)
        close_quietly(g)


# ---------------------------------------------------------------- configure / write / read

def test_queue_declare_needs_configure(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, "^c", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("q")
        refused(e, "queue", "q", vhost, user)
        assert c.channel().queue_declare("cq").method.queue == "cq"
        # Passive declares need no permission.
        grant(api, vhost, user, "^nothing$", ".*", ".*")
        assert c.channel().queue_declare("cq", passive=True).method.queue == "cq"
    finally:
        close_quietly(c)


def test_server_named_queue_needs_configure_on_amq_gen(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, "^c", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("")
        assert e.value.reply_code == 403
        assert e.value.reply_text.startswith("ACCESS_REFUSED - access to queue 'amq.gen-")
        assert e.value.reply_text.endswith("' in vhost '%s' refused for user '%s'" % (vhost, user))
        grant(api, vhost, user, "^amq\\.gen-", ".*", ".*")
        assert c.channel().queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
    finally:
        close_quietly(c)


def test_queue_delete_needs_configure(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, "^c", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_delete("zzz")
        refused(e, "queue", "zzz", vhost, user)
        c.channel().queue_declare("cdel")
        c.channel().queue_delete("cdel")
    finally:
        close_quietly(c)


def test_exchange_declare_and_delete_need_configure(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, "^c", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        # The permission is checked before the reserved amq. prefix, as RabbitMQ does.
        for name, op in (("x1", lambda ch: ch.exchange_declare("x1", "direct")),
                         ("x1", lambda ch: ch.exchange_delete("x1")),
                         ("amq.foo", lambda ch: ch.exchange_declare("amq.foo", "direct"))):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                op(c.channel())
            refused(e, "exchange", name, vhost, user)
        c.channel().exchange_declare("cx", "direct")
        c.channel().exchange_delete("cx")
    finally:
        close_quietly(c)


def test_publish_needs_write_on_the_exchange(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", "^c", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        c.channel().exchange_declare("cx", "direct")
        c.channel().exchange_declare("dx", "direct")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            publish_confirmed(c.channel(), "dx", "k")
        refused(e, "exchange", "dx", vhost, user)
        publish_confirmed(c.channel(), "cx", "k")
        # The default exchange is checked as amq.default.
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            publish_confirmed(c.channel(), "", "k")
        refused(e, "exchange", "amq.default", vhost, user)
        grant(api, vhost, user, ".*", "^amq\\.default$", ".*")
        publish_confirmed(c.channel(), "", "k")
    finally:
        close_quietly(c)


def test_consume_get_and_purge_need_read(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", "^r")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        c.channel().queue_declare("q1")
        c.channel().queue_declare("rq")
        for op in (lambda ch: ch.basic_get("q1"),
                   lambda ch: ch.basic_consume("q1", lambda *a: None),
                   lambda ch: ch.queue_purge("q1")):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                op(c.channel())
            refused(e, "queue", "q1", vhost, user)
        ch = c.channel()
        assert ch.basic_get("rq") == (None, None, None)
        ch.queue_purge("rq")
        ch.basic_consume("rq", lambda *a: None)
        # A missing queue is refused before it is looked up.
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().basic_get("zmissing")
        refused(e, "queue", "zmissing", vhost, user)
    finally:
        close_quietly(c)


def test_bind_needs_write_on_the_queue_and_read_on_the_exchange(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        c.channel().queue_declare("wq")
        c.channel().queue_declare("oq")
        c.channel().exchange_declare("rx", "direct")
        c.channel().exchange_declare("ox", "direct")
        grant(api, vhost, user, ".*", "^w", "^r")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_bind("oq", "rx", "k")
        refused(e, "queue", "oq", vhost, user)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_bind("wq", "ox", "k")
        refused(e, "exchange", "ox", vhost, user)
        c.channel().queue_bind("wq", "rx", "k")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_unbind("oq", "rx", "k")
        refused(e, "queue", "oq", vhost, user)
        c.channel().queue_unbind("wq", "rx", "k")
        # exchange.bind: write on the destination exchange.
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().exchange_bind("ox", "rx", "k")
        refused(e, "exchange", "ox", vhost, user)
    finally:
        close_quietly(c)


def test_dead_letter_and_alternate_exchanges_need_write(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", "^c", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("cdl", arguments={"x-dead-letter-exchange": "zz"})
        refused(e, "exchange", "zz", vhost, user)
        c.channel().queue_declare("cdl2", arguments={"x-dead-letter-exchange": "cz"})
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().exchange_declare("cae", "direct", arguments={"alternate-exchange": "zz"})
        refused(e, "exchange", "zz", vhost, user)
    finally:
        close_quietly(c)


def test_permission_changes_apply_to_open_connections(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        c.channel().queue_declare("chq")
        grant(api, vhost, user, "^$", ".*", ".*")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("chq2")
        refused(e, "queue", "chq2", vhost, user)
    finally:
        close_quietly(c)


# ---------------------------------------------------------------- topic permissions

def test_topic_permissions_on_publish_and_bind(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", ".*")
    api.put("/topic-permissions/%s/%s" % (seg(vhost), seg(user)),
            {"exchange": "amq.topic", "write": "^{username}\\.", "read": "^{vhost}\\."})
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            publish_confirmed(c.channel(), "amq.topic", "other.k")
        assert e.value.reply_code == 403
        assert e.value.reply_text == (
            "ACCESS_REFUSED - access to topic 'other.k' in exchange 'amq.topic' in vhost "
            "'%s' refused for user '%s'" % (vhost, user))
        publish_confirmed(c.channel(), "amq.topic", user + ".k")
        c.channel().queue_declare("tq")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_bind("tq", "amq.topic", "zz")
        assert "access to topic 'zz' in exchange 'amq.topic'" in e.value.reply_text
        c.channel().queue_bind("tq", "amq.topic", vhost + ".#")
        # Other exchanges are not affected.
        c.channel().exchange_declare("tx2", "topic")
        publish_confirmed(c.channel(), "tx2", "anything")
    finally:
        close_quietly(c)


# ---------------------------------------------------------------- loopback users

def test_guest_from_a_non_loopback_address_is_refused():
    """Warren listens on every address; a client connecting to the machine's own
    non-loopback address has that address as its peer, which is not loopback."""
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        b = start_mgmt_broker(d, bind="0.0.0.0")
        try:
            with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
                connect(b, "guest", "guest", host=addr)
            assert LOGIN_REFUSED in str(e.value)
            assert "can only connect via localhost" in b.log()
            # The same user from loopback is fine, and so is another user from afar.
            connect(b, "guest", "guest").close()
            make_user(Api(b), "remote", "rpw", vhost="/")
            connect(b, "remote", "rpw", host=addr).close()
            # The management API refuses guest from afar too.
            status, j, _ = Api(b, host=addr).call("GET", "/overview")
            assert status == 401 and j["reason"] == "User can only log in via localhost"
        finally:
            b.stop()


def test_loopback_users_none_lifts_the_restriction():
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with tempfile.TemporaryDirectory(prefix="warren-test-") as d:
        with open(os.path.join(d, "l.conf"), "w") as f:
            f.write("loopback_users = none\n")
        b = start_mgmt_broker(d, bind="0.0.0.0", extra_args=["--config", os.path.join(d, "l.conf")])
        try:
            connect(b, "guest", "guest", host=addr).close()
        finally:
            b.stop()


# ---------------------------------------------------------------- deletions and limits

def wait_closed(conn, timeout=5.0):
    deadline = time.monotonic() + timeout
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        while time.monotonic() < deadline:
            conn.process_data_events(0.1)
    return e


def test_deleting_a_user_closes_its_connections(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", ".*")
    c = connect(mbroker, user, pw, vhost=vhost)
    other = connect(mbroker, "guest", "guest", vhost=vhost)
    try:
        api.delete("/users/" + seg(user))
        e = wait_closed(c)
        assert e.value.reply_code == 320
        assert e.value.reply_text == "CONNECTION_FORCED - user '%s' is deleted" % user
        assert other.is_open
        other.process_data_events(0.2)
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            connect(mbroker, user, pw, vhost=vhost)
    finally:
        close_quietly(c)
        close_quietly(other)


def test_deleting_a_vhost_closes_its_connections_and_removes_its_data(mbroker, api):
    api.put("/vhosts/doomed")
    c = connect(mbroker, "guest", "guest", vhost="doomed")
    try:
        ch = c.channel()
        ch.queue_declare("dq", durable=True)
        ch.basic_publish("", "dq", b"m", pika.BasicProperties(delivery_mode=2))
        api.delete("/vhosts/doomed")
        e = wait_closed(c)
        assert e.value.reply_code == 320
        assert e.value.reply_text == "CONNECTION_FORCED - vhost 'doomed' is deleted"
    finally:
        close_quietly(c)
    assert api.call("GET", "/vhosts/doomed")[0] == 404
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(mbroker, "guest", "guest", vhost="doomed")
    api.put("/vhosts/doomed")
    c = connect(mbroker, "guest", "guest", vhost="doomed")
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("dq", passive=True)
        assert e.value.reply_code == 404
    finally:
        close_quietly(c)
        api.delete("/vhosts/doomed")


def test_vhost_connection_limit(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", ".*")
    api.put("/vhost-limits/%s/max-connections" % seg(vhost), {"value": 2})
    conns = [connect(mbroker, user, pw, vhost=vhost) for _ in range(2)]
    try:
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
            connect(mbroker, user, pw, vhost=vhost)
        assert ("NOT_ALLOWED - access to vhost '%s' refused for user '%s': connection limit (2) "
                "is reached" % (vhost, user)) in str(e.value)
        conns.pop().close()
        conns.append(connect(mbroker, user, pw, vhost=vhost))
        api.delete("/vhost-limits/%s/max-connections" % seg(vhost))
        conns.append(connect(mbroker, user, pw, vhost=vhost))
    finally:
        for c in conns:
            close_quietly(c)


def test_vhost_queue_limit(mbroker, api, space):
    vhost, user, pw = space
    grant(api, vhost, user, ".*", ".*", ".*")
    api.put("/vhost-limits/%s/max-queues" % seg(vhost), {"value": 1})
    c = connect(mbroker, user, pw, vhost=vhost)
    try:
        c.channel().queue_declare("lq1")
        c.channel().queue_declare("lq1")  # redeclaring an existing queue is fine
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("lq2")
        assert e.value.reply_code == 406
        assert e.value.reply_text == (
            "PRECONDITION_FAILED - cannot declare queue 'lq2': queue limit in vhost '%s' (1) "
            "is reached" % vhost)
    finally:
        close_quietly(c)


# ---------------------------------------------------------------- login failures

def test_repeated_login_failures_are_slowed_down_and_logged_without_password(fresh_mbroker):
    b = fresh_mbroker
    secret = "s3cret-Pa55word-xyz"
    for _ in range(5):
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            connect(b, "guest", secret, stack_timeout=20, socket_timeout=10)
    start = time.monotonic()
    connect(b, "guest", "guest", stack_timeout=20, socket_timeout=10).close()
    assert time.monotonic() - start >= 0.7  # 800 ms after five failures
    # The success cleared the address.
    start = time.monotonic()
    connect(b, "guest", "guest").close()
    assert time.monotonic() - start < 0.5
    log = b.log()
    assert "PLAIN login refused: user 'guest' - invalid credentials" in log
    assert secret not in log


# ---------------------------------------------------------------- persistence

def test_access_data_survives_a_restart(fresh_mbroker):
    b = fresh_mbroker
    api = Api(b)
    # A new data directory has guest (administrator) with full permissions on "/".
    assert api.get("/whoami") == {"name": "guest", "tags": ["administrator"]}
    assert api.get("/permissions") == [
        {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
    api.put("/vhosts/kept", {"description": "kept vhost"})
    make_user(api, "keeper", "kpw", vhost="kept", conf="^k", write="^k", read="^k",
              tags="management")
    api.put("/topic-permissions/kept/keeper", {"exchange": "amq.topic", "write": "^a", "read": "^b"})
    api.put("/vhost-limits/kept/max-queues", {"value": 5})
    api.delete("/permissions/%2F/guest")
    b.restart()
    api = Api(b)
    assert [v["name"] for v in api.get("/vhosts")] == ["/", "kept"]
    assert api.get("/vhosts/kept")["description"] == "kept vhost"
    assert api.get("/users/keeper")["tags"] == ["management"]
    assert api.get("/permissions") == [
        {"user": "guest", "vhost": "kept", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "keeper", "vhost": "kept", "configure": "^k", "write": "^k", "read": "^k"}]
    assert api.get("/topic-permissions") == [
        {"user": "keeper", "vhost": "kept", "exchange": "amq.topic", "write": "^a", "read": "^b"}]
    assert api.get("/vhost-limits") == [{"vhost": "kept", "value": {"max-queues": 5}}]
    connect(b, "keeper", "kpw", vhost="kept").close()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(b, "guest", "guest", vhost="/")
