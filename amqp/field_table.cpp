#include "amqp/field_table.h"

#include <bit>
#include <cstring>

namespace warren::amqp {

namespace {
constexpr char kTypeChars[] = "tbBsuIilfdDSATFVxL";
constexpr int kMaxDepth = 64;  // Nested tables deeper than this are refused as malformed.

FieldValue decode_value_depth(Reader& r, int depth);

FieldTable decode_table_depth(Reader& r, int depth) {
  if (depth > kMaxDepth) throw DecodeError("field table nested too deeply");
  const uint32_t len = r.u32();
  Reader sub(r.bytes(len));
  FieldTable t;
  while (!sub.at_end()) {
    std::string key(sub.shortstr());
    FieldValue v = decode_value_depth(sub, depth + 1);
    t.entries.emplace_back(std::move(key), std::move(v));
  }
  return t;
}

FieldArray decode_array_depth(Reader& r, int depth) {
  if (depth > kMaxDepth) throw DecodeError("field array nested too deeply");
  const uint32_t len = r.u32();
  Reader sub(r.bytes(len));
  FieldArray a;
  while (!sub.at_end()) a.push_back(decode_value_depth(sub, depth + 1));
  return a;
}

FieldValue decode_value_depth(Reader& r, int depth) {
  const char t = static_cast<char>(r.u8());
  switch (t) {
    case 't': return FieldValue(r.u8() != 0);
    case 'b': return FieldValue(static_cast<int8_t>(r.u8()));
    case 'B': return FieldValue(r.u8());
    case 's': return FieldValue(static_cast<int16_t>(r.u16()));
    case 'u': return FieldValue(r.u16());
    case 'I': return FieldValue(static_cast<int32_t>(r.u32()));
    case 'i': return FieldValue(r.u32());
    case 'l': return FieldValue(static_cast<int64_t>(r.u64()));
    case 'f': return FieldValue(std::bit_cast<float>(r.u32()));
    case 'd': return FieldValue(std::bit_cast<double>(r.u64()));
    case 'D': {
      Decimal d;
      d.scale = r.u8();
      d.value = r.u32();
      return FieldValue(d);
    }
    case 'S': return FieldValue(LongString{std::string(r.longstr())});
    case 'A': return FieldValue(decode_array_depth(r, depth));
    case 'T': return FieldValue(Timestamp{r.u64()});
    case 'F': return FieldValue(decode_table_depth(r, depth));
    case 'V': return FieldValue(Void{});
    case 'x': return FieldValue(ByteArray{std::string(r.longstr())});
    case 'L': return FieldValue(LongLongInt{static_cast<int64_t>(r.u64())});
    default: throw DecodeError(std::string("unknown field type '") + t + "'");
  }
}

void skip_value(Reader& r, int depth);

void skip_table_depth(Reader& r, int depth) {
  if (depth > kMaxDepth) throw DecodeError("field table nested too deeply");
  Reader sub(r.bytes(r.u32()));
  while (!sub.at_end()) {
    sub.shortstr();
    skip_value(sub, depth + 1);
  }
}

void skip_value(Reader& r, int depth) {
  const char t = static_cast<char>(r.u8());
  switch (t) {
    case 't': case 'b': case 'B': r.bytes(1); return;
    case 's': case 'u': r.bytes(2); return;
    case 'I': case 'i': case 'f': r.bytes(4); return;
    case 'l': case 'd': case 'T': case 'L': r.bytes(8); return;
    case 'D': r.bytes(5); return;
    case 'S': case 'x': r.longstr(); return;
    case 'V': return;
    case 'F': skip_table_depth(r, depth); return;
    case 'A': {
      if (depth > kMaxDepth) throw DecodeError("field array nested too deeply");
      Reader sub(r.bytes(r.u32()));
      while (!sub.at_end()) skip_value(sub, depth + 1);
      return;
    }
    default: throw DecodeError(std::string("unknown field type '") + t + "'");
  }
}
}  // namespace

const FieldValue* FieldTable::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

FieldValue* FieldTable::find(std::string_view key) {
  for (auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void FieldTable::set(std::string_view key, FieldValue v) {
  if (FieldValue* existing = find(key)) {
    *existing = std::move(v);
  } else {
    entries.emplace_back(std::string(key), std::move(v));
  }
}

void FieldTable::erase(std::string_view key) {
  std::erase_if(entries, [key](const auto& e) { return e.first == key; });
}

bool FieldTable::operator==(const FieldTable& o) const {
  if (entries.size() != o.entries.size()) return false;
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].first != o.entries[i].first || !(entries[i].second == o.entries[i].second))
      return false;
  return true;
}

char FieldValue::type_char() const { return kTypeChars[v.index()]; }

bool FieldValue::operator==(const FieldValue& o) const {
  if (v.index() != o.v.index()) return false;
  return std::visit(
      [&o](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        const T& b = std::get<T>(o.v);
        if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
          return std::memcmp(&a, &b, sizeof(T)) == 0;  // bitwise, so NaN equals itself
        } else {
          return a == b;
        }
      },
      v);
}

std::optional<int64_t> FieldValue::as_int() const {
  return std::visit(
      [](const auto& a) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          return static_cast<int64_t>(a);
        } else if constexpr (std::is_same_v<T, LongLongInt>) {
          return a.value;
        } else {
          return std::nullopt;
        }
      },
      v);
}

std::optional<std::string_view> FieldValue::as_string() const {
  if (auto* s = std::get_if<LongString>(&v)) return std::string_view(s->value);
  if (auto* s = std::get_if<ByteArray>(&v)) return std::string_view(s->value);
  return std::nullopt;
}

std::optional<bool> FieldValue::as_bool() const {
  if (auto* b = std::get_if<bool>(&v)) return *b;
  return std::nullopt;
}

FieldTable decode_table(Reader& r) { return decode_table_depth(r, 0); }
void skip_one_value(Reader& r) { skip_value(r, 0); }
FieldValue decode_value(Reader& r) { return decode_value_depth(r, 0); }
void skip_table(Reader& r) { skip_table_depth(r, 0); }

void encode_value(Writer& w, const FieldValue& fv) {
  w.u8(static_cast<uint8_t>(fv.type_char()));
  std::visit(
      [&w](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, bool>) {
          w.u8(a ? 1 : 0);
        } else if constexpr (std::is_same_v<T, int8_t> || std::is_same_v<T, uint8_t>) {
          w.u8(static_cast<uint8_t>(a));
        } else if constexpr (std::is_same_v<T, int16_t> || std::is_same_v<T, uint16_t>) {
          w.u16(static_cast<uint16_t>(a));
        } else if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, uint32_t>) {
          w.u32(static_cast<uint32_t>(a));
        } else if constexpr (std::is_same_v<T, int64_t>) {
          w.u64(static_cast<uint64_t>(a));
        } else if constexpr (std::is_same_v<T, float>) {
          w.u32(std::bit_cast<uint32_t>(a));
        } else if constexpr (std::is_same_v<T, double>) {
          w.u64(std::bit_cast<uint64_t>(a));
        } else if constexpr (std::is_same_v<T, Decimal>) {
          w.u8(a.scale);
          w.u32(a.value);
        } else if constexpr (std::is_same_v<T, LongString> || std::is_same_v<T, ByteArray>) {
          w.longstr(a.value);
        } else if constexpr (std::is_same_v<T, FieldArray>) {
          const size_t at = w.size();
          w.u32(0);
          for (const auto& e : a) encode_value(w, e);
          w.patch_u32(at, static_cast<uint32_t>(w.size() - at - 4));
        } else if constexpr (std::is_same_v<T, Timestamp>) {
          w.u64(a.value);
        } else if constexpr (std::is_same_v<T, LongLongInt>) {
          w.u64(static_cast<uint64_t>(a.value));
        } else if constexpr (std::is_same_v<T, FieldTable>) {
          encode_table(w, a);
        } else {
          static_assert(std::is_same_v<T, Void>);
        }
      },
      fv.v);
}

void encode_table(Writer& w, const FieldTable& t) {
  const size_t at = w.size();
  w.u32(0);
  for (const auto& [k, v] : t.entries) {
    w.shortstr(k);
    encode_value(w, v);
  }
  w.patch_u32(at, static_cast<uint32_t>(w.size() - at - 4));
}

std::string value_to_text(const FieldValue& fv) {
  return std::visit(
      [](const auto& a) -> std::string {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, bool>) {
          return a ? "true" : "false";
        } else if constexpr (std::is_integral_v<T>) {
          return std::to_string(static_cast<int64_t>(a));
        } else if constexpr (std::is_floating_point_v<T>) {
          return std::to_string(a);
        } else if constexpr (std::is_same_v<T, LongString> || std::is_same_v<T, ByteArray>) {
          return a.value;
        } else if constexpr (std::is_same_v<T, Timestamp> || std::is_same_v<T, LongLongInt>) {
          return std::to_string(a.value);
        } else if constexpr (std::is_same_v<T, Void>) {
          return "undefined";
        } else {
          return "...";
        }
      },
      fv.v);
}

}  // namespace warren::amqp
