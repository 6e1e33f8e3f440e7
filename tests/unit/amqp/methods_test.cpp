// Generated method codec (amqp/methods.h).
// Concerns covered:
//  - every alternative of amqp::Method round-trips: encode -> decode -> encode gives the same
//    bytes and equal fields, with every field set to a non-default value and every
//    combination of its bit fields (bit packing into shared octets);
//  - decode consumes exactly the encoded bytes, and every truncated prefix throws
//    DecodeError (never reads past the payload);
//  - method_known / method_has_content / method_name / method_class_id / method_method_id
//    agree with each struct's constants; unknown ids throw UnknownMethod;
//  - hand-checked wire bytes for a few methods (bit order, field order);
//  - ReplyCode: hard/soft classification and RabbitMQ's names, including 312 NO_ROUTE.
#include <doctest/doctest.h>

#include <boost/pfr.hpp>
#include <deque>
#include <string>
#include <type_traits>
#include <variant>

#include "amqp/methods.h"

using namespace warren::amqp;

namespace {

FieldTable rich_table() {
  FieldTable nested;
  nested.set("inner-long", int64_t{-42});
  nested.set("inner-array", FieldArray{FieldValue(int32_t{1}), FieldValue("two")});
  FieldTable t;
  t.set("bool", true);
  t.set("int8", int8_t{-7});
  t.set("uint8", uint8_t{200});
  t.set("int16", int16_t{-300});
  t.set("uint16", uint16_t{60000});
  t.set("int32", int32_t{-70000});
  t.set("uint32", uint32_t{4000000000u});
  t.set("int64", int64_t{-5000000000LL});
  t.set("float", 1.5f);
  t.set("double", -2.25);
  t.set("decimal", Decimal{2, 12345});
  t.set("string", "hello");
  t.set("array", FieldArray{FieldValue(true), FieldValue(nested), FieldValue(Void{})});
  t.set("timestamp", Timestamp{1700000000});
  t.set("table", nested);
  t.set("void", Void{});
  t.set("bytes", ByteArray{std::string("\x00\xff\x01", 3)});
  return t;
}

template <typename T>
size_t count_bits(const T& m) {
  size_t n = 0;
  boost::pfr::for_each_field(m, [&n](const auto& f) {
    if constexpr (std::is_same_v<std::decay_t<decltype(f)>, bool>) ++n;
  });
  return n;
}

// Sets every field of `m` to a value derived from its position; bit fields follow `bits`.
// `strings` owns the text the string_view fields point at.
template <typename T>
void fill(T& m, uint32_t bits, int seed, std::deque<std::string>& strings) {
  size_t bit = 0;
  boost::pfr::for_each_field(m, [&](auto& f, std::size_t i) {
    using F = std::decay_t<decltype(f)>;
    const auto k = static_cast<unsigned>(i) + static_cast<unsigned>(seed);
    if constexpr (std::is_same_v<F, bool>) {
      f = ((bits >> bit++) & 1) != 0;
    } else if constexpr (std::is_same_v<F, uint8_t>) {
      f = static_cast<uint8_t>(0xA0 + k);
    } else if constexpr (std::is_same_v<F, uint16_t>) {
      f = static_cast<uint16_t>(0xB100 + k);
    } else if constexpr (std::is_same_v<F, uint32_t>) {
      f = 0xC2000000u + k;
    } else if constexpr (std::is_same_v<F, uint64_t>) {
      f = 0xD300000000000000ull + k;
    } else if constexpr (std::is_same_v<F, std::string_view>) {
      // Binary-safe content: a NUL and a high byte, at most 255 bytes (shortstr limit).
      strings.push_back("field-" + std::to_string(k) + std::string("\0\xfe", 2));
      f = strings.back();
    } else if constexpr (std::is_same_v<F, FieldTable>) {
      f = rich_table();
      f.set("seed", int32_t{seed});
    } else {
      static_assert(sizeof(F) == 0, "a field type the test does not know");
    }
  });
}

std::string encode(const Method& m) {
  std::string s;
  Writer w(s);
  encode_method(m, w);
  return s;
}

template <typename T>
void check_round_trip(const T& m) {
  const std::string bytes = encode(Method(m));
  Reader r(bytes);
  Method decoded = decode_method(r);
  CHECK(r.at_end());
  REQUIRE(std::holds_alternative<T>(decoded));
  const T& d = std::get<T>(decoded);
  CHECK(boost::pfr::structure_tie(d) == boost::pfr::structure_tie(m));
  CHECK(encode(decoded) == bytes);
  CHECK(method_class_id(decoded) == T::kClassId);
  CHECK(method_method_id(decoded) == T::kMethodId);
}

template <typename T>
void check_method() {
  INFO(T::kName);
  CHECK(method_known(T::kClassId, T::kMethodId));
  CHECK(method_has_content(T::kClassId, T::kMethodId) == T::kHasContent);
  CHECK(method_name(T::kClassId, T::kMethodId) == T::kName);

  // Defaults (empty strings and tables, zero numbers).
  check_round_trip(T{});

  // Non-default values, with every combination of the bit fields.
  std::deque<std::string> strings;
  const size_t nbits = count_bits(T{});
  REQUIRE(nbits <= 8);
  for (uint32_t bits = 0; bits < (1u << nbits); ++bits) {
    T m{};
    fill(m, bits, static_cast<int>(bits), strings);
    check_round_trip(m);
  }

  // Every proper prefix is a truncated payload.
  T full{};
  fill(full, (1u << nbits) - 1, 1, strings);
  const std::string bytes = encode(Method(full));
  for (size_t n = 0; n < bytes.size(); ++n) {
    Reader r(bytes.data(), n);
    CHECK_THROWS_AS(decode_method(r), DecodeError);
  }
}

template <size_t... I>
void check_all(std::index_sequence<I...>) {
  // Alternative 0 is std::monostate.
  (check_method<std::variant_alternative_t<I + 1, Method>>(), ...);
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

TEST_CASE("every generated method round-trips with non-default fields") {
  // 0-9-1 with RabbitMQ's extensions: at least 64 methods (plus std::monostate).
  CHECK(std::variant_size_v<Method> >= 65);
  check_all(std::make_index_sequence<std::variant_size_v<Method> - 1>{});
}

TEST_CASE("long strings longer than a shortstr survive; shortstr of 255 bytes survives") {
  const std::string big(70000, 'x');
  ConnectionSecure s;
  s.challenge = big;
  check_round_trip(s);

  const std::string max(255, 'q');
  QueueDeclare q;
  q.queue = max;
  check_round_trip(q);
}

TEST_CASE("method wire bytes: field order and bit packing") {
  SUBCASE("queue.declare packs five bits into one octet, lowest bit first") {
    QueueDeclare q;
    q.reserved_1 = 0;
    q.queue = "q";
    q.passive = true;
    q.durable = false;
    q.exclusive = true;
    q.auto_delete = false;
    q.no_wait = true;
    CHECK(hex(encode(q)) == "0032000a" "0000" "0171" "15" "00000000");
  }
  SUBCASE("basic.publish: mandatory is bit 0, immediate bit 1") {
    BasicPublish p;
    p.exchange = "x";
    p.routing_key = "rk";
    p.mandatory = false;
    p.immediate = true;
    CHECK(hex(encode(p)) == "003c0028" "0000" "0178" "02726b" "02");
  }
  SUBCASE("connection.tune") {
    ConnectionTune t;
    t.channel_max = 2047;
    t.frame_max = 131072;
    t.heartbeat = 60;
    CHECK(hex(encode(t)) == "000a001e" "07ff" "00020000" "003c");
  }
  SUBCASE("basic.nack: delivery tag then multiple (bit 0) and requeue (bit 1)") {
    BasicNack n;
    n.delivery_tag = 0x0102030405060708ull;
    n.multiple = true;
    n.requeue = true;
    CHECK(hex(encode(n)) == "003c0078" "0102030405060708" "03");
  }
  SUBCASE("connection.blocked / update-secret come from spec-extensions.xml") {
    ConnectionBlocked b;
    b.reason = "low memory";
    CHECK(hex(encode(b)) == "000a003c" "0a" + hex("low memory"));
    ConnectionUpdateSecret u;
    u.new_secret = "s";
    u.reason = "r";
    CHECK(hex(encode(u)) == "000a0046" "0000000173" "0172");
    CHECK(hex(encode(ConnectionUpdateSecretOk{})) == "000a0047");
    CHECK(hex(encode(ConnectionUnblocked{})) == "000a003d");
  }
}

TEST_CASE("unknown methods and short payloads") {
  CHECK_FALSE(method_known(60, 999));
  CHECK_FALSE(method_known(0, 0));
  CHECK_FALSE(method_has_content(60, 999));
  CHECK(method_name(99, 1) == "unknown");
  CHECK(method_has_content(BasicDeliver::kClassId, BasicDeliver::kMethodId));
  CHECK(method_has_content(BasicGetOk::kClassId, BasicGetOk::kMethodId));
  CHECK(method_has_content(BasicReturn::kClassId, BasicReturn::kMethodId));
  CHECK_FALSE(method_has_content(BasicGet::kClassId, BasicGet::kMethodId));

  const std::string unknown("\x00\x3c\x03\xe7", 4);
  Reader r(unknown);
  try {
    decode_method(r);
    FAIL("expected UnknownMethod");
  } catch (const UnknownMethod& e) {
    CHECK(e.class_id == 60);
    CHECK(e.method_id == 999);
  }
  const std::string three("\x00\x3c\x00", 3);
  Reader r3(three);
  CHECK_THROWS_AS(decode_method(r3), DecodeError);

  CHECK(method_class_id(Method{}) == 0);
  CHECK(method_method_id(Method{}) == 0);
  std::string out;
  Writer w(out);
  encode_method(Method{}, w);
  CHECK(out.empty());
}

TEST_CASE("reply codes: hard versus soft, and RabbitMQ's names") {
  CHECK_FALSE(is_hard_error(ReplyCode::kReplySuccess));
  CHECK_FALSE(is_hard_error(ReplyCode::kContentTooLarge));
  CHECK_FALSE(is_hard_error(ReplyCode::kNoRoute));
  CHECK_FALSE(is_hard_error(ReplyCode::kNoConsumers));
  CHECK_FALSE(is_hard_error(ReplyCode::kAccessRefused));
  CHECK_FALSE(is_hard_error(ReplyCode::kNotFound));
  CHECK_FALSE(is_hard_error(ReplyCode::kResourceLocked));
  CHECK_FALSE(is_hard_error(ReplyCode::kPreconditionFailed));
  for (ReplyCode c : {ReplyCode::kConnectionForced, ReplyCode::kInvalidPath, ReplyCode::kFrameError,
                      ReplyCode::kSyntaxError, ReplyCode::kCommandInvalid, ReplyCode::kChannelError,
                      ReplyCode::kUnexpectedFrame, ReplyCode::kResourceError, ReplyCode::kNotAllowed,
                      ReplyCode::kNotImplemented, ReplyCode::kInternalError}) {
    CHECK(is_hard_error(c));
  }
  CHECK(static_cast<int>(ReplyCode::kNoRoute) == 312);
  CHECK(reply_code_name(ReplyCode::kNoRoute) == "NO_ROUTE");
  CHECK(reply_code_name(ReplyCode::kNotFound) == "NOT_FOUND");
  CHECK(reply_code_name(ReplyCode::kPreconditionFailed) == "PRECONDITION_FAILED");
  CHECK(reply_code_name(ReplyCode::kUnexpectedFrame) == "UNEXPECTED_FRAME");
  CHECK(reply_code_name(ReplyCode::kNotAllowed) == "NOT_ALLOWED");
  CHECK(reply_code_name(ReplyCode::kReplySuccess) == "REPLY_SUCCESS");
}
