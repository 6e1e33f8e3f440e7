#include "auth/permission.h"

#include <regex>
#include <unordered_map>

namespace warren::auth {

namespace {
// Compiled patterns by text; a pattern that does not compile is cached as "never matches".
struct Compiled {
  bool ok = false;
  std::regex re;
};

// Looks up by string_view (no key string built per lookup).
struct ViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

const Compiled& compile(std::string_view pattern) {
  thread_local std::unordered_map<std::string, Compiled, ViewHash, std::equal_to<>> cache;
  auto it = cache.find(pattern);
  if (it != cache.end()) return it->second;
  if (cache.size() > 4096) cache.clear();  // bounded: patterns come from operators
  Compiled c;
  try {
    c.re = std::regex(pattern.begin(), pattern.end(), std::regex::ECMAScript);
    c.ok = true;
  } catch (const std::regex_error&) {
  }
  return cache.emplace(std::string(pattern), std::move(c)).first->second;
}
}  // namespace

std::string_view access_name(Access a) {
  switch (a) {
    case Access::kConfigure: return "configure";
    case Access::kWrite: return "write";
    case Access::kRead: break;
  }
  return "read";
}

bool pattern_matches(std::string_view pattern, std::string_view name) {
  // The defaults need no regex: ".*" matches everything, "" nothing but "".
  if (pattern == ".*" || pattern == "^.*" || pattern == "^.*$") return true;
  if (pattern.empty() || pattern == "^$") return name.empty();
  const Compiled& c = compile(pattern);
  if (!c.ok) return false;
  return std::regex_search(name.begin(), name.end(), c.re);
}

bool valid_pattern(std::string_view pattern) { return pattern.empty() || compile(pattern).ok; }

std::string expand_topic_pattern(std::string_view pattern, std::string_view user,
                                 std::string_view vhost) {
  std::string out;
  out.reserve(pattern.size());
  for (size_t i = 0; i < pattern.size();) {
    if (pattern.substr(i, 10) == "{username}") {
      out += user;
      i += 10;
    } else if (pattern.substr(i, 7) == "{vhost}") {
      out += vhost;
      i += 7;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

std::string access_refused_text(std::string_view kind, std::string_view name,
                                std::string_view vhost, std::string_view user) {
  std::string s = "access to ";
  s.append(kind).append(" '").append(name).append("' in vhost '").append(vhost);
  s.append("' refused for user '").append(user).append("'");
  return s;
}

std::string topic_refused_text(std::string_view routing_key, std::string_view exchange,
                               std::string_view vhost, std::string_view user) {
  std::string s = "access to topic '";
  s.append(routing_key).append("' in exchange '").append(exchange).append("' in vhost '");
  s.append(vhost).append("' refused for user '").append(user).append("'");
  return s;
}

}  // namespace warren::auth
