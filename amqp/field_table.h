// FieldTable and FieldValue: AMQP field tables and arrays with RabbitMQ's value types.
//
// RabbitMQ follows the 0-9-1 errata, not the spec's table: 's' is a signed 16-bit int,
// 'l' a signed 64-bit int, 'x' a byte array, 'i' an unsigned 32-bit int and 'I' signed.
// Each type letter decodes to its own alternative so a table re-encodes byte for byte.
// Owning values: a decoded table does not point into the frame.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "amqp/wire.h"

namespace warren::amqp {

struct FieldValue;

struct FieldTable {
  std::vector<std::pair<std::string, FieldValue>> entries;

  // The first entry named `key`, or nullptr.
  const FieldValue* find(std::string_view key) const;
  FieldValue* find(std::string_view key);
  void set(std::string_view key, FieldValue v);
  void erase(std::string_view key);
  bool empty() const;  // defined below FieldValue, which must be complete first (clang)
  bool operator==(const FieldTable&) const;
};

using FieldArray = std::vector<FieldValue>;

struct Decimal {
  uint8_t scale = 0;
  uint32_t value = 0;
  bool operator==(const Decimal&) const = default;
};
struct Timestamp {
  uint64_t value = 0;
  bool operator==(const Timestamp&) const = default;
};
struct LongString {
  std::string value;
  bool operator==(const LongString&) const = default;
};
struct ByteArray {
  std::string value;
  bool operator==(const ByteArray&) const = default;
};
struct Void {
  bool operator==(const Void&) const = default;
};
// 'L': a signed 64-bit integer as py-amqp writes it (RabbitMQ passes such headers through).
struct LongLongInt {
  int64_t value = 0;
  bool operator==(const LongLongInt&) const = default;
};

struct FieldValue {
  // Alternatives in the order of their type letters: t b B s u I i l f d D S A T F V x L.
  using Storage = std::variant<bool, int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t,
                               int64_t, float, double, Decimal, LongString, FieldArray,
                               Timestamp, FieldTable, Void, ByteArray, LongLongInt>;
  Storage v;

  FieldValue() : v(Void{}) {}
  template <typename T>
    requires std::is_constructible_v<Storage, T&&>
  FieldValue(T&& x) : v(std::forward<T>(x)) {}
  FieldValue(const char* s) : v(LongString{s}) {}
  FieldValue(std::string_view s) : v(LongString{std::string(s)}) {}
  FieldValue(std::string s) : v(LongString{std::move(s)}) {}

  char type_char() const;
  bool operator==(const FieldValue& o) const;

  // Integer value of any integer type (RabbitMQ accepts b B s u I i l for numeric
  // arguments such as x-message-ttl), or nullopt.
  std::optional<int64_t> as_int() const;
  // Text of a long string (or byte array), or nullopt.
  std::optional<std::string_view> as_string() const;
  std::optional<bool> as_bool() const;
  const FieldTable* as_table() const { return std::get_if<FieldTable>(&v); }
  const FieldArray* as_array() const { return std::get_if<FieldArray>(&v); }
};

inline bool FieldTable::empty() const { return entries.empty(); }

// Reads a table (u32 length then entries). Throws DecodeError on malformed input, including
// an unknown type letter (RabbitMQ closes the connection with 502 SYNTAX_ERROR then).
FieldTable decode_table(Reader& r);
FieldValue decode_value(Reader& r);
void encode_table(Writer& w, const FieldTable& t);
void encode_value(Writer& w, const FieldValue& v);

// Skips one type-tagged value. Throws DecodeError.
void skip_one_value(Reader& r);
// Validates a table without building it (used when a table is only passed through).
void skip_table(Reader& r);

// RabbitMQ-style text for a value, used in error messages: strings bare, numbers decimal.
std::string value_to_text(const FieldValue& v);

}  // namespace warren::amqp
