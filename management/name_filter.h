// NameFilter: the `name` filter of paginated list requests with `use_regex=true` — a
// case-insensitive PCRE pattern (the dialect of RabbitMQ's Erlang `re`), matched with
// PCRE2's match and depth limits so that no pattern can hold the broker's thread for long.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace warren::management {

class NameFilter {
 public:
  // nullopt when the pattern does not compile (or is longer than 1000 bytes).
  static std::optional<NameFilter> compile(std::string_view pattern);
  // A match that hits a limit counts as no match.
  bool matches(std::string_view name) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace warren::management
