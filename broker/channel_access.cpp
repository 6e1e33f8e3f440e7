// Channel (broker/channel.h): permission checks, as RabbitMQ's rabbit_channel makes them.
//
// Decisions are cached per connection and dropped whenever any user, permission or vhost
// changes (UserStore::generation), so a change applies to the next operation while a
// publish-heavy channel pays one hash lookup per publish.
#include "broker/broker.h"
#include "broker/channel.h"
#include "broker/connection.h"

namespace warren::broker {

using amqp::ChannelError;
using amqp::ReplyCode;

namespace {
// The connection's permission cache, emptied first if users or permissions changed.
Connection::PermissionCache& current_permission_cache(Connection& conn) {
  auto& cache = conn.permission_cache();
  const uint64_t generation = conn.broker().users().generation();
  if (cache.generation != generation) {
    cache.decisions.clear();
    cache.topic_patterns.clear();
    cache.generation = generation;
  }
  return cache;
}
}  // namespace

void Channel::check_access(auth::Access access, std::string_view kind, std::string_view name) {
  // rabbit_access_control checks the default exchange under its name "amq.default".
  if (kind == "exchange" && name.empty()) name = "amq.default";
  Broker& broker = conn_.broker();
  auto& cache = current_permission_cache(conn_);
  std::string& key = cache.key;
  key.clear();
  key += static_cast<char>('0' + static_cast<int>(access));
  key += kind[0];
  key.append(name);
  auto it = cache.decisions.find(key);
  bool ok;
  if (it != cache.decisions.end()) {
    ok = it->second;
  } else {
    ok = broker.permitted(conn_.user(), vhost().name(), access, name);
    if (cache.decisions.size() >= 1024) cache.decisions.clear();
    cache.decisions.emplace(key, ok);
  }
  if (!ok) {
    throw ChannelError(ReplyCode::kAccessRefused,
                       auth::access_refused_text(kind, name, vhost().name(), conn_.user()));
  }
}

void Channel::check_topic_access(const Exchange& x, std::string_view routing_key,
                                 auth::Access access) {
  if (x.type != "topic") return;
  auto& cache = current_permission_cache(conn_);
  std::string& key = cache.key;
  key.assign(1, access == auth::Access::kWrite ? 'w' : 'r');
  key.append(x.name);
  auto it = cache.topic_patterns.find(key);
  if (it == cache.topic_patterns.end()) {
    std::optional<std::string> pattern;
    if (const auth::TopicPermission* tp =
            conn_.broker().users().topic_permission(conn_.user(), vhost().name(), x.name)) {
      pattern = auth::expand_topic_pattern(access == auth::Access::kWrite ? tp->write : tp->read,
                                           conn_.user(), vhost().name());
    }
    if (cache.topic_patterns.size() >= 1024) cache.topic_patterns.clear();
    it = cache.topic_patterns.emplace(key, std::move(pattern)).first;
  }
  // No topic permission for this exchange: everything is allowed.
  if (it->second && !auth::pattern_matches(*it->second, routing_key)) {
    throw ChannelError(ReplyCode::kAccessRefused,
                       auth::topic_refused_text(routing_key, x.name, vhost().name(), conn_.user()));
  }
}

}  // namespace warren::broker
