// Policy: a RabbitMQ policy (or operator policy) — a name pattern that applies a definition
// (message-ttl, expires, max-length, dead-letter-exchange, ...) to the queues and exchanges
// of one vhost whose names it matches, without redeclaring them.
//
// Plain values owned by their VHost. Only the highest-priority matching policy applies to
// a queue or exchange (RabbitMQ's rule); operator policies cap the numeric limits on top.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>

namespace warren::broker {

struct Policy {
  std::string name;
  std::string pattern;
  std::string apply_to = "all";  // "queues", "exchanges", "all" (RabbitMQ's apply-to)
  int priority = 0;
  std::string definition_json;   // as given, for listing and export

  // The definition keys Warren gives meaning to.
  std::optional<int64_t> message_ttl;
  std::optional<int64_t> expires;
  std::optional<int64_t> max_length;
  std::optional<int64_t> max_length_bytes;
  std::optional<std::string> overflow;
  std::optional<std::string> dead_letter_exchange;
  std::optional<std::string> dead_letter_routing_key;
  std::optional<std::string> queue_mode;
  std::optional<std::string> alternate_exchange;

  // Parses and validates a definition (a JSON object) as RabbitMQ does; on failure returns
  // nullopt and sets `error` to a one-line reason naming the key.
  static std::optional<Policy> make(std::string name, std::string pattern, std::string apply_to,
                                    int priority, const std::string& definition_json,
                                    std::string& error);

  // Does the policy apply to this queue (or exchange) name? (regex search, unanchored)
  bool matches(const std::string& object_name, bool is_queue) const;

 private:
  std::regex regex_;
};

}  // namespace warren::broker
