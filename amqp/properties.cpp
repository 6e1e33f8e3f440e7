#include "amqp/properties.h"

namespace warren::amqp {

namespace {
// Reads the flag words; RabbitMQ accepts continuation words but the basic class has only
// 14 properties, so any flag in a continuation word is malformed. Returns the first word.
uint16_t read_flags(Reader& r) {
  uint16_t first = r.u16();
  uint16_t word = first;
  while (word & 1) {
    word = r.u16();
    if (word & ~1u) throw DecodeError("unknown property flags");
  }
  if (first & 0x3) {
    if (first & 0x2) throw DecodeError("unknown property flags");
  }
  return first;
}
}  // namespace

BasicProperties BasicProperties::decode(std::string_view raw, bool with_headers) {
  Reader r(raw);
  BasicProperties p;
  p.flags = read_flags(r);
  if (p.has(kContentType)) p.content_type = r.shortstr();
  if (p.has(kContentEncoding)) p.content_encoding = r.shortstr();
  if (p.has(kHeaders)) {
    if (with_headers) {
      p.headers = decode_table(r);
    } else {
      skip_table(r);
    }
  }
  if (p.has(kDeliveryMode)) p.delivery_mode = r.u8();
  if (p.has(kPriority)) p.priority = r.u8();
  if (p.has(kCorrelationId)) p.correlation_id = r.shortstr();
  if (p.has(kReplyTo)) p.reply_to = r.shortstr();
  if (p.has(kExpiration)) p.expiration = r.shortstr();
  if (p.has(kMessageId)) p.message_id = r.shortstr();
  if (p.has(kTimestamp)) p.timestamp = r.u64();
  if (p.has(kType)) p.type = r.shortstr();
  if (p.has(kUserId)) p.user_id = r.shortstr();
  if (p.has(kAppId)) p.app_id = r.shortstr();
  if (p.has(kClusterId)) p.cluster_id = r.shortstr();
  if (!r.at_end()) throw DecodeError("trailing bytes after properties");
  return p;
}

void BasicProperties::encode(Writer& w) const {
  w.u16(static_cast<uint16_t>(flags & ~0x3u));
  if (has(kContentType)) w.shortstr(content_type);
  if (has(kContentEncoding)) w.shortstr(content_encoding);
  if (has(kHeaders)) encode_table(w, headers);
  if (has(kDeliveryMode)) w.u8(delivery_mode);
  if (has(kPriority)) w.u8(priority);
  if (has(kCorrelationId)) w.shortstr(correlation_id);
  if (has(kReplyTo)) w.shortstr(reply_to);
  if (has(kExpiration)) w.shortstr(expiration);
  if (has(kMessageId)) w.shortstr(message_id);
  if (has(kTimestamp)) w.u64(timestamp);
  if (has(kType)) w.shortstr(type);
  if (has(kUserId)) w.shortstr(user_id);
  if (has(kAppId)) w.shortstr(app_id);
  if (has(kClusterId)) w.shortstr(cluster_id);
}

bool raw_headers_have_key(std::string_view raw, std::string_view key) {
  Reader r(raw);
  const uint16_t flags = r.u16();
  if (!(flags & BasicProperties::kHeaders)) return false;
  if (flags & BasicProperties::kContentType) r.shortstr();
  if (flags & BasicProperties::kContentEncoding) r.shortstr();
  Reader table(r.longstr());
  while (!table.at_end()) {
    if (table.shortstr() == key) return true;
    skip_one_value(table);
  }
  return false;
}

PropertySummary summarize_properties(std::string_view raw) {
  BasicProperties p = BasicProperties::decode(raw, /*with_headers=*/false);
  PropertySummary s;
  s.persistent = p.has(BasicProperties::kDeliveryMode) && p.delivery_mode == 2;
  s.has_priority = p.has(BasicProperties::kPriority);
  s.priority = p.priority;
  s.has_expiration = p.has(BasicProperties::kExpiration);
  s.has_headers = p.has(BasicProperties::kHeaders);
  s.has_user_id = p.has(BasicProperties::kUserId);
  s.has_reply_to = p.has(BasicProperties::kReplyTo);
  return s;
}

}  // namespace warren::amqp
