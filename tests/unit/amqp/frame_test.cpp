// Frame layer (amqp/frame.h) and protocol errors (amqp/errors.h).
// Concerns covered:
//  - FrameParser says "need more" (0) until a whole frame is there, at every split point;
//    consumes exactly one frame; parses back-to-back frames; views point into the input;
//  - a payload over frame_max (detected from the header alone), a bad frame-end octet, an
//    unknown frame type, and method/header/heartbeat payloads of impossible size are
//    ConnectionError 501 FRAME_ERROR, checked in RabbitMQ's order; frame_max 0 is unlimited;
//  - the frame writers produce the exact bytes (method, content header, body header,
//    heartbeat);
//  - AmqpError::reply_text is "NAME - text" (just "NAME" without text), and over 255 bytes
//    is cut to 252 plus "..." as RabbitMQ's rabbit_binary_generator does.
#include <doctest/doctest.h>

#include <string>

#include "amqp/errors.h"
#include "amqp/frame.h"
#include "tests/support/amqp_client.h"

using namespace warren::amqp;
using warren::testing::raw_frame;

namespace {

size_t parse(const FrameParser& p, const std::string& s, Frame& f) {
  return p.parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), f);
}

ReplyCode parse_error_code(const FrameParser& p, const std::string& s) {
  Frame f;
  try {
    parse(p, s, f);
  } catch (const ConnectionError& e) {
    return e.code;
  }
  return ReplyCode::kReplySuccess;
}

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

}  // namespace

TEST_CASE("FrameParser needs more bytes until the frame is complete") {
  FrameParser p(4096);
  const std::string frame = raw_frame(kFrameMethod, 7, "payload!");
  for (size_t n = 0; n < frame.size(); ++n) {
    INFO(n);
    Frame f;
    CHECK(parse(p, frame.substr(0, n), f) == 0);
  }
  Frame f;
  const std::string two = frame + raw_frame(kFrameBody, 65535, "xy") + "junk";
  REQUIRE(parse(p, two, f) == frame.size());
  CHECK(f.type == kFrameMethod);
  CHECK(f.channel == 7);
  CHECK(f.payload == "payload!");
  CHECK(f.payload.data() == two.data() + 7);  // a view, not a copy

  const std::string rest = two.substr(frame.size());
  REQUIRE(parse(p, rest, f) == 10);
  CHECK(f.type == kFrameBody);
  CHECK(f.channel == 65535);
  CHECK(f.payload == "xy");
}

TEST_CASE("FrameParser accepts every frame type at its smallest size") {
  FrameParser p(4096);
  const std::pair<uint8_t, size_t> smallest[] = {
      {kFrameMethod, 4}, {kFrameHeader, 12}, {kFrameBody, 0}, {kFrameHeartbeat, 0}};
  for (auto [t, n] : smallest) {
    Frame f;
    CHECK(parse(p, raw_frame(t, 0, std::string(n, '\0')), f) == 8 + n);
    CHECK(f.type == t);
    CHECK(f.payload.size() == n);
  }
}

TEST_CASE("FrameParser refuses malformed frames with 501") {
  FrameParser p(4096);
  SUBCASE("bad frame end") {
    CHECK(parse_error_code(p, raw_frame(kFrameMethod, 1, "abc", 0x00)) == ReplyCode::kFrameError);
    CHECK(parse_error_code(p, raw_frame(kFrameBody, 1, "", 0xCD)) == ReplyCode::kFrameError);
  }
  SUBCASE("payload over frame_max, detected from the header alone") {
    // RabbitMQ lets a payload be as large as frame_max itself.
    Frame f;
    CHECK(parse(p, raw_frame(kFrameBody, 1, std::string(4096, 'x')), f) == 4104);
    CHECK(parse_error_code(p, raw_frame(kFrameBody, 1, std::string(4097, 'x'))) ==
          ReplyCode::kFrameError);
    // Only the 7-byte header of a 4 GiB frame: refused at once, no buffering.
    CHECK(parse_error_code(p, std::string("\x03\x00\x01\xff\xff\xff\xff", 7)) ==
          ReplyCode::kFrameError);
    // Even with an unknown type: size is checked first.
    CHECK(parse_error_code(p, std::string("\x09\x00\x01\x00\x01\x00\x00", 7)) ==
          ReplyCode::kFrameError);
  }
  SUBCASE("unknown frame type, once the frame is complete") {
    for (int t : {0, 4, 5, 7, 9, 65, 206, 255}) {
      INFO(t);
      std::string header(7, '\0');
      header[0] = static_cast<char>(t);
      Frame f;
      CHECK(parse(p, header, f) == 0);  // the end octet comes first
      CHECK(parse_error_code(p, raw_frame(static_cast<uint8_t>(t), 0, "")) ==
            ReplyCode::kFrameError);
    }
  }
  SUBCASE("a bad end octet is reported before an unknown type") {
    CHECK(parse_error_code(p, raw_frame(9, 0, "", 0x00)) == ReplyCode::kFrameError);
  }
  SUBCASE("payloads too short for their frame type, or a heartbeat with a payload") {
    CHECK(parse_error_code(p, raw_frame(kFrameMethod, 1, "abc")) == ReplyCode::kFrameError);
    CHECK(parse_error_code(p, raw_frame(kFrameHeader, 1, std::string(11, '\0'))) ==
          ReplyCode::kFrameError);
    CHECK(parse_error_code(p, raw_frame(kFrameHeartbeat, 0, "x")) == ReplyCode::kFrameError);
  }
  SUBCASE("set_max_frame takes effect") {
    p.set_max_frame(131072);
    CHECK(p.max_frame() == 131072);
    Frame f;
    CHECK(parse(p, raw_frame(kFrameBody, 1, std::string(5000, 'x')), f) == 5008);
  }
}

TEST_CASE("FrameParser with frame_max 0 has no limit") {
  FrameParser p(0);
  Frame f;
  CHECK(parse(p, raw_frame(kFrameBody, 1, std::string(200000, 'x')), f) == 200008);
}

TEST_CASE("frame writers") {
  std::string out;
  write_heartbeat_frame(out);
  CHECK(hex(out) == "0800000000" "0000" "ce");

  out.clear();
  write_header_frame(out, 3, 5, std::string("\x90\x00\x01t\x02", 5));
  CHECK(hex(out) == "02" "0003" "00000011" "003c" "0000" "0000000000000005" "9000017402" "ce");

  out.clear();
  write_body_frame_header(out, 3, 0x01020304);
  CHECK(hex(out) == "03" "0003" "01020304");

  out.clear();
  ChannelOpenOk ok;
  write_method_frame(out, 9, ok);
  CHECK(hex(out) == "01" "0009" "00000008" "0014000b" "00000000" "ce");

  out.clear();
  BasicQosOk qos;
  write_method_frame(out, 1, qos);
  CHECK(hex(out) == "01" "0001" "00000004" "003c000b" "ce");
}

TEST_CASE("reply_text: name, separator, and RabbitMQ's 255-byte cut") {
  ChannelError e(ReplyCode::kNotFound, "no queue 'q' in vhost '/'");
  CHECK(e.reply_text() == "NOT_FOUND - no queue 'q' in vhost '/'");
  CHECK(e.class_id == 0);
  CHECK(ConnectionError(ReplyCode::kInternalError, "").reply_text() == "INTERNAL_ERROR");

  ConnectionError fits(ReplyCode::kNotAllowed, std::string(255 - 14, 'a'));
  CHECK(fits.reply_text().size() == 255);
  CHECK(fits.reply_text().substr(0, 14) == "NOT_ALLOWED - ");

  ConnectionError longer(ReplyCode::kNotAllowed, std::string(300, 'b'), 10, 40);
  const std::string t = longer.reply_text();
  CHECK(t.size() == 255);
  CHECK(t.substr(0, 14) == "NOT_ALLOWED - ");
  CHECK(t.substr(252) == "...");
  CHECK(t.substr(14, 238) == std::string(238, 'b'));
  CHECK(longer.class_id == 10);
  CHECK(longer.method_id == 40);
}
