// Broker (broker/broker.h): users, vhosts, permissions and limits — the changes operators
// make through the management API, persisted and applied at once.
#include <algorithm>

#include "broker/broker.h"
#include "broker/connection.h"
#include "common/log.h"

namespace warren::broker {

namespace {
std::string join_tags(const std::vector<std::string>& tags) {
  std::string s;
  for (const auto& t : tags) {
    if (!s.empty()) s += ',';
    s += t;
  }
  return s;
}

std::vector<std::string> split_tags(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

persistence::StoredUser stored_user(const auth::User& u) {
  return {u.name, u.password_hash, std::string(auth::algorithm_name(u.algorithm)),
          join_tags(u.tags)};
}
}  // namespace

const Broker::VHostInfo* Broker::vhost_info(std::string_view name) const {
  auto it = vhost_info_.find(name);
  return it == vhost_info_.end() ? nullptr : &it->second;
}

bool Broker::put_vhost(const std::string& name, std::string description,
                       std::vector<std::string> tags) {
  const bool created = find_vhost(name) == nullptr;
  add_vhost(name);
  VHostInfo& info = vhost_info_[name];
  info.description = std::move(description);
  info.tags = std::move(tags);
  persist([&](persistence::Store& s) {
    s.put_vhost(persistence::StoredVhost{name, info.description, join_tags(info.tags)});
  });
  if (created) WLOG_INFO("vhost '{}' created", name);
  return created;
}

bool Broker::delete_vhost(const std::string& name) {
  auto it = vhosts_.find(name);
  if (it == vhosts_.end()) return false;
  VHost* v = it->second.get();
  close_connections_if([v](Connection& c) { return c.vhost() == v; },
                       "vhost '" + name + "' is deleted");
  // Queues first (their consumers are cancelled), then everything else the vhost holds.
  std::vector<Queue*> queues;
  for (const auto& [qname, q] : v->queues()) queues.push_back(q.get());
  for (Queue* q : queues) v->delete_queue(*q);
  v->cancel_timers();
  users_.forget_vhost(name);
  vhost_info_.erase(name);
  persist([&](persistence::Store& s) { s.delete_vhost(name); });
  deleted_vhosts_.push_back(std::move(it->second));
  vhosts_.erase(it);
  WLOG_INFO("vhost '{}' deleted", name);
  return true;
}

void Broker::put_user(auth::User u) {
  persist([&](persistence::Store& s) { s.put_user(stored_user(u)); });
  users_.put_user(std::move(u));
}

bool Broker::delete_user(const std::string& name) {
  if (!users_.delete_user(name)) return false;
  persist([&](persistence::Store& s) { s.delete_user(name); });
  close_connections_if([&](Connection& c) { return c.user() == name; },
                       "user '" + name + "' is deleted");
  WLOG_INFO("user '{}' deleted", name);
  return true;
}

void Broker::set_permission(const std::string& user, const std::string& vhost,
                            auth::Permission p) {
  persist([&](persistence::Store& s) {
    s.put_permission(persistence::StoredPermission{user, vhost, p.configure, p.write, p.read});
  });
  users_.set_permission(user, vhost, std::move(p));
}

bool Broker::clear_permission(const std::string& user, const std::string& vhost) {
  if (!users_.clear_permission(user, vhost)) return false;
  persist([&](persistence::Store& s) { s.delete_permission(user, vhost); });
  return true;
}

void Broker::set_topic_permission(const std::string& user, const std::string& vhost,
                                  const std::string& exchange, auth::TopicPermission p) {
  persist([&](persistence::Store& s) {
    s.put_topic_permission(
        persistence::StoredTopicPermission{user, vhost, exchange, p.write, p.read});
  });
  users_.set_topic_permission(user, vhost, exchange, std::move(p));
}

size_t Broker::clear_topic_permissions(const std::string& user, const std::string& vhost,
                                       const std::string& exchange) {
  const size_t n = users_.clear_topic_permissions(user, vhost, exchange);
  if (n > 0) {
    persist([&](persistence::Store& s) { s.delete_topic_permissions(user, vhost, exchange); });
  }
  return n;
}

void Broker::set_vhost_limit(const std::string& vhost, const std::string& name, int64_t value) {
  vhost_info_[vhost].limits[name] = value;
  persist([&](persistence::Store& s) {
    s.put_vhost_limit(persistence::StoredVhostLimit{vhost, name, value});
  });
}

bool Broker::clear_vhost_limit(const std::string& vhost, const std::string& name) {
  auto it = vhost_info_.find(vhost);
  if (it == vhost_info_.end() || it->second.limits.erase(name) == 0) return false;
  persist([&](persistence::Store& s) { s.delete_vhost_limit(vhost, name); });
  return true;
}

std::optional<int64_t> Broker::vhost_limit(std::string_view vhost, std::string_view name) const {
  const VHostInfo* info = vhost_info(vhost);
  if (!info) return std::nullopt;
  auto it = info->limits.find(name);
  if (it == info->limits.end() || it->second < 0) return std::nullopt;
  return it->second;
}

bool Broker::set_policy(const std::string& vhost, Policy p, bool operator_policy) {
  VHost* v = find_vhost(vhost);
  if (!v) return false;
  const bool created = !v->policies(operator_policy).count(p.name);
  persist([&](persistence::Store& s) {
    s.put_policy(persistence::StoredPolicy{vhost, p.name, operator_policy, p.pattern, p.apply_to,
                                           p.definition_json, p.priority});
  });
  WLOG_INFO("{} '{}' set in vhost '{}'", operator_policy ? "operator policy" : "policy", p.name,
            vhost);
  v->set_policy(std::move(p), operator_policy);
  return created;
}

bool Broker::clear_policy(const std::string& vhost, const std::string& name,
                          bool operator_policy) {
  VHost* v = find_vhost(vhost);
  if (!v || !v->clear_policy(name, operator_policy)) return false;
  persist([&](persistence::Store& s) { s.delete_policy(vhost, name, operator_policy); });
  WLOG_INFO("{} '{}' cleared in vhost '{}'", operator_policy ? "operator policy" : "policy", name,
            vhost);
  return true;
}

bool Broker::permitted(std::string_view user, std::string_view vhost, auth::Access access,
                       std::string_view name) const {
  const auth::Permission* p = users_.permission(user, vhost);
  if (!p) return false;
  switch (access) {
    case auth::Access::kConfigure: return auth::pattern_matches(p->configure, name);
    case auth::Access::kWrite: return auth::pattern_matches(p->write, name);
    case auth::Access::kRead: break;
  }
  return auth::pattern_matches(p->read, name);
}

void Broker::close_connections(const std::vector<Connection*>& picked, const std::string& reason) {
  for (Connection* c : picked) {
    // Still registered: closing one connection never destroys another synchronously, but
    // stay safe against it.
    if (connections_.count(c)) c->close_forced(reason);
  }
}

void Broker::recover_access(const persistence::RecoveredAccess& a) {
  users_ = auth::UserStore{};
  // The constructor's default vhost stays only when it is among the stored ones.
  std::set<std::string, std::less<>> stored;
  for (const auto& v : a.vhosts) stored.insert(v.name);
  for (auto it = vhosts_.begin(); it != vhosts_.end();) {
    if (!stored.count(it->first) && it->second->queues().empty()) {
      vhost_info_.erase(it->first);
      it = vhosts_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& v : a.vhosts) {
    add_vhost(v.name);
    VHostInfo& info = vhost_info_[v.name];
    info.description = v.description;
    info.tags = split_tags(v.tags);
  }
  for (const auto& u : a.users) {
    auth::User user;
    user.name = u.name;
    user.password_hash = u.password_hash;
    user.algorithm = auth::parse_algorithm(u.hashing_algorithm).value_or(auth::HashAlgorithm::kSha256);
    user.tags = split_tags(u.tags);
    users_.put_user(std::move(user));
  }
  for (const auto& p : a.permissions) {
    users_.set_permission(p.user, p.vhost, auth::Permission{p.configure, p.write, p.read});
  }
  for (const auto& t : a.topic_permissions) {
    users_.set_topic_permission(t.user, t.vhost, t.exchange, auth::TopicPermission{t.write, t.read});
  }
  for (const auto& l : a.vhost_limits) vhost_info_[l.vhost].limits[l.name] = l.value;
  // Before the queues and exchanges are recovered, so each gets its policy as it is added.
  for (const auto& sp : a.policies) {
    VHost* v = find_vhost(sp.vhost);
    std::string error;
    auto p = Policy::make(sp.name, sp.pattern, sp.apply_to, static_cast<int>(sp.priority),
                          sp.definition, error);
    if (!v || !p) {
      WLOG_WARN("stored policy '{}' in vhost '{}' ignored: {}", sp.name, sp.vhost,
                p ? "no such vhost" : error);
      continue;
    }
    v->set_policy(std::move(*p), sp.operator_policy);
  }
}

void Broker::set_store(persistence::Store* store) {
  store_ = store;
  if (store_ && seed_pending_) {
    seed_pending_ = false;
    seed_default_access();
  }
}

void Broker::seed_default_access() {
  // What the constructor set up in memory (the default vhost and user, and the vhosts
  // recovered topology names) becomes the stored state.
  persist([&](persistence::Store& s) {
    for (const auto& [name, v] : vhosts_) {
      const VHostInfo* info = vhost_info(name);
      s.put_vhost(persistence::StoredVhost{name, info ? info->description : "",
                                           info ? join_tags(info->tags) : ""});
    }
    for (const auto& [name, u] : users_.users()) s.put_user(stored_user(u));
    for (const auto& [key, p] : users_.permissions()) {
      s.put_permission(persistence::StoredPermission{key.first, key.second, p.configure,
                                                     p.write, p.read});
    }
    s.mark_access_initialized();
  });
}

}  // namespace warren::broker
