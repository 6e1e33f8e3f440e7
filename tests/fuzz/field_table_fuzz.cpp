// libFuzzer target: field tables, content-header properties and method arguments.
//
// The first input byte picks what the rest is decoded as: a field table, a single field
// value, basic properties, or a method payload. Oracles: malformed input only ever throws
// DecodeError (or UnknownMethod); skip_table accepts exactly what decode_table accepts and
// consumes as much; whatever decodes re-encodes to bytes that decode to an equal value and
// re-encode identically (a fixpoint after one round).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "amqp/field_table.h"
#include "amqp/methods.h"
#include "amqp/properties.h"

using namespace warren::amqp;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_table(std::string_view in) {
  bool decoded = false;
  size_t used = 0;
  FieldTable t;
  try {
    Reader r(in);
    t = decode_table(r);
    decoded = true;
    used = in.size() - r.remaining();
  } catch (const DecodeError&) {
  }
  bool skipped = false;
  try {
    Reader r(in);
    skip_table(r);
    skipped = true;
    check(!decoded || in.size() - r.remaining() == used);
  } catch (const DecodeError&) {
  }
  check(decoded == skipped);
  if (!decoded) return;
  std::string once;
  Writer w(once);
  encode_table(w, t);
  Reader r2(once);
  FieldTable t2 = decode_table(r2);
  check(r2.at_end());
  check(t2 == t);
  std::string twice;
  Writer w2(twice);
  encode_table(w2, t2);
  check(twice == once);
}

void fuzz_value(std::string_view in) {
  FieldValue v;
  try {
    Reader r(in);
    v = decode_value(r);
  } catch (const DecodeError&) {
    return;
  }
  std::string once;
  Writer w(once);
  encode_value(w, v);
  Reader r2(once);
  FieldValue v2 = decode_value(r2);
  check(r2.at_end());
  check(v2 == v);
  (void)value_to_text(v2);
  (void)v2.as_int();
  (void)v2.as_string();
}

void fuzz_properties(std::string_view in) {
  BasicProperties p;
  try {
    p = BasicProperties::decode(in, true);
  } catch (const DecodeError&) {
    // The lazy paths must refuse it too.
    bool refused = false;
    try {
      summarize_properties(in);
    } catch (const DecodeError&) {
      refused = true;
    }
    check(refused);
    return;
  }
  const PropertySummary s = summarize_properties(in);
  check(s.has_headers == p.has(BasicProperties::kHeaders));
  check(s.persistent == (p.has(BasicProperties::kDeliveryMode) && p.delivery_mode == 2));
  std::string once;
  Writer w(once);
  p.encode(w);
  BasicProperties p2 = BasicProperties::decode(once, true);
  check(p2.flags == (p.flags & ~0x3u));
  check(p2.headers == p.headers);
  check(p2.content_type == p.content_type && p2.cluster_id == p.cluster_id &&
        p2.timestamp == p.timestamp && p2.priority == p.priority);
  std::string twice;
  Writer w2(twice);
  p2.encode(w2);
  check(twice == once);
}

void fuzz_method(std::string_view in) {
  Method m;
  try {
    Reader r(in);
    m = decode_method(r);
  } catch (const DecodeError&) {
    return;
  } catch (const UnknownMethod&) {
    return;
  }
  check(method_known(method_class_id(m), method_method_id(m)));
  std::string once;
  Writer w(once);
  encode_method(m, w);
  Reader r2(once);
  Method m2 = decode_method(r2);
  check(r2.at_end());
  check(m2.index() == m.index());
  std::string twice;
  Writer w2(twice);
  encode_method(m2, w2);
  check(twice == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: fuzz_table(in); break;
    case 1: fuzz_value(in); break;
    case 2: fuzz_properties(in); break;
    default: fuzz_method(in); break;
  }
  return 0;
}
