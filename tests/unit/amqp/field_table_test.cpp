// Field tables and arrays (amqp/field_table.h).
// Concerns covered:
//  - every type letter t b B s u I i l f d D S A T F V x decodes to its own alternative and
//    re-encodes byte for byte, with RabbitMQ's meanings (s = int16 signed, u = uint16,
//    I = int32 signed, i = uint32 unsigned, l = int64 signed, x = byte array);
//  - hand-written wire bytes for each type; nested tables in arrays in tables;
//  - duplicate keys and key order are preserved (tables re-encode exactly);
//  - NaN floats compare equal to themselves (bitwise), so round trips stay checkable;
//  - malformed input throws DecodeError from both decode_table and skip_table: unknown type
//    letter, truncated value, string or nested length beyond the payload, key beyond the
//    table, table length beyond the input, and nesting too deep (no stack overflow);
//  - skip_table consumes exactly what decode_table consumes;
//  - accessors: find/set/erase, as_int over every integer type, as_string, as_bool,
//    type_char, value_to_text.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "amqp/field_table.h"

using namespace warren::amqp;

namespace {

std::string bytes_of(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// A table's wire form from its entries' bytes (adds the u32 length).
std::string table_bytes(const std::string& entries) {
  std::string s;
  Writer w(s);
  w.u32(static_cast<uint32_t>(entries.size()));
  w.raw(entries);
  return s;
}

std::string entry(const std::string& key, const std::string& value) {
  std::string s;
  Writer w(s);
  w.shortstr(key);
  w.raw(value);
  return s;
}

FieldTable decode(const std::string& bytes) {
  Reader r(bytes);
  FieldTable t = decode_table(r);
  CHECK(r.at_end());
  return t;
}

std::string encode(const FieldTable& t) {
  std::string s;
  Writer w(s);
  encode_table(w, t);
  return s;
}

void check_malformed(const std::string& bytes) {
  {
    Reader r(bytes);
    CHECK_THROWS_AS(decode_table(r), DecodeError);
  }
  {
    Reader r(bytes);
    CHECK_THROWS_AS(skip_table(r), DecodeError);
  }
}

// Every value type once, with nested containers.
FieldTable every_type() {
  FieldTable inner;
  inner.set("deep", FieldArray{FieldValue(int16_t{-1}), FieldValue(FieldTable{})});
  FieldTable t;
  t.set("t", true);
  t.set("f-bool", false);
  t.set("b", int8_t{-128});
  t.set("B", uint8_t{255});
  t.set("s", int16_t{-32768});
  t.set("u", uint16_t{65535});
  t.set("I", int32_t{std::numeric_limits<int32_t>::min()});
  t.set("i", uint32_t{0xFFFFFFFFu});
  t.set("l", int64_t{std::numeric_limits<int64_t>::min()});
  t.set("f", 3.25f);
  t.set("d", -1e300);
  t.set("D", Decimal{5, 0xFFFFFFFFu});
  t.set("S", std::string("\x00utf8 \xc3\xa9", 8));
  t.set("A", FieldArray{FieldValue(inner), FieldValue(FieldArray{}), FieldValue(Void{}),
                        FieldValue("x")});
  t.set("T", Timestamp{0xFFFFFFFFFFFFFFFFull});
  t.set("F", inner);
  t.set("V", Void{});
  t.set("x", ByteArray{std::string("\x00\x01\x02", 3)});
  return t;
}

}  // namespace

TEST_CASE("each type letter: wire bytes, alternative and RabbitMQ's signedness") {
  struct Case {
    const char* name;
    std::string value;  // type letter and value bytes
    char type;
  };
  const Case cases[] = {
      {"t", bytes_of({'t', 1}), 't'},
      {"b", bytes_of({'b', 0xFF}), 'b'},
      {"B", bytes_of({'B', 0xFF}), 'B'},
      {"s", bytes_of({'s', 0xFF, 0xFE}), 's'},
      {"u", bytes_of({'u', 0xFF, 0xFE}), 'u'},
      {"I", bytes_of({'I', 0xFF, 0xFF, 0xFF, 0xFE}), 'I'},
      {"i", bytes_of({'i', 0xFF, 0xFF, 0xFF, 0xFE}), 'i'},
      {"l", bytes_of({'l', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFD}), 'l'},
      {"f", bytes_of({'f', 0x3F, 0xC0, 0, 0}), 'f'},
      {"d", bytes_of({'d', 0xC0, 0x02, 0, 0, 0, 0, 0, 0}), 'd'},
      {"D", bytes_of({'D', 2, 0, 0, 0x30, 0x39}), 'D'},
      {"S", bytes_of({'S', 0, 0, 0, 2, 'h', 'i'}), 'S'},
      {"A", bytes_of({'A', 0, 0, 0, 5, 'I', 0, 0, 0, 7}), 'A'},
      {"T", bytes_of({'T', 0, 0, 0, 0, 0x65, 0x53, 0xF1, 0x00}), 'T'},
      {"F", bytes_of({'F', 0, 0, 0, 3, 1, 'k', 'V'}), 'F'},
      {"V", bytes_of({'V'}), 'V'},
      {"x", bytes_of({'x', 0, 0, 0, 3, 0, 1, 2}), 'x'},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const std::string bytes = table_bytes(entry("key", c.value));
    FieldTable t = decode(bytes);
    REQUIRE(t.entries.size() == 1);
    CHECK(t.entries[0].first == "key");
    CHECK(t.entries[0].second.type_char() == c.type);
    CHECK(encode(t) == bytes);
  }

  // The values themselves.
  auto value = [](const std::string& wire) {
    return decode(table_bytes(entry("k", wire))).entries.at(0).second;
  };
  CHECK(std::get<bool>(value(bytes_of({'t', 1})).v) == true);
  CHECK(std::get<bool>(value(bytes_of({'t', 0})).v) == false);
  CHECK(std::get<int8_t>(value(bytes_of({'b', 0xFF})).v) == -1);
  CHECK(std::get<uint8_t>(value(bytes_of({'B', 0xFF})).v) == 255);
  CHECK(std::get<int16_t>(value(bytes_of({'s', 0xFF, 0xFE})).v) == -2);  // not unsigned
  CHECK(std::get<uint16_t>(value(bytes_of({'u', 0xFF, 0xFE})).v) == 65534);
  CHECK(std::get<int32_t>(value(bytes_of({'I', 0xFF, 0xFF, 0xFF, 0xFE})).v) == -2);
  CHECK(std::get<uint32_t>(value(bytes_of({'i', 0xFF, 0xFF, 0xFF, 0xFE})).v) == 4294967294u);
  CHECK(std::get<int64_t>(value(bytes_of({'l', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFD})).v) ==
        -3);
  CHECK(std::get<float>(value(bytes_of({'f', 0x3F, 0xC0, 0, 0})).v) == 1.5f);
  CHECK(std::get<double>(value(bytes_of({'d', 0xC0, 0x02, 0, 0, 0, 0, 0, 0})).v) == -2.25);
  CHECK(std::get<Decimal>(value(bytes_of({'D', 2, 0, 0, 0x30, 0x39})).v) == Decimal{2, 12345});
  CHECK(std::get<LongString>(value(bytes_of({'S', 0, 0, 0, 2, 'h', 'i'})).v).value == "hi");
  CHECK(std::get<Timestamp>(value(bytes_of({'T', 0, 0, 0, 0, 0x65, 0x53, 0xF1, 0x00})).v).value ==
        1700000000u);
  CHECK(std::get<ByteArray>(value(bytes_of({'x', 0, 0, 0, 3, 0, 1, 2})).v).value ==
        std::string("\x00\x01\x02", 3));
  CHECK(std::holds_alternative<Void>(value(bytes_of({'V'})).v));
  const FieldValue arr = value(bytes_of({'A', 0, 0, 0, 9, 'I', 0, 0, 0, 7, 's', 0xFF, 0xFF, 'V'}));
  REQUIRE(arr.as_array() != nullptr);
  REQUIRE(arr.as_array()->size() == 3);
  CHECK(std::get<int32_t>(arr.as_array()->at(0).v) == 7);
  CHECK(std::get<int16_t>(arr.as_array()->at(1).v) == -1);
  CHECK(std::holds_alternative<Void>(arr.as_array()->at(2).v));
  const FieldValue tbl = value(bytes_of({'F', 0, 0, 0, 3, 1, 'k', 'V'}));
  REQUIRE(tbl.as_table() != nullptr);
  CHECK(tbl.as_table()->find("k") != nullptr);
}

TEST_CASE("'L' (py-amqp's signed 64-bit integer) decodes, counts as an integer, re-encodes") {
  const std::string bytes =
      table_bytes(entry("k", bytes_of({'L', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE})));
  FieldTable t = decode(bytes);
  const FieldValue* v = t.find("k");
  REQUIRE(v != nullptr);
  CHECK(v->type_char() == 'L');
  CHECK(v->as_int() == -2);
  CHECK(encode(t) == bytes);
  Reader r(bytes);
  skip_table(r);
  CHECK(r.at_end());
  check_malformed(table_bytes(entry("k", bytes_of({'L', 0, 0, 0}))));
}

TEST_CASE("a 't' octet other than 0 or 1 reads as true, as RabbitMQ does") {
  FieldTable t = decode(table_bytes(entry("k", bytes_of({'t', 2}))));
  CHECK(t.find("k")->as_bool() == true);
}

TEST_CASE("every type, nested, round-trips both ways") {
  const FieldTable t = every_type();
  const std::string bytes = encode(t);
  const FieldTable back = decode(bytes);
  CHECK(back == t);
  CHECK(encode(back) == bytes);

  Reader r(bytes);
  skip_table(r);
  CHECK(r.at_end());

  // Arrays through encode_value/decode_value.
  std::string vbytes;
  Writer w(vbytes);
  encode_value(w, FieldValue(FieldArray{FieldValue(t), FieldValue(t)}));
  Reader vr(vbytes);
  FieldValue v = decode_value(vr);
  CHECK(vr.at_end());
  REQUIRE(v.as_array() != nullptr);
  CHECK(v.as_array()->size() == 2);
  CHECK(v.as_array()->at(1) == FieldValue(t));
}

TEST_CASE("empty table and empty array") {
  CHECK(encode(FieldTable{}) == bytes_of({0, 0, 0, 0}));
  CHECK(decode(bytes_of({0, 0, 0, 0})).empty());
  FieldTable t;
  t.set("a", FieldArray{});
  CHECK(encode(t) == table_bytes(entry("a", bytes_of({'A', 0, 0, 0, 0}))));
}

TEST_CASE("duplicate keys and order are kept so tables re-encode exactly") {
  const std::string bytes = table_bytes(entry("z", bytes_of({'B', 1})) + entry("a", bytes_of({'B', 2})) +
                                        entry("z", bytes_of({'B', 3})));
  FieldTable t = decode(bytes);
  REQUIRE(t.entries.size() == 3);
  CHECK(t.entries[0].first == "z");
  CHECK(t.entries[1].first == "a");
  CHECK(encode(t) == bytes);
  // find returns the first entry of a key.
  CHECK(std::get<uint8_t>(t.find("z")->v) == 1);
}

TEST_CASE("NaN round-trips and compares equal bitwise") {
  FieldTable t;
  t.set("nan", std::numeric_limits<double>::quiet_NaN());
  t.set("fnan", std::numeric_limits<float>::quiet_NaN());
  t.set("negzero", -0.0);
  const FieldTable back = decode(encode(t));
  CHECK(back == t);
  // +0.0 and -0.0 differ bitwise.
  FieldTable pz;
  pz.set("negzero", 0.0);
  pz.set("nan", std::numeric_limits<double>::quiet_NaN());
  pz.set("fnan", std::numeric_limits<float>::quiet_NaN());
  CHECK_FALSE(pz == t);
}

TEST_CASE("malformed tables throw DecodeError") {
  SUBCASE("unknown type letter") {
    for (char bad : std::string("aceghjkmnopqrvwyzCEGHJKMNOPQRUWXYZ0\x01\xff")) {
      INFO(static_cast<int>(static_cast<unsigned char>(bad)));
      check_malformed(table_bytes(entry("k", std::string(1, bad) + std::string(8, '\0'))));
    }
  }
  SUBCASE("truncated fixed-size values inside a consistent table length") {
    for (const std::string& v :
         {bytes_of({'t'}), bytes_of({'b'}), bytes_of({'B'}), bytes_of({'s', 1}), bytes_of({'u', 1}),
          bytes_of({'I', 1, 2, 3}), bytes_of({'i', 1, 2, 3}), bytes_of({'l', 1, 2, 3, 4, 5, 6, 7}),
          bytes_of({'f', 1, 2}), bytes_of({'d', 1, 2, 3, 4, 5, 6, 7}), bytes_of({'D', 1, 2, 3, 4}),
          bytes_of({'T', 1, 2, 3, 4, 5, 6, 7}), bytes_of({'S', 0, 0}), bytes_of({'x', 0, 0, 0})}) {
      INFO(v[0]);
      check_malformed(table_bytes(entry("k", v)));
    }
  }
  SUBCASE("string, byte array, nested table or array longer than the table") {
    check_malformed(table_bytes(entry("k", bytes_of({'S', 0, 0, 0, 100, 'a', 'b', 'c'}))));
    check_malformed(table_bytes(entry("k", bytes_of({'x', 0xFF, 0xFF, 0xFF, 0xFF, 'a'}))));
    check_malformed(table_bytes(entry("k", bytes_of({'F', 0, 0, 0, 9, 1, 'k', 'V'}))));
    check_malformed(table_bytes(entry("k", bytes_of({'A', 0, 0, 0, 2, 'V'}))));
    // The nested length fits the input but not the enclosing table: the outer table stops
    // its sub-reader at its own length.
    std::string inner = bytes_of({'F', 0, 0, 0, 3, 1, 'k', 'V'});
    std::string outer = entry("k", inner);
    std::string bytes = table_bytes(outer.substr(0, outer.size() - 1)) + "V";
    check_malformed(bytes);
  }
  SUBCASE("key longer than the table") {
    check_malformed(bytes_of({0, 0, 0, 3, 10, 'a', 'b'}));
    check_malformed(bytes_of({0, 0, 0, 1, 1}));
  }
  SUBCASE("a key without a value") {
    check_malformed(table_bytes(bytes_of({1, 'k'})));
  }
  SUBCASE("table length beyond the input") {
    check_malformed(bytes_of({0, 0, 0, 10, 1, 'k', 'V'}));
    check_malformed(bytes_of({0xFF, 0xFF, 0xFF, 0xFF}));
    check_malformed(bytes_of({0, 0, 0}));
    check_malformed(std::string());
  }
  SUBCASE("array element truncated") {
    check_malformed(table_bytes(entry("k", bytes_of({'A', 0, 0, 0, 3, 'I', 0, 0}))));
    check_malformed(table_bytes(entry("k", bytes_of({'A', 0, 0, 0, 1, 'Q'}))));
  }
}

TEST_CASE("nesting depth is bounded, for tables and arrays, without stack overflow") {
  auto nested = [](int depth, char kind) {
    // Builds from the inside out: each level is one entry/element holding the next.
    std::string inner;  // empty innermost container
    for (int i = 0; i < depth; ++i) {
      std::string value;
      Writer w(value);
      w.u8(static_cast<uint8_t>(kind));
      w.u32(static_cast<uint32_t>(inner.size()));
      w.raw(inner);
      if (kind == 'F') {
        std::string e;
        Writer we(e);
        we.shortstr("n");
        we.raw(value);
        inner = e;
      } else {
        inner = value;
      }
    }
    if (kind == 'A') inner = entry("n", inner.empty() ? std::string("V") : inner);
    return table_bytes(inner);
  };
  for (char kind : {'F', 'A'}) {
    INFO(kind);
    // Reasonable nesting decodes.
    const std::string ok = nested(20, kind);
    CHECK_NOTHROW(decode(ok));
    {
      Reader r(ok);
      CHECK_NOTHROW(skip_table(r));
    }
    // Deep nesting is refused rather than recursing without bound.
    check_malformed(nested(1000, kind));
  }
}

TEST_CASE("skip_table consumes exactly the table and validates it") {
  const std::string t = encode(every_type());
  const std::string bytes = t + "tail";
  Reader r(bytes);
  skip_table(r);
  CHECK(r.remaining() == 4);
  Reader r2(bytes);
  decode_table(r2);
  CHECK(r2.remaining() == 4);
}

TEST_CASE("accessors") {
  FieldTable t;
  t.set("a", int32_t{1});
  t.set("b", "text");
  t.set("a", int64_t{2});  // replaces in place
  REQUIRE(t.entries.size() == 2);
  CHECK(t.entries[0].first == "a");
  CHECK(t.find("a")->as_int() == 2);
  CHECK(t.find("missing") == nullptr);
  t.erase("a");
  CHECK(t.find("a") == nullptr);
  CHECK_FALSE(t.empty());
  t.erase("b");
  CHECK(t.empty());

  CHECK(FieldValue(int8_t{-1}).as_int() == -1);
  CHECK(FieldValue(uint8_t{200}).as_int() == 200);
  CHECK(FieldValue(int16_t{-300}).as_int() == -300);
  CHECK(FieldValue(uint16_t{60000}).as_int() == 60000);
  CHECK(FieldValue(int32_t{-70000}).as_int() == -70000);
  CHECK(FieldValue(uint32_t{4000000000u}).as_int() == 4000000000LL);
  CHECK(FieldValue(int64_t{-5}).as_int() == -5);
  CHECK_FALSE(FieldValue(true).as_int().has_value());
  CHECK_FALSE(FieldValue(1.0).as_int().has_value());
  CHECK_FALSE(FieldValue("1").as_int().has_value());

  CHECK(FieldValue("s").as_string() == "s");
  CHECK(FieldValue(ByteArray{"b"}).as_string() == "b");
  CHECK_FALSE(FieldValue(int32_t{1}).as_string().has_value());
  CHECK(FieldValue(false).as_bool() == false);
  CHECK_FALSE(FieldValue(int32_t{1}).as_bool().has_value());
  CHECK(FieldValue().type_char() == 'V');
  CHECK(FieldValue(FieldTable{}).as_table() != nullptr);
  CHECK(FieldValue(FieldArray{}).as_array() != nullptr);
  CHECK(FieldValue(FieldArray{}).as_table() == nullptr);

  CHECK(value_to_text(FieldValue(true)) == "true");
  CHECK(value_to_text(FieldValue(int16_t{-2})) == "-2");
  CHECK(value_to_text(FieldValue(uint32_t{4000000000u})) == "4000000000");
  CHECK(value_to_text(FieldValue("abc")) == "abc");
  CHECK(value_to_text(FieldValue(Void{})) == "undefined");
  CHECK(value_to_text(FieldValue(Timestamp{5})) == "5");

  // Distinct alternatives never compare equal, even with the same number.
  CHECK_FALSE(FieldValue(int32_t{1}) == FieldValue(uint32_t{1}));
  CHECK_FALSE(FieldValue("a") == FieldValue(ByteArray{"a"}));
}
