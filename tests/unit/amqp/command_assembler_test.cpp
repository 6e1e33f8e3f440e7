// CommandAssembler (amqp/command_assembler.h).
// Concerns covered:
//  - a method without content is a command at once;
//  - basic.publish with its header and a body split over several frames; the properties are
//    the raw bytes sent; the method's views survive the frames that follow it;
//  - a zero-size body completes at the header;
//  - wrong order is 505 UNEXPECTED_FRAME: header or body while a method is expected, a
//    method or body while a header is expected, a method or header while body is expected;
//  - a body longer than announced (in one frame or over several) never completes: as in
//    RabbitMQ, the next method frame is then 505 ("expected content body");
//  - a header of another class, or with a non-zero weight, is 505;
//  - a body over the maximum size is consumed, then reported as ChannelError 406, and the
//    assembler is ready for the next command;
//  - an unknown method throws UnknownMethod; a truncated method, or one with bytes left
//    over, is ConnectionError 501 with the method's ids (RabbitMQ's "cannot decode");
//  - reset() forgets a half-assembled command.
#include <doctest/doctest.h>

#include <string>

#include "amqp/command_assembler.h"
#include "amqp/errors.h"
#include "tests/support/amqp_client.h"

using namespace warren::amqp;
using namespace warren::testing;

namespace {

// Frames are parsed from wire bytes so their views behave as they do in the broker.
struct Wire {
  std::string bytes;
  Frame frame() const {
    FrameParser p(0);
    Frame f;
    REQUIRE(p.parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), f) ==
            bytes.size());
    return f;
  }
};

bool feed(CommandAssembler& a, const std::string& bytes, Command& out) {
  Wire w{bytes};
  return a.feed(w.frame(), out);
}

ReplyCode error_code(CommandAssembler& a, const std::string& bytes) {
  Command c;
  try {
    feed(a, bytes, c);
  } catch (const AmqpError& e) {
    return e.code;
  }
  return ReplyCode::kReplySuccess;
}

std::string publish_frame(uint16_t ch = 1, std::string_view exchange = "ex",
                          std::string_view key = "rk") {
  BasicPublish p;
  p.exchange = exchange;
  p.routing_key = key;
  p.mandatory = true;
  return method_frame(ch, p);
}

}  // namespace

TEST_CASE("a method without content is a command at once") {
  CommandAssembler a;
  QueueDeclare q;
  q.queue = "orders";
  q.durable = true;
  Command c;
  REQUIRE(feed(a, method_frame(1, q), c));
  CHECK(c.class_id == QueueDeclare::kClassId);
  CHECK(c.method_id == QueueDeclare::kMethodId);
  CHECK_FALSE(c.has_content);
  REQUIRE(c.method != nullptr);
  REQUIRE(std::holds_alternative<QueueDeclare>(*c.method));
  CHECK(std::get<QueueDeclare>(*c.method).durable);
  CHECK(a.state() == CommandAssembler::State::kMethod);
}

TEST_CASE("publish with header and a body split over several frames") {
  CommandAssembler a;
  Command c;
  BasicProperties props;
  props.flags = BasicProperties::kContentType | BasicProperties::kDeliveryMode;
  props.content_type = "text/plain";
  props.delivery_mode = 2;
  const std::string raw_props = encode_properties(props);

  std::string method = publish_frame();
  CHECK_FALSE(feed(a, method, c));
  CHECK(a.state() == CommandAssembler::State::kHeader);
  // The broker reuses its read buffer: scribble over the method's bytes.
  method.assign(method.size(), '\x55');
  CHECK_FALSE(feed(a, header_frame(1, 11, raw_props), c));
  CHECK(a.state() == CommandAssembler::State::kBody);
  CHECK_FALSE(feed(a, body_frame(1, "hello"), c));
  CHECK_FALSE(feed(a, body_frame(1, " "), c));
  CHECK_FALSE(feed(a, body_frame(1, ""), c));  // empty body frames are harmless
  REQUIRE(feed(a, body_frame(1, "world"), c));
  CHECK(c.has_content);
  CHECK(c.class_id == 60);
  CHECK(c.method_id == 40);
  CHECK(c.body == "hello world");
  CHECK(c.properties == raw_props);
  REQUIRE(std::holds_alternative<BasicPublish>(*c.method));
  const auto& p = std::get<BasicPublish>(*c.method);
  CHECK(p.exchange == "ex");
  CHECK(p.routing_key == "rk");
  CHECK(p.mandatory);
  CHECK(a.state() == CommandAssembler::State::kMethod);

  // And again: state was reset.
  Command c2;
  CHECK_FALSE(feed(a, publish_frame(1, "", "q2"), c2));
  CHECK_FALSE(feed(a, header_frame(1, 2), c2));
  REQUIRE(feed(a, body_frame(1, "ok"), c2));
  CHECK(c2.body == "ok");
  CHECK(c2.properties == std::string("\0\0", 2));
}

TEST_CASE("a zero-size body completes at the header") {
  CommandAssembler a;
  Command c;
  CHECK_FALSE(feed(a, publish_frame(), c));
  REQUIRE(feed(a, header_frame(1, 0), c));
  CHECK(c.has_content);
  CHECK(c.body.empty());
  CHECK(a.state() == CommandAssembler::State::kMethod);
}

TEST_CASE("frames out of order are 505 UNEXPECTED_FRAME") {
  SUBCASE("header while a method is expected") {
    CommandAssembler a;
    CHECK(error_code(a, header_frame(1, 1)) == ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("body while a method is expected") {
    CommandAssembler a;
    CHECK(error_code(a, body_frame(1, "x")) == ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("method while a header is expected") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    CHECK(error_code(a, method_frame(1, BasicQos{})) == ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("body while a header is expected") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    CHECK(error_code(a, body_frame(1, "x")) == ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("method while body is expected") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    feed(a, header_frame(1, 5), c);
    CHECK(error_code(a, publish_frame()) == ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("header while body is expected") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    feed(a, header_frame(1, 5), c);
    CHECK(error_code(a, header_frame(1, 5)) == ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("the error carries the content method's ids") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    try {
      feed(a, body_frame(1, "x"), c);
      FAIL("expected ConnectionError");
    } catch (const ConnectionError& e) {
      CHECK(e.code == ReplyCode::kUnexpectedFrame);
      CHECK(e.class_id == 60);
      CHECK(e.method_id == 40);
    }
  }
}

TEST_CASE("a body longer than announced never completes; the next method is 505") {
  SUBCASE("in one frame") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    feed(a, header_frame(1, 5), c);
    CHECK_FALSE(feed(a, body_frame(1, "123456"), c));
    CHECK(a.state() == CommandAssembler::State::kBody);
    CHECK_FALSE(feed(a, body_frame(1, "7"), c));
    CHECK(error_code(a, publish_frame()) == ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("over several frames") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    feed(a, header_frame(1, 5), c);
    CHECK_FALSE(feed(a, body_frame(1, "123"), c));
    CHECK_FALSE(feed(a, body_frame(1, "456"), c));
    CHECK(error_code(a, method_frame(1, BasicQos{})) == ReplyCode::kUnexpectedFrame);
  }
}

TEST_CASE("a content header must match the method's class and have weight 0") {
  SUBCASE("class mismatch") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    CHECK(error_code(a, header_frame(1, 1, std::string("\0\0", 2), kClassQueue)) ==
          ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("weight") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    CHECK(error_code(a, header_frame(1, 1, std::string("\0\0", 2), kClassBasic, 1)) ==
          ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("truncated header is a decode error") {
    CommandAssembler a;
    Command c;
    feed(a, publish_frame(), c);
    // The frame parser refuses such a frame; the assembler must not over-read either.
    const std::string payload("\x00\x3c\x00\x00\x00", 5);
    Frame f{kFrameHeader, 1, payload};
    CHECK_THROWS_AS(a.feed(f, c), DecodeError);
  }
}

TEST_CASE("a body over the maximum size is consumed, then refused with 406") {
  CommandAssembler a(10);
  Command c;
  CHECK_FALSE(feed(a, publish_frame(), c));
  CHECK_FALSE(feed(a, header_frame(1, 12), c));
  CHECK_FALSE(feed(a, body_frame(1, "123456"), c));
  try {
    feed(a, body_frame(1, "789012"), c);
    FAIL("expected ChannelError");
  } catch (const ChannelError& e) {
    CHECK(e.code == ReplyCode::kPreconditionFailed);
    CHECK(e.class_id == 60);
    CHECK(e.method_id == 40);
  }
  CHECK(a.state() == CommandAssembler::State::kMethod);
  // Exactly the maximum is fine.
  CHECK_FALSE(feed(a, publish_frame(), c));
  CHECK_FALSE(feed(a, header_frame(1, 10), c));
  REQUIRE(feed(a, body_frame(1, "0123456789"), c));
  CHECK(c.body == "0123456789");
  // Oversize content is still checked against its announced size.
  CHECK_FALSE(feed(a, publish_frame(), c));
  CHECK_FALSE(feed(a, header_frame(1, 11), c));
  CHECK_FALSE(feed(a, body_frame(1, "123456789012"), c));
  CHECK(error_code(a, publish_frame()) == ReplyCode::kUnexpectedFrame);
}

TEST_CASE("unknown, truncated and over-long methods") {
  CommandAssembler a;
  Command c;
  Wire unknown{raw_frame(kFrameMethod, 1, std::string("\x00\x3c\x00\x63", 4))};
  CHECK_THROWS_AS(a.feed(unknown.frame(), c), UnknownMethod);

  auto cannot_decode = [&](const std::string& payload, uint16_t cls, uint16_t mid) {
    Wire w{raw_frame(kFrameMethod, 1, payload)};
    try {
      a.feed(w.frame(), c);
      FAIL("expected ConnectionError");
    } catch (const ConnectionError& e) {
      CHECK(e.code == ReplyCode::kFrameError);
      CHECK(e.class_id == cls);
      CHECK(e.method_id == mid);
    }
    CHECK(a.state() == CommandAssembler::State::kMethod);
  };
  cannot_decode(std::string("\x00\x32\x00\x0a\x00", 5), 50, 10);  // queue.declare
  cannot_decode(std::string("\x00\x3c\x00\x28\x00", 5), 60, 40);  // basic.publish
  std::string ack = method_frame(1, BasicAck{}).substr(7);
  ack.pop_back();  // the frame-end octet
  cannot_decode(ack + "x", 60, 80);                             // one byte too many
}

TEST_CASE("reset forgets a half-assembled command") {
  CommandAssembler a;
  Command c;
  feed(a, publish_frame(), c);
  feed(a, header_frame(1, 5), c);
  feed(a, body_frame(1, "12"), c);
  a.reset();
  CHECK(a.state() == CommandAssembler::State::kMethod);
  REQUIRE(feed(a, method_frame(1, BasicQos{}), c));
  CHECK(std::holds_alternative<BasicQos>(*c.method));
}
