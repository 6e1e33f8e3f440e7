// BasicProperties: the 14 properties of a basic-class content header, decoded lazily.
//
// The broker keeps a message's property bytes exactly as the publisher sent them and sends
// them back unchanged on delivery; it decodes them only when it needs a field (expiration,
// priority, headers for routing). Decoded string fields are views into those bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/field_table.h"
#include "amqp/wire.h"

namespace warren::amqp {

struct BasicProperties {
  // Flag bits of the property-flags word, most significant first as in the spec.
  enum Flag : uint16_t {
    kContentType = 1u << 15,
    kContentEncoding = 1u << 14,
    kHeaders = 1u << 13,
    kDeliveryMode = 1u << 12,
    kPriority = 1u << 11,
    kCorrelationId = 1u << 10,
    kReplyTo = 1u << 9,
    kExpiration = 1u << 8,
    kMessageId = 1u << 7,
    kTimestamp = 1u << 6,
    kType = 1u << 5,
    kUserId = 1u << 4,
    kAppId = 1u << 3,
    kClusterId = 1u << 2,
  };

  uint16_t flags = 0;
  std::string_view content_type;
  std::string_view content_encoding;
  FieldTable headers;
  uint8_t delivery_mode = 0;
  uint8_t priority = 0;
  std::string_view correlation_id;
  std::string_view reply_to;
  std::string_view expiration;
  std::string_view message_id;
  uint64_t timestamp = 0;
  std::string_view type;
  std::string_view user_id;
  std::string_view app_id;
  std::string_view cluster_id;

  bool has(Flag f) const { return (flags & f) != 0; }

  // Decodes the flag words and properties (not the class/weight/size prefix). Headers are
  // decoded only when `with_headers` is set; otherwise they are validated and skipped.
  // Throws DecodeError.
  static BasicProperties decode(std::string_view raw, bool with_headers = true);
  // Writes the flag word and the properties whose flags are set.
  void encode(Writer& w) const;
};

// Fields the broker needs from nearly every message, read without building a table.
struct PropertySummary {
  bool persistent = false;   // delivery_mode == 2
  uint8_t priority = 0;
  bool has_priority = false;
  bool has_expiration = false;
  bool has_headers = false;
  bool has_user_id = false;
  bool has_reply_to = false;
};

// Whether the headers table in raw property bytes has an entry named `key`, found without
// building the table (used to look for CC/BCC on every publish that has headers).
bool raw_headers_have_key(std::string_view raw, std::string_view key);

// Validates `raw` completely and extracts the summary. Throws DecodeError.
PropertySummary summarize_properties(std::string_view raw);

}  // namespace warren::amqp
