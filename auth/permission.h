// Permission patterns as RabbitMQ's internal authorisation backend applies them.
//
// Pure functions, any thread (the regex cache is per thread). RabbitMQ's
// rabbit_auth_backend_internal runs an unanchored PCRE search of the pattern over the resource
// name, and treats an empty pattern as "^$" (nothing matches); topic patterns first expand
// the variables {username} and {vhost}. std::regex's ECMAScript grammar covers the subset of
// PCRE that permission patterns use (classes, anchors, alternation, repetition).
#pragma once

#include <string>
#include <string_view>

namespace warren::auth {

enum class Access { kConfigure, kWrite, kRead };

// "configure", "write", "read".
std::string_view access_name(Access a);

// True when `pattern` finds a match in `name` (RabbitMQ's re:run without anchoring).
bool pattern_matches(std::string_view pattern, std::string_view name);

// Whether `pattern` compiles; the management API refuses the ones that do not.
bool valid_pattern(std::string_view pattern);

// Replaces {username} and {vhost} (RabbitMQ's topic permission variables).
std::string expand_topic_pattern(std::string_view pattern, std::string_view user,
                                 std::string_view vhost);

// "access to queue 'q' in vhost '/' refused for user 'u'" (rabbit_access_control's text).
std::string access_refused_text(std::string_view kind, std::string_view name,
                                std::string_view vhost, std::string_view user);
// "access to topic 'k' in exchange 'x' in vhost '/' refused for user 'u'".
std::string topic_refused_text(std::string_view routing_key, std::string_view exchange,
                               std::string_view vhost, std::string_view user);

}  // namespace warren::auth
