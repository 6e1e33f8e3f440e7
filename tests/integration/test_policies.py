"""Policies and operator policies over the management API and warrenctl (compared with
RabbitMQ 3.10.8): RabbitMQ's JSON and status codes, validation errors, effect on existing and
new queues (message-ttl, max-length, dead-letter-exchange), priority, clearing, the queue
listing's policy fields, and policies surviving a restart (schema v5)."""
import json
import shutil
import subprocess
import time

import pika
import pytest

from helpers import close_quietly, wait_for
from mgmt_helpers import Api, api, connect, fresh_mbroker, make_user, mbroker, seg  # noqa: F401
from test_warrenctl import ctl, ok

pytestmark = pytest.mark.warren_only


def publish(ch, queue, n, body=b"m"):
    for i in range(n):
        ch.basic_publish("", queue, body + str(i).encode())


def test_policy_json_and_status_codes(api):
    body = {"pattern": "^pj", "definition": {"max-length": 3}, "priority": 2, "apply-to": "queues"}
    status, _, _ = api.call("PUT", "/policies/%2F/pj", body)
    assert status == 201
    status, _, _ = api.call("PUT", "/policies/%2F/pj", body)
    assert status == 204
    want = {"vhost": "/", "name": "pj", "pattern": "^pj", "apply-to": "queues",
            "definition": {"max-length": 3}, "priority": 2}
    assert api.get("/policies/%2F/pj") == want
    assert list(api.get("/policies/%2F/pj")) == list(want)  # RabbitMQ's field order
    assert want in api.get("/policies")
    assert want in api.get("/policies/%2F")
    status, j, _ = api.call("PUT", "/policies/%2F/bad", {"definition": {"max-length": 3}})
    assert status == 400 and j == {"error": "bad_request", "reason": "[{key_missing,pattern}]"}
    status, j, _ = api.call("PUT", "/policies/%2F/bad", {"pattern": "x"})
    assert status == 400 and j["reason"] == "[{key_missing,definition}]"
    status, j, _ = api.call("PUT", "/policies/%2F/bad", {"pattern": "x", "definition": {}})
    assert status == 400 and j["reason"] == "Validation failed\n\nno policy provided\n"
    status, j, _ = api.call("PUT", "/policies/%2F/bad",
                            {"pattern": "x", "definition": {"max-length": 1}, "apply-to": "bogus"})
    assert status == 400 and j["reason"] == ("Validation failed\n\napply-to 'bogus' unrecognised; "
                                             "should be 'queues', 'exchanges' or 'all'\n")
    status, j, _ = api.call("PUT", "/policies/%2F/bad", {"pattern": "x", "definition": {"max-length": -3}})
    assert status == 400 and j["error"] == "bad_request" and "max-length" in j["reason"]
    # Keys RabbitMQ does not know are refused as it words it (HTML-escaped, keys sorted); keys
    # of features Warren lacks but RabbitMQ knows (ha-mode, ...) are kept without effect.
    status, j, _ = api.call("PUT", "/policies/%2F/bad", {"pattern": "^q", "definition": {"foo": 1, "bar": "x"}})
    assert status == 400 and j["reason"] == (
        'Validation failed\n\n[{&lt;&lt;"bar"&gt;&gt;,&lt;&lt;"x"&gt;&gt;},{&lt;&lt;"foo"&gt;&gt;,1}] '
        'are not recognised policy settings\n')
    assert api.put("/policies/%2F/ha", {"pattern": "^nothing$", "definition": {"ha-mode": "all"}}) == 201
    api.delete("/policies/%2F/ha")
    status, j, _ = api.call("PUT", "/operator-policies/%2F/bad",
                            {"pattern": "^q", "definition": {"dead-letter-exchange": "x"}})
    assert status == 400 and j["reason"] == (
        'Validation failed\n\n[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised policy '
        'settings\n')
    status, j, _ = api.call("GET", "/policies/%2F/nope")
    assert status == 404 and j == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.call("DELETE", "/policies/%2F/nope")[0] == 404
    assert api.call("GET", "/policies/no-such-vhost")[0] == 404
    api.delete("/policies/%2F/pj")
    assert api.call("GET", "/policies/%2F/pj")[0] == 404


def test_policy_access_by_tags(mbroker, api):
    make_user(api, "pol-mgmt", "pm", vhost="/", tags="management")
    make_user(api, "pol-maker", "pk", vhost="/", tags="policymaker")
    status, j, _ = Api(mbroker, "pol-mgmt", "pm").call("GET", "/policies")
    assert status == 401 and j["error"] == "not_authorised"
    maker = Api(mbroker, "pol-maker", "pk")
    assert maker.put("/policies/%2F/by-maker", {"pattern": "^zz", "definition": {"expires": 100000}}) == 201
    assert maker.call("PUT", "/operator-policies/%2F/op", {"pattern": "^zz", "definition": {"max-length": 1}})[0] == 401
    maker.delete("/policies/%2F/by-maker")


def test_policy_applies_to_an_existing_queue_and_clear_removes_it(mbroker, api):
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare("pol-len", durable=True)
        publish(ch, "pol-len", 5)
        assert wait_for(lambda: api.get("/queues/%2F/pol-len")["messages"] == 5)
        api.put("/policies/%2F/len2", {"pattern": "^pol-len$", "definition": {"max-length": 2},
                                       "apply-to": "queues"})
        q = api.get("/queues/%2F/pol-len")
        assert q["messages"] == 2  # the head was dropped at once, as RabbitMQ does
        assert q["policy"] == "len2" and q["operator_policy"] is None
        assert q["effective_policy_definition"] == {"max-length": 2}
        assert ch.basic_get("pol-len", auto_ack=True)[2] == b"m3"
        api.delete("/policies/%2F/len2")
        q = api.get("/queues/%2F/pol-len")
        assert q["policy"] is None and q["effective_policy_definition"] == {}
        publish(ch, "pol-len", 4)
        assert wait_for(lambda: api.get("/queues/%2F/pol-len")["messages"] == 5)
        ch.queue_delete("pol-len")
    finally:
        close_quietly(conn)


def test_message_ttl_and_dead_letter_policy(mbroker, api):
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.exchange_declare("pol-dlx", "fanout")
        ch.queue_declare("pol-dead")
        ch.queue_bind("pol-dead", "pol-dlx")
        ch.queue_declare("pol-ttl")
        api.put("/policies/%2F/ttl", {"pattern": "^pol-ttl$", "apply-to": "queues",
                                      "definition": {"message-ttl": 100,
                                                     "dead-letter-exchange": "pol-dlx"}})
        publish(ch, "pol-ttl", 3)
        assert wait_for(lambda: api.get("/queues/%2F/pol-dead")["messages"] == 3)
        assert api.get("/queues/%2F/pol-ttl")["messages"] == 0
        method, props, body = ch.basic_get("pol-dead", auto_ack=True)
        assert body == b"m0"
        assert props.headers["x-death"][0]["reason"] == "expired"
        assert props.headers["x-death"][0]["queue"] == "pol-ttl"
        api.delete("/policies/%2F/ttl")
        for q in ("pol-ttl", "pol-dead"):
            ch.queue_delete(q)
        ch.exchange_delete("pol-dlx")
    finally:
        close_quietly(conn)


def test_new_queue_priority_and_operator_policy(mbroker, api):
    api.put("/policies/%2F/low", {"pattern": "^pri", "definition": {"max-length": 1}, "priority": 1})
    api.put("/policies/%2F/high", {"pattern": "^pri-", "definition": {"max-length": 4},
                                   "priority": 5})
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare("pri-q")
        publish(ch, "pri-q", 6)
        assert wait_for(lambda: api.get("/queues/%2F/pri-q")["messages"] == 4)
        assert api.get("/queues/%2F/pri-q")["policy"] == "high"
        # An operator policy caps the limit; the queue shows both names and the merged definition.
        status, _, _ = api.call("PUT", "/operator-policies/%2F/cap",
                                {"pattern": "^pri", "definition": {"max-length": 3},
                                 "apply-to": "queues"})
        assert status == 201
        q = api.get("/queues/%2F/pri-q")
        assert q["messages"] == 3 and q["operator_policy"] == "cap"
        assert q["effective_policy_definition"] == {"max-length": 3}
        assert {"vhost": "/", "name": "cap", "pattern": "^pri", "apply-to": "queues",
                "definition": {"max-length": 3}, "priority": 0} in api.get("/operator-policies")
        api.delete("/operator-policies/%2F/cap")
        api.delete("/policies/%2F/high")
        assert api.get("/queues/%2F/pri-q")["policy"] == "low"
        api.delete("/policies/%2F/low")
        ch.queue_delete("pri-q")
    finally:
        close_quietly(conn)


def test_warrenctl_policy_commands(mbroker):
    out = ok(mbroker, "set_policy", "ctl-p", "^ctl", '{"max-length":4}', "--priority", "1",
             "--apply-to", "queues")
    assert out == ('Setting policy "ctl-p" for pattern "^ctl" to "{"max-length":4}" with '
                   'priority "1" for vhost "/" ...\n')
    out = ok(mbroker, "list_policies")
    lines = out.splitlines()
    assert lines[0] == 'Listing policies for vhost "/" ...'
    assert lines[1] == "vhost\tname\tpattern\tapply-to\tdefinition\tpriority"
    assert '/\tctl-p\t^ctl\tqueues\t{"max-length":4}\t1' in lines
    assert ok(mbroker, "clear_policy", "ctl-p") == 'Clearing policy "ctl-p" on vhost "/" ...\n'
    rc, out, err = ctl(mbroker, "clear_policy", "ctl-p")
    assert rc == 69 and "Parameter does not exist" in err
    rc, out, err = ctl(mbroker, "set_policy", "bad", "^x", '{"max-length":-4}')
    assert rc == 69 and "Validation failed" in err
    ok(mbroker, "set_operator_policy", "ctl-op", "^ctl", '{"max-length":9}', "--apply-to", "queues")
    assert '/\tctl-op\t^ctl\tqueues\t{"max-length":9}\t0' in ok(mbroker, "list_operator_policies").splitlines()
    ok(mbroker, "clear_operator_policy", "ctl-op")


def test_policies_survive_a_restart(fresh_mbroker):
    b = fresh_mbroker
    api = Api(b)
    api.put("/vhosts/pv")
    api.put("/policies/pv/keep", {"pattern": "^kept", "definition": {"max-length": 2},
                                  "priority": 7, "apply-to": "queues"})
    api.put("/operator-policies/pv/opkeep", {"pattern": "^kept", "definition": {"max-length": 5}})
    api.put("/policies/%2F/gone", {"pattern": ".*", "definition": {"expires": 100000}})
    api.delete("/policies/%2F/gone")
    conn = connect(b, "guest", "guest", vhost="pv")
    ch = conn.channel()
    ch.queue_declare("kept-q", durable=True)
    close_quietly(conn)
    b.restart()
    api = Api(b)
    assert api.get("/policies") == [{"vhost": "pv", "name": "keep", "pattern": "^kept",
                                     "apply-to": "queues", "definition": {"max-length": 2},
                                     "priority": 7}]
    assert [p["name"] for p in api.get("/operator-policies")] == ["opkeep"]
    q = api.get("/queues/pv/kept-q")
    assert q["policy"] == "keep" and q["operator_policy"] == "opkeep"
    conn = connect(b, "guest", "guest", vhost="pv")
    try:
        ch = conn.channel()
        for i in range(5):
            ch.basic_publish("", "kept-q", b"x", pika.BasicProperties(delivery_mode=2))
        assert wait_for(lambda: api.get("/queues/pv/kept-q")["messages"] == 2)
    finally:
        close_quietly(conn)
    # Deleting the vhost takes its policies along, also after the next restart.
    api.delete("/vhosts/pv")
    b.restart()
    assert Api(b).get("/policies") == []


def test_rabbitmqadmin_policies(mbroker, api):
    admin = ["rabbitmqadmin", "-H", "127.0.0.1", "-P", str(mbroker.http_port), "-u", "guest",
             "-p", "guest"]

    def run(*args):
        r = subprocess.run(admin + list(args), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert run("declare", "policy", "name=ra", "pattern=^ra", 'definition={"max-length":1}',
               "apply-to=queues", "priority=2") == "policy declared\n"
    assert json.loads(run("-f", "raw_json", "list", "policies")) == [
        {"vhost": "/", "name": "ra", "pattern": "^ra", "apply-to": "queues",
         "definition": {"max-length": 1}, "priority": 2}]
    assert run("delete", "policy", "name=ra") == "policy deleted\n"
    assert api.get("/policies") == []


def test_exchange_policy_alternate_exchange(mbroker, api):
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.exchange_declare("pol-x", "direct")
        ch.exchange_declare("pol-ae", "fanout")
        ch.queue_declare("pol-ae-q")
        ch.queue_bind("pol-ae-q", "pol-ae")
        assert "policy" not in api.get("/exchanges/%2F/pol-x")
        api.put("/policies/%2F/ae", {"pattern": "^pol-x$", "apply-to": "exchanges",
                                     "definition": {"alternate-exchange": "pol-ae"}})
        assert api.get("/exchanges/%2F/pol-x")["policy"] == "ae"
        ch.basic_publish("pol-x", "unrouted", b"to-ae")
        assert wait_for(lambda: api.get("/queues/%2F/pol-ae-q")["messages"] == 1)
        api.delete("/policies/%2F/ae")
        assert "policy" not in api.get("/exchanges/%2F/pol-x")
        # Gone with the policy: unroutable messages are dropped again.
        ch.confirm_delivery()
        ch.basic_publish("pol-x", "unrouted", b"dropped")
        assert api.get("/queues/%2F/pol-ae-q")["messages"] == 1
        # The exchange's own alternate-exchange argument wins over a policy's.
        ch.exchange_declare("pol-ae-arg", "fanout")
        ch.queue_declare("pol-ae-arg-q")
        ch.queue_bind("pol-ae-arg-q", "pol-ae-arg")
        ch.exchange_declare("pol-x2", "direct", arguments={"alternate-exchange": "pol-ae-arg"})
        api.put("/policies/%2F/ae2", {"pattern": "^pol-x2$", "apply-to": "exchanges",
                                      "definition": {"alternate-exchange": "pol-ae"}})
        ch.basic_publish("pol-x2", "unrouted", b"to-arg-ae")
        assert api.get("/queues/%2F/pol-ae-arg-q")["messages"] == 1
        assert api.get("/queues/%2F/pol-ae-q")["messages"] == 1
        api.delete("/policies/%2F/ae2")
        for q in ("pol-ae-arg-q",):
            ch.queue_delete(q)
        for x in ("pol-x2", "pol-ae-arg"):
            ch.exchange_delete(x)
        ch.queue_delete("pol-ae-q")
        ch.exchange_delete("pol-x")
        ch.exchange_delete("pol-ae")
    finally:
        close_quietly(conn)


def test_overflow_policy_and_the_argument_winning_over_it(mbroker, api):
    api.put("/policies/%2F/ovf", {"pattern": "^pol-ovf", "apply-to": "queues",
                                  "definition": {"max-length": 1, "overflow": "reject-publish"}})
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("pol-ovf-policy")
        ch.queue_declare("pol-ovf-arg", arguments={"x-overflow": "drop-head"})
        ch.basic_publish("", "pol-ovf-policy", b"1")
        with pytest.raises(pika.exceptions.NackError):
            ch.basic_publish("", "pol-ovf-policy", b"2")
        ch.basic_publish("", "pol-ovf-arg", b"1")
        ch.basic_publish("", "pol-ovf-arg", b"2")  # drop-head: accepted, the head goes
        assert ch.basic_get("pol-ovf-policy", auto_ack=True)[2] == b"1"
        assert ch.basic_get("pol-ovf-arg", auto_ack=True)[2] == b"2"
        for q in ("pol-ovf-policy", "pol-ovf-arg"):
            ch.queue_delete(q)
    finally:
        api.delete("/policies/%2F/ovf")
        close_quietly(conn)


def test_dead_letter_routing_key_and_expires_policies(mbroker, api):
    api.put("/policies/%2F/dlrk", {"pattern": "^pol-dlrk$", "apply-to": "queues",
                                   "definition": {"message-ttl": 50, "dead-letter-exchange": "",
                                                  "dead-letter-routing-key": "pol-dlrk-dead"}})
    api.put("/policies/%2F/exp", {"pattern": "^pol-exp", "apply-to": "queues",
                                  "definition": {"expires": 300}})
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare("pol-dlrk-dead")
        ch.queue_declare("pol-dlrk")
        ch.basic_publish("", "pol-dlrk", b"expiring")
        assert wait_for(lambda: api.get("/queues/%2F/pol-dlrk-dead")["messages"] == 1)
        m, props, body = ch.basic_get("pol-dlrk-dead", auto_ack=True)
        assert body == b"expiring"
        death = props.headers["x-death"][0]
        assert death["reason"] == "expired" and death["queue"] == "pol-dlrk"
        ch.queue_declare("pol-exp-gone")
        ch.queue_declare("pol-exp-kept")
        api.put("/policies/%2F/exp", {"pattern": "^pol-exp-gone$", "apply-to": "queues",
                                      "definition": {"expires": 300}})  # no longer matches -kept
        time.sleep(1.0)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            conn.channel().queue_declare("pol-exp-gone", passive=True)
        assert e.value.reply_code == 404
        assert ch.queue_declare("pol-exp-kept", passive=True).method.queue == "pol-exp-kept"
        for q in ("pol-dlrk", "pol-dlrk-dead", "pol-exp-kept"):
            ch.queue_delete(q)
    finally:
        api.delete("/policies/%2F/dlrk")
        api.delete("/policies/%2F/exp")
        close_quietly(conn)


def test_queue_mode_policy_pages_and_clearing_it_keeps_order(mbroker, api):
    from test_paging import publish_numbered, swap_rows, drain
    conn = connect(mbroker, "guest", "guest")
    try:
        ch = conn.channel()
        ch.queue_declare("pol-lazy")
        api.put("/policies/%2F/lazy", {"pattern": "^pol-lazy$", "apply-to": "queues",
                                       "definition": {"queue-mode": "lazy"}})
        publish_numbered(ch, "pol-lazy", 6000)
        assert wait_for(lambda: swap_rows(mbroker, "pol-lazy") > 0)
        # Cleared while messages are paged: new ones still go behind them.
        api.delete("/policies/%2F/lazy")
        publish_numbered(ch, "pol-lazy", 10, start=6000)
        got, _ = drain(ch, "pol-lazy", 6010)
        assert got == list(range(6010))
        ch.queue_delete("pol-lazy")
    finally:
        close_quietly(conn)
