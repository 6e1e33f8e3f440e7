#include "broker/policy.h"

#include <nlohmann/json.hpp>

namespace warren::broker {

namespace {
using nlohmann::json;

bool non_negative_int(const json& v) {
  return v.is_number_integer() && v.get<int64_t>() >= 0;
}
}  // namespace

std::optional<Policy> Policy::make(std::string name, std::string pattern, std::string apply_to,
                                   int priority, const std::string& definition_json,
                                   std::string& error) {
  Policy p;
  p.name = std::move(name);
  p.pattern = std::move(pattern);
  p.apply_to = apply_to.empty() ? "all" : std::move(apply_to);
  p.priority = priority;
  p.definition_json = definition_json;
  if (p.apply_to != "all" && p.apply_to != "queues" && p.apply_to != "exchanges") {
    error = "'" + p.apply_to + "' is not a valid apply-to value";
    return std::nullopt;
  }
  try {
    p.regex_ = std::regex(p.pattern, std::regex::ECMAScript);
  } catch (const std::regex_error&) {
    error = "'" + p.pattern + "' is not a valid regular expression";
    return std::nullopt;
  }
  json def = json::parse(definition_json, nullptr, false);
  if (def.is_discarded() || !def.is_object()) {
    error = "the policy definition must be a JSON object";
    return std::nullopt;
  }
  if (def.empty()) {
    error = "the policy definition is empty";
    return std::nullopt;
  }
  for (auto it = def.begin(); it != def.end(); ++it) {
    // Named copies, not structured bindings: lambdas below use them (clang 14 refuses).
    const std::string key = it.key();
    const json& v = it.value();
    auto need = [&](bool ok, const char* what) {
      if (!ok) error = key + " must be " + what;
      return ok;
    };
    if (key == "message-ttl") {
      if (!need(non_negative_int(v), "a non-negative integer")) return std::nullopt;
      p.message_ttl = v.get<int64_t>();
    } else if (key == "expires") {
      if (!need(v.is_number_integer() && v.get<int64_t>() >= 1, "an integer of at least 1"))
        return std::nullopt;
      p.expires = v.get<int64_t>();
    } else if (key == "max-length") {
      if (!need(non_negative_int(v), "a non-negative integer")) return std::nullopt;
      p.max_length = v.get<int64_t>();
    } else if (key == "max-length-bytes") {
      if (!need(non_negative_int(v), "a non-negative integer")) return std::nullopt;
      p.max_length_bytes = v.get<int64_t>();
    } else if (key == "overflow") {
      if (!need(v.is_string() && (v == "drop-head" || v == "reject-publish" ||
                                  v == "reject-publish-dlx"),
                "one of drop-head, reject-publish, reject-publish-dlx"))
        return std::nullopt;
      p.overflow = v.get<std::string>();
    } else if (key == "dead-letter-exchange") {
      if (!need(v.is_string(), "a string")) return std::nullopt;
      p.dead_letter_exchange = v.get<std::string>();
    } else if (key == "dead-letter-routing-key") {
      if (!need(v.is_string(), "a string")) return std::nullopt;
      p.dead_letter_routing_key = v.get<std::string>();
    } else if (key == "queue-mode") {
      if (!need(v.is_string() && (v == "default" || v == "lazy"), "default or lazy"))
        return std::nullopt;
      p.queue_mode = v.get<std::string>();
    } else if (key == "alternate-exchange") {
      if (!need(v.is_string(), "a string")) return std::nullopt;
      p.alternate_exchange = v.get<std::string>();
    } else {
      // Keys of features Warren does not have (ha-mode, federation-upstream, ...) are kept
      // in the definition and have no effect, so exported definitions import unchanged.
    }
  }
  return p;
}

bool Policy::matches(const std::string& object_name, bool is_queue) const {
  if (apply_to == (is_queue ? "exchanges" : "queues")) return false;
  return std::regex_search(object_name, regex_);
}

}  // namespace warren::broker
