// Basic content-header properties (amqp/properties.h).
// Concerns covered:
//  - all 14 properties: flag bits in spec order, wire bytes, decode then encode is exact;
//  - each property alone round-trips (flag word and field position);
//  - with_headers=false skips but still validates the headers table;
//  - flag continuation words: an empty continuation is accepted, flags in it are refused;
//    the reserved bit 1 is refused;
//  - truncated properties and trailing bytes throw DecodeError;
//  - summarize_properties: persistent, priority, expiration, headers and user-id presence.
#include <doctest/doctest.h>

#include <string>

#include "amqp/properties.h"

using namespace warren::amqp;

namespace {

std::string encode(const BasicProperties& p) {
  std::string s;
  Writer w(s);
  p.encode(w);
  return s;
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

BasicProperties all_properties() {
  BasicProperties p;
  p.flags = 0xFFFC;
  p.content_type = "application/json";
  p.content_encoding = "gzip";
  p.headers.set("x-int", int32_t{-1});
  p.headers.set("x-nested", FieldTable{});
  p.headers.set("x-array", FieldArray{FieldValue("a"), FieldValue(int64_t{1})});
  p.delivery_mode = 2;
  p.priority = 9;
  p.correlation_id = "corr";
  p.reply_to = "amq.rabbitmq.reply-to";
  p.expiration = "60000";
  p.message_id = "msg-1";
  p.timestamp = 1700000000;
  p.type = "order.created";
  p.user_id = "guest";
  p.app_id = "unit";
  p.cluster_id = "c1";
  return p;
}

void check_equal(const BasicProperties& a, const BasicProperties& b) {
  CHECK(a.flags == b.flags);
  CHECK(a.content_type == b.content_type);
  CHECK(a.content_encoding == b.content_encoding);
  CHECK(a.headers == b.headers);
  CHECK(a.delivery_mode == b.delivery_mode);
  CHECK(a.priority == b.priority);
  CHECK(a.correlation_id == b.correlation_id);
  CHECK(a.reply_to == b.reply_to);
  CHECK(a.expiration == b.expiration);
  CHECK(a.message_id == b.message_id);
  CHECK(a.timestamp == b.timestamp);
  CHECK(a.type == b.type);
  CHECK(a.user_id == b.user_id);
  CHECK(a.app_id == b.app_id);
  CHECK(a.cluster_id == b.cluster_id);
}

}  // namespace

TEST_CASE("all 14 properties round-trip") {
  const BasicProperties p = all_properties();
  const std::string bytes = encode(p);
  CHECK(hex(bytes.substr(0, 2)) == "fffc");
  const BasicProperties d = BasicProperties::decode(bytes);
  check_equal(d, p);
  CHECK(encode(d) == bytes);
  for (auto f : {BasicProperties::kContentType, BasicProperties::kContentEncoding,
                 BasicProperties::kHeaders, BasicProperties::kDeliveryMode,
                 BasicProperties::kPriority, BasicProperties::kCorrelationId,
                 BasicProperties::kReplyTo, BasicProperties::kExpiration,
                 BasicProperties::kMessageId, BasicProperties::kTimestamp, BasicProperties::kType,
                 BasicProperties::kUserId, BasicProperties::kAppId, BasicProperties::kClusterId}) {
    CHECK(d.has(f));
  }
}

TEST_CASE("property wire bytes in spec order") {
  BasicProperties p;
  p.flags = BasicProperties::kContentType | BasicProperties::kDeliveryMode |
            BasicProperties::kTimestamp;
  p.content_type = "text/plain";
  p.delivery_mode = 2;
  p.timestamp = 0x0102030405060708ull;
  CHECK(hex(encode(p)) == "9040" "0a" + hex("text/plain") + "02" "0102030405060708");
  CHECK(hex(encode(BasicProperties{})) == "0000");
}

TEST_CASE("each property alone round-trips") {
  const BasicProperties full = all_properties();
  for (int bit = 2; bit < 16; ++bit) {
    INFO(bit);
    BasicProperties p = full;
    p.flags = static_cast<uint16_t>(1u << bit);
    const std::string bytes = encode(p);
    BasicProperties d = BasicProperties::decode(bytes);
    CHECK(d.flags == p.flags);
    CHECK(encode(d) == bytes);
    // Fields whose flag is clear are not on the wire and decode to defaults.
    if (!d.has(BasicProperties::kContentType)) CHECK(d.content_type.empty());
    if (!d.has(BasicProperties::kHeaders)) CHECK(d.headers.empty());
    if (!d.has(BasicProperties::kTimestamp)) CHECK(d.timestamp == 0);
  }
}

TEST_CASE("headers are skipped but validated when not wanted") {
  BasicProperties p;
  p.flags = BasicProperties::kHeaders | BasicProperties::kPriority;
  p.headers.set("k", "v");
  p.priority = 3;
  const std::string bytes = encode(p);
  BasicProperties d = BasicProperties::decode(bytes, /*with_headers=*/false);
  CHECK(d.headers.empty());
  CHECK(d.priority == 3);

  // An unknown type letter inside the headers is still an error.
  std::string bad = bytes;
  const size_t at = bad.find('S');
  REQUIRE(at != std::string::npos);
  bad[at] = 'Q';
  CHECK_THROWS_AS(BasicProperties::decode(bad, false), DecodeError);
  CHECK_THROWS_AS(BasicProperties::decode(bad, true), DecodeError);
  CHECK_THROWS_AS(summarize_properties(bad), DecodeError);
}

TEST_CASE("flag words: continuation and reserved bits") {
  // content-type with a continuation bit, then an empty continuation word.
  const std::string cont = std::string("\x80\x01\x00\x00\x01t", 6);
  BasicProperties d = BasicProperties::decode(cont);
  CHECK(d.content_type == "t");
  // Re-encoding drops the continuation.
  CHECK(hex(encode(d)) == "8000" "0174");
  // A flag in a continuation word names a property basic does not have.
  CHECK_THROWS_AS(BasicProperties::decode(std::string("\x00\x01\x00\x02", 4)), DecodeError);
  CHECK_THROWS_AS(BasicProperties::decode(std::string("\x00\x01\x80\x00", 4)), DecodeError);
  // A continuation bit without the word.
  CHECK_THROWS_AS(BasicProperties::decode(std::string("\x00\x01", 2)), DecodeError);
  // Bit 1 is not a property.
  CHECK_THROWS_AS(BasicProperties::decode(std::string("\x00\x02", 2)), DecodeError);
}

TEST_CASE("truncated properties and trailing bytes are refused") {
  const std::string bytes = encode(all_properties());
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO(n);
    CHECK_THROWS_AS(BasicProperties::decode(bytes.substr(0, n)), DecodeError);
    CHECK_THROWS_AS(summarize_properties(bytes.substr(0, n)), DecodeError);
  }
  CHECK_THROWS_AS(BasicProperties::decode(bytes + "x"), DecodeError);
  CHECK_THROWS_AS(BasicProperties::decode(std::string("\x00\x00\x00", 3)), DecodeError);
}

TEST_CASE("summarize_properties") {
  SUBCASE("empty") {
    PropertySummary s = summarize_properties(std::string("\0\0", 2));
    CHECK_FALSE(s.persistent);
    CHECK_FALSE(s.has_priority);
    CHECK_FALSE(s.has_expiration);
    CHECK_FALSE(s.has_headers);
    CHECK_FALSE(s.has_user_id);
  }
  SUBCASE("all") {
    PropertySummary s = summarize_properties(encode(all_properties()));
    CHECK(s.persistent);
    CHECK(s.has_priority);
    CHECK(s.priority == 9);
    CHECK(s.has_expiration);
    CHECK(s.has_headers);
    CHECK(s.has_user_id);
  }
  SUBCASE("delivery mode 1 is transient") {
    BasicProperties p;
    p.flags = BasicProperties::kDeliveryMode;
    p.delivery_mode = 1;
    CHECK_FALSE(summarize_properties(encode(p)).persistent);
  }
}
