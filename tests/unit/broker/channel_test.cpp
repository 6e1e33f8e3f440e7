// broker::Channel through a Connection, sans-I/O: commands in, frames out.
// Concerns covered:
//  - queue.declare (named and server-named), publish with content split over frames,
//    basic.get returning the exact property bytes and body, split at frame_max;
//    get-empty on an empty queue;
//  - a channel error (404) closes only that channel with channel.close carrying the class
//    and method ids; other channels and the connection go on; frames on the closing channel
//    (methods and content) are dropped until close-ok; a crossing channel.close is answered
//    (the channel still waits for close-ok); the channel number can be reopened afterwards;
//  - publisher confirms: select-ok, one ack per input batch (multiple when several),
//    unroutable messages acked too, mandatory unroutable returned before the ack; nowait;
//  - transactions: publishes and acks held until commit, dropped by rollback; commit
//    outside tx mode is 406; tx and confirm modes exclude each other;
//  - nack/reject with requeue put messages back at their original positions, marked
//    redelivered; reject without requeue drops; recover requeues everything;
//  - prefetch: per-consumer (global=false) and per-channel (global=true) limits, credit
//    returning on ack; no-ack consumers are not limited;
//  - unknown or already-acked delivery tags are 406 PRECONDITION_FAILED;
//  - closing a channel requeues its unacked messages; the maximum message size is a
//    channel error (406); a content header of another class is a connection error (505);
//  - a broker torn down with queue TTL and expiry timers still armed is clean (ASan).
#include <doctest/doctest.h>

#include <string>

#include "tests/unit/broker/broker_test_util.h"

using namespace warren;
using namespace warren::testing;
using amqp::ReplyCode;

namespace {

std::string text_props(std::string_view content_type, uint8_t delivery_mode = 1) {
  amqp::BasicProperties p;
  p.flags = amqp::BasicProperties::kContentType | amqp::BasicProperties::kDeliveryMode;
  p.content_type = content_type;
  p.delivery_mode = delivery_mode;
  return encode_properties(p);
}

// The body of a get-ok reply, checking its shape.
std::string got_body(const std::vector<Sent>& r, uint64_t tag, bool redelivered) {
  REQUIRE(r.size() == 1);
  const auto ok = r[0].as<amqp::BasicGetOk>();
  CHECK(ok.delivery_tag == tag);
  CHECK(ok.redelivered == redelivered);
  return r[0].body;
}

void publish_n(OpenClient& c, std::string_view queue, int n, uint16_t channel = 1) {
  for (int i = 1; i <= n; ++i) c.publish(channel, "", queue, "m" + std::to_string(i));
}

amqp::BasicAck ack(uint64_t tag, bool multiple = false) {
  amqp::BasicAck a;
  a.delivery_tag = tag;
  a.multiple = multiple;
  return a;
}

amqp::BasicNack nack(uint64_t tag, bool multiple, bool requeue) {
  amqp::BasicNack n;
  n.delivery_tag = tag;
  n.multiple = multiple;
  n.requeue = requeue;
  return n;
}

// What a channel.close said (owning: the frames it came from are gone).
struct Closed {
  uint16_t code = 0;
  std::string text;
  uint16_t class_id = 0;
  uint16_t method_id = 0;
};

// Checks that channel `ch` was closed with `code` by the broker.
Closed expect_channel_close(const std::vector<Sent>& r, uint16_t ch, ReplyCode code) {
  REQUIRE_FALSE(r.empty());
  CHECK(r.back().channel == ch);
  const auto close = r.back().as<amqp::ChannelClose>();
  CHECK(close.reply_code == static_cast<uint16_t>(code));
  return Closed{close.reply_code, std::string(close.reply_text), close.class_id,
                close.method_id};
}

amqp::BasicConsume consume(std::string_view queue, std::string_view tag, bool no_ack = false) {
  amqp::BasicConsume c;
  c.queue = queue;
  c.consumer_tag = tag;
  c.no_ack = no_ack;
  return c;
}

amqp::BasicQos qos(uint16_t count, bool global) {
  amqp::BasicQos q;
  q.prefetch_count = count;
  q.global_ = global;
  return q;
}

std::vector<uint64_t> delivery_tags(const std::vector<Sent>& r) {
  std::vector<uint64_t> tags;
  for (const Sent& s : r)
    if (s.is<amqp::BasicDeliver>()) tags.push_back(s.as<amqp::BasicDeliver>().delivery_tag);
  return tags;
}

}  // namespace

TEST_CASE("declare, publish, get") {
  OpenClient c;
  CHECK(c.declare_queue("q") == "q");
  const std::string generated = c.declare_queue("");
  CHECK(generated.rfind("amq.gen-", 0) == 0);
  CHECK(generated.size() == 8 + 22);

  CHECK(c.get("q").at(0).is<amqp::BasicGetEmpty>());

  const std::string props = text_props("text/plain", 2);
  c.publish(1, "", "q", "hello world", props, false, /*chunks=*/3);
  CHECK(c.take_bytes().empty());  // no confirm mode: nothing to say

  auto r = c.get("q");
  REQUIRE(r.size() == 1);
  const auto ok = r[0].as<amqp::BasicGetOk>();
  CHECK(ok.delivery_tag == 1);
  CHECK_FALSE(ok.redelivered);
  CHECK(ok.exchange == "");
  CHECK(ok.routing_key == "q");
  CHECK(ok.message_count == 0);
  CHECK(r[0].properties == props);  // the publisher's bytes, unchanged
  CHECK(r[0].body == "hello world");
  CHECK(r[0].body_frames == 1);

  CHECK(c.get("q").at(0).is<amqp::BasicGetEmpty>());
}

TEST_CASE("large bodies go out split at frame_max") {
  OpenClient c;  // frame_max 131072
  c.declare_queue("big");
  std::string body(300000, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7);
  // Publish in frames of at most 131064 payload bytes.
  c.publish(1, "", "big", body, std::string("\0\0", 2), false, 3);
  auto r = c.get("big", true);
  REQUIRE(r.size() == 1);
  CHECK(r[0].body == body);
  CHECK(r[0].body_frames == 3);  // 131064 + 131064 + 37872
}

TEST_CASE("a channel error closes only that channel") {
  OpenClient c;
  c.open_channel(2);
  c.declare_queue("q", 2);

  auto r = c.get("missing");
  const Closed close = expect_channel_close(r, 1, ReplyCode::kNotFound);
  CHECK(close.text == "NOT_FOUND - no queue 'missing' in vhost '/'");
  CHECK(close.class_id == amqp::BasicGet::kClassId);
  CHECK(close.method_id == amqp::BasicGet::kMethodId);
  CHECK(c.conn.state() == broker::Connection::State::kOpen);

  // Channel 2 is unaffected.
  c.publish(2, "", "q", "still here");
  CHECK(got_body(c.get("q", false, 2), 1, false) == "still here");

  SUBCASE("frames are dropped until close-ok, content included") {
    c.declare_queue("q2", 2);
    amqp::QueueDeclare d;
    d.queue = "ignored";
    CHECK(c.call(1, d).empty());
    c.publish(1, "", "q", "dropped");  // method, header and body all ignored
    CHECK(c.take_bytes().empty());
    CHECK(c.get("q", false, 2).at(0).is<amqp::BasicGetEmpty>());
    CHECK(c.broker.find_vhost("/")->find_queue("ignored") == nullptr);

    CHECK(c.call(1, amqp::ChannelCloseOk{}).empty());
    // The channel is gone and its number can be opened again.
    only<amqp::ChannelOpenOk>(commands(c.open_channel(1)), 1);
    c.publish(1, "", "q", "after");
    CHECK(got_body(c.get("q"), 1, false) == "after");
  }
  SUBCASE("a crossing channel.close is answered; the channel waits for close-ok") {
    amqp::ChannelClose mine;
    mine.reply_code = 200;
    only<amqp::ChannelCloseOk>(c.call(1, mine), 1);
    CHECK(c.call(1, amqp::ChannelCloseOk{}).empty());
    only<amqp::ChannelOpenOk>(commands(c.open_channel(1)), 1);
  }
}

TEST_CASE("publishing to a missing exchange is 404 on the channel") {
  OpenClient c;
  c.publish(1, "no-such-exchange", "k", "body");
  expect_channel_close(c.sent(), 1, ReplyCode::kNotFound);
  CHECK(c.conn.state() == broker::Connection::State::kOpen);
}

TEST_CASE("the client closes a channel") {
  OpenClient c;
  amqp::ChannelClose close;
  close.reply_code = 200;
  close.reply_text = "done";
  only<amqp::ChannelCloseOk>(c.call(1, close), 1);
  // A method on the closed channel is a connection error now.
  c.send_method(1, amqp::BasicQos{});
  auto r = c.sent();
  REQUIRE_FALSE(r.empty());
  CHECK(r.back().is<amqp::ConnectionClose>());
}

TEST_CASE("publisher confirms") {
  OpenClient c;
  c.declare_queue("q");
  only<amqp::ConfirmSelectOk>(c.call(1, amqp::ConfirmSelect{}), 1);

  SUBCASE("one ack per batch; multiple when it covers several") {
    std::string batch;
    for (int i = 0; i < 3; ++i) {
      amqp::BasicPublish p;
      p.routing_key = "q";
      batch += method_frame(1, p) + header_frame(1, 1) + body_frame(1, "x");
    }
    c.send(batch);
    const auto a = only<amqp::BasicAck>(c.sent(), 1);
    CHECK(a.delivery_tag == 3);
    CHECK(a.multiple);

    c.publish(1, "", "q", "y");
    const auto b = only<amqp::BasicAck>(c.sent(), 1);
    CHECK(b.delivery_tag == 4);
    CHECK_FALSE(b.multiple);
  }
  SUBCASE("unroutable messages are acked; mandatory ones returned first") {
    c.publish(1, "", "no-such-queue", "lost");
    CHECK(only<amqp::BasicAck>(c.sent(), 1).delivery_tag == 1);

    c.publish(1, "", "no-such-queue", "back", text_props("a/b"), /*mandatory=*/true);
    auto r = c.sent();
    REQUIRE(r.size() == 2);
    const auto ret = r[0].as<amqp::BasicReturn>();
    CHECK(ret.reply_code == 312);
    CHECK(ret.reply_text == "NO_ROUTE");
    CHECK(ret.routing_key == "no-such-queue");
    CHECK(r[0].body == "back");
    CHECK(r[0].properties == text_props("a/b"));
    CHECK(r[1].as<amqp::BasicAck>().delivery_tag == 2);
  }
  SUBCASE("confirm.select nowait; tx.select is then refused") {
    amqp::ConfirmSelect again;
    again.nowait = true;
    CHECK(c.call(1, again).empty());
    expect_channel_close(c.call(1, amqp::TxSelect{}), 1, ReplyCode::kPreconditionFailed);
  }
}

TEST_CASE("transactions") {
  OpenClient c;
  c.declare_queue("q");
  only<amqp::TxSelectOk>(c.call(1, amqp::TxSelect{}), 1);

  SUBCASE("publishes wait for commit") {
    c.publish(1, "", "q", "a");
    c.publish(1, "", "q", "b");
    CHECK(c.take_bytes().empty());
    CHECK(c.get("q", true).at(0).is<amqp::BasicGetEmpty>());
    only<amqp::TxCommitOk>(c.call(1, amqp::TxCommit{}), 1);
    CHECK(c.get("q", true).at(0).as<amqp::BasicGetOk>().message_count == 1);
  }
  SUBCASE("rollback drops publishes") {
    c.publish(1, "", "q", "a");
    only<amqp::TxRollbackOk>(c.call(1, amqp::TxRollback{}), 1);
    only<amqp::TxCommitOk>(c.call(1, amqp::TxCommit{}), 1);
    CHECK(c.get("q", true).at(0).is<amqp::BasicGetEmpty>());
  }
  SUBCASE("acks wait for commit too") {
    c.publish(1, "", "q", "a");
    only<amqp::TxCommitOk>(c.call(1, amqp::TxCommit{}), 1);
    CHECK(got_body(c.get("q"), 1, false) == "a");
    CHECK(c.call(1, ack(1)).empty());
    only<amqp::TxRollbackOk>(c.call(1, amqp::TxRollback{}), 1);
    // Still unacked: recover puts it back.
    amqp::BasicRecover rec;
    rec.requeue = true;
    only<amqp::BasicRecoverOk>(c.call(1, rec), 1);
    CHECK(got_body(c.get("q"), 2, true) == "a");
    CHECK(c.call(1, ack(2)).empty());
    only<amqp::TxCommitOk>(c.call(1, amqp::TxCommit{}), 1);
    CHECK(c.get("q").at(0).is<amqp::BasicGetEmpty>());
    // The ack was committed: acking again is an unknown tag.
    expect_channel_close(c.call(1, ack(2)), 1, ReplyCode::kPreconditionFailed);
  }
  SUBCASE("confirm.select on a tx channel is 406") {
    expect_channel_close(c.call(1, amqp::ConfirmSelect{}), 1, ReplyCode::kPreconditionFailed);
  }
}

TEST_CASE("tx.commit and tx.rollback outside tx mode are 406") {
  OpenClient c;
  expect_channel_close(c.call(1, amqp::TxCommit{}), 1, ReplyCode::kPreconditionFailed);
  OpenClient d;
  expect_channel_close(d.call(1, amqp::TxRollback{}), 1, ReplyCode::kPreconditionFailed);
}

TEST_CASE("nack and reject with requeue keep queue order and mark redelivered") {
  OpenClient c;
  c.declare_queue("q");
  publish_n(c, "q", 4);

  SUBCASE("nack multiple") {
    CHECK(got_body(c.get("q"), 1, false) == "m1");
    CHECK(got_body(c.get("q"), 2, false) == "m2");
    CHECK(got_body(c.get("q"), 3, false) == "m3");
    CHECK(c.call(1, nack(3, true, true)).empty());
    CHECK(got_body(c.get("q"), 4, true) == "m1");
    CHECK(got_body(c.get("q"), 5, true) == "m2");
    CHECK(got_body(c.get("q"), 6, true) == "m3");
    CHECK(got_body(c.get("q"), 7, false) == "m4");
  }
  SUBCASE("a single nack goes back to its own position") {
    CHECK(got_body(c.get("q"), 1, false) == "m1");
    CHECK(got_body(c.get("q"), 2, false) == "m2");
    CHECK(c.call(1, nack(2, false, true)).empty());
    CHECK(got_body(c.get("q"), 3, true) == "m2");
    CHECK(got_body(c.get("q"), 4, false) == "m3");
    // Requeue m1 after m2 was taken again: it goes before m4.
    amqp::BasicReject rj;
    rj.delivery_tag = 1;
    rj.requeue = true;
    CHECK(c.call(1, rj).empty());
    CHECK(got_body(c.get("q"), 5, true) == "m1");
    CHECK(got_body(c.get("q"), 6, false) == "m4");
  }
  SUBCASE("reject and nack without requeue drop") {
    CHECK(got_body(c.get("q"), 1, false) == "m1");
    amqp::BasicReject rj;
    rj.delivery_tag = 1;
    rj.requeue = false;
    CHECK(c.call(1, rj).empty());
    CHECK(got_body(c.get("q"), 2, false) == "m2");
    CHECK(c.call(1, nack(2, false, false)).empty());
    CHECK(got_body(c.get("q"), 3, false) == "m3");
  }
  SUBCASE("nack multiple with tag 0 covers everything outstanding") {
    c.get("q");
    c.get("q");
    CHECK(c.call(1, nack(0, true, true)).empty());
    CHECK(got_body(c.get("q"), 3, true) == "m1");
  }
}

TEST_CASE("unknown delivery tags are 406") {
  SUBCASE("never delivered") {
    OpenClient c;
    const Closed close = expect_channel_close(c.call(1, ack(42)), 1, ReplyCode::kPreconditionFailed);
    CHECK(close.text == "PRECONDITION_FAILED - unknown delivery tag 42");
    CHECK(close.class_id == amqp::BasicAck::kClassId);
    CHECK(close.method_id == amqp::BasicAck::kMethodId);
  }
  SUBCASE("acked twice") {
    OpenClient c;
    c.declare_queue("q");
    publish_n(c, "q", 1);
    c.get("q");
    CHECK(c.call(1, ack(1)).empty());
    expect_channel_close(c.call(1, ack(1)), 1, ReplyCode::kPreconditionFailed);
  }
  SUBCASE("a no-ack delivery has no tag to ack") {
    OpenClient c;
    c.declare_queue("q");
    publish_n(c, "q", 1);
    c.get("q", /*no_ack=*/true);
    expect_channel_close(c.call(1, nack(1, false, true)), 1, ReplyCode::kPreconditionFailed);
  }
  SUBCASE("multiple with a tag beyond what was delivered") {
    OpenClient c;
    c.declare_queue("q");
    publish_n(c, "q", 1);
    c.get("q");
    expect_channel_close(c.call(1, ack(5, true)), 1, ReplyCode::kPreconditionFailed);
  }
}

TEST_CASE("prefetch limits") {
  OpenClient c;
  c.declare_queue("q");
  publish_n(c, "q", 5);

  SUBCASE("per consumer (global=false)") {
    only<amqp::BasicQosOk>(c.call(1, qos(2, false)), 1);
    auto r = c.call(1, consume("q", "c1"));
    REQUIRE(r.size() == 3);
    CHECK(r[0].as<amqp::BasicConsumeOk>().consumer_tag == "c1");
    CHECK(delivery_tags(r) == std::vector<uint64_t>{1, 2});
    CHECK(r[1].body == "m1");
    CHECK(r[1].as<amqp::BasicDeliver>().consumer_tag == "c1");

    CHECK(delivery_tags(c.call(1, ack(1))) == std::vector<uint64_t>{3});
    CHECK(delivery_tags(c.call(1, ack(3, true))) == std::vector<uint64_t>{4, 5});
    CHECK(c.call(1, ack(5, true)).empty());
  }
  SUBCASE("per channel (global=true) across consumers") {
    c.declare_queue("q2");
    publish_n(c, "q2", 5);
    only<amqp::BasicQosOk>(c.call(1, qos(3, true)), 1);
    auto r1 = c.call(1, consume("q", "a"));
    CHECK(delivery_tags(r1).size() == 3);
    auto r2 = c.call(1, consume("q2", "b"));
    REQUIRE(r2.size() == 1);  // consume-ok only: the channel is at its limit
    CHECK(r2[0].is<amqp::BasicConsumeOk>());
    auto r3 = c.call(1, ack(2, true));  // two credits back
    CHECK(delivery_tags(r3).size() == 2);
  }
  SUBCASE("no-ack consumers are not limited") {
    only<amqp::BasicQosOk>(c.call(1, qos(1, false)), 1);
    auto r = c.call(1, consume("q", "fast", /*no_ack=*/true));
    CHECK(delivery_tags(r) == std::vector<uint64_t>{1, 2, 3, 4, 5});
  }
  SUBCASE("raising the limit delivers more at once") {
    only<amqp::BasicQosOk>(c.call(1, qos(1, false)), 1);
    CHECK(delivery_tags(c.call(1, consume("q", "c"))).size() == 1);
    // A new per-consumer limit applies to consumers created later; a channel limit does not
    // hold this consumer back either.
    auto r = c.call(1, qos(10, true));
    CHECK(r.at(0).is<amqp::BasicQosOk>());
  }
}

TEST_CASE("closing a channel requeues its unacked messages") {
  OpenClient c;
  c.declare_queue("q");
  publish_n(c, "q", 2);
  c.open_channel(2);
  auto r = c.call(2, consume("q", "c"));
  CHECK(delivery_tags(r) == std::vector<uint64_t>{1, 2});
  amqp::ChannelClose close;
  close.reply_code = 200;
  only<amqp::ChannelCloseOk>(c.call(2, close), 2);
  CHECK(got_body(c.get("q"), 1, true) == "m1");
  CHECK(got_body(c.get("q"), 2, true) == "m2");
}

TEST_CASE("consumer cancel; deliveries to the remaining consumer") {
  OpenClient c;
  c.declare_queue("q");
  c.call(1, consume("q", "c1", true));
  amqp::BasicCancel cancel;
  cancel.consumer_tag = "c1";
  CHECK(only<amqp::BasicCancelOk>(c.call(1, cancel), 1).consumer_tag == "c1");
  c.publish(1, "", "q", "kept");
  CHECK(c.take_bytes().empty());
  CHECK(got_body(c.get("q"), 1, false) == "kept");
}

TEST_CASE("message size limit and content header class") {
  SUBCASE("over max_message_size is 406 on the channel") {
    common::Config cfg = quiet_config();
    cfg.max_message_size = 16;
    OpenClient c(cfg);
    c.declare_queue("q");
    c.publish(1, "", "q", std::string(17, 'x'), std::string("\0\0", 2), false, 2);
    expect_channel_close(c.sent(), 1, ReplyCode::kPreconditionFailed);
    CHECK(c.conn.state() == broker::Connection::State::kOpen);
  }
  SUBCASE("a content header of another class is 505") {
    OpenClient c;
    amqp::BasicPublish p;
    p.routing_key = "q";
    c.send(method_frame(1, p) + header_frame(1, 1, std::string("\0\0", 2), amqp::kClassQueue));
    auto r = c.sent();
    REQUIRE_FALSE(r.empty());
    CHECK(r.back().as<amqp::ConnectionClose>().reply_code ==
          static_cast<uint16_t>(ReplyCode::kUnexpectedFrame));
  }
  SUBCASE("a body frame without a method is 505") {
    OpenClient c;
    c.send(body_frame(1, "stray"));
    auto r = c.sent();
    REQUIRE_FALSE(r.empty());
    CHECK(r.back().as<amqp::ConnectionClose>().reply_code ==
          static_cast<uint16_t>(ReplyCode::kUnexpectedFrame));
  }
}

TEST_CASE("exclusive queues belong to their connection") {
  OpenClient a;
  amqp::QueueDeclare q;
  q.queue = "excl";
  q.exclusive = true;
  only<amqp::QueueDeclareOk>(a.call(1, q), 1);
  // A second connection to the same broker.
  testing::FakeTransport t2;
  broker::Connection other(a.broker, t2, "127.0.0.1:40001", true);
  std::string bytes = protocol_header();
  amqp::ConnectionStartOk so;
  so.mechanism = "PLAIN";
  const std::string resp = plain_response("guest", "guest");
  so.response = resp;
  bytes += method_frame(0, so);
  amqp::ConnectionTuneOk to;
  to.channel_max = 2047;
  to.frame_max = 131072;
  bytes += method_frame(0, to);
  amqp::ConnectionOpen open;
  open.virtual_host = "/";
  bytes += method_frame(0, open) + method_frame(1, amqp::ChannelOpen{});
  amqp::BasicGet g;
  g.queue = "excl";
  bytes += method_frame(1, g);
  REQUIRE(other.on_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) ==
          bytes.size());
  auto r = commands(parse_frames(other.out().flatten()));
  REQUIRE_FALSE(r.empty());
  CHECK(r.back().as<amqp::ChannelClose>().reply_code ==
        static_cast<uint16_t>(ReplyCode::kResourceLocked));
  other.on_transport_closed();
}

TEST_CASE("queues with pending TTL and expiry timers tear down cleanly") {
  // Regression: the broker's own io_context was destroyed before the queues whose timers
  // use it (heap-use-after-free under ASan when a Broker without an executor went away).
  OpenClient c;
  amqp::QueueDeclare q;
  q.queue = "ttl";
  q.arguments.set("x-message-ttl", int32_t{60000});
  q.arguments.set("x-expires", int32_t{600000});
  only<amqp::QueueDeclareOk>(c.call(1, q), 1);
  amqp::BasicProperties p;
  p.flags = amqp::BasicProperties::kExpiration;
  p.expiration = "30000";
  c.publish(1, "", "ttl", "short-lived", encode_properties(p));
  c.publish(1, "", "ttl", "queue ttl only");
  CHECK(got_body(c.get("ttl", true), 1, false) == "short-lived");
  // One message stays queued with its timer armed when everything is destroyed.
}
