// Store (persistence/store.h): the access-control tables of schema v4 — users, vhosts,
// permissions, topic permissions, vhost limits — and the policies of v5. Their writes are
// rare (operator actions), so they go through the generic SqlStep op rather than statements
// of their own; each call is one op, so its statements commit together.
#include <cstdlib>

#include "persistence/store.h"

namespace warren::persistence {

void Store::put_user(const StoredUser& u) {
  enqueue_steps({{"INSERT INTO users (name, password_hash, hashing_algorithm, tags) "
                  "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET "
                  "password_hash = excluded.password_hash, "
                  "hashing_algorithm = excluded.hashing_algorithm, tags = excluded.tags",
                  {u.name, u.password_hash, u.hashing_algorithm, u.tags}}});
}

void Store::delete_user(const std::string& name) {
  enqueue_steps({{"DELETE FROM users WHERE name = ?1", {name}},
                 {"DELETE FROM permissions WHERE user = ?1", {name}},
                 {"DELETE FROM topic_permissions WHERE user = ?1", {name}}});
}

void Store::put_vhost(const StoredVhost& v) {
  enqueue_steps({{"INSERT INTO vhosts (name, description, tags) VALUES (?1, ?2, ?3) "
                  "ON CONFLICT (name) DO UPDATE SET description = excluded.description, "
                  "tags = excluded.tags",
                  {v.name, v.description, v.tags}}});
}

void Store::delete_vhost(const std::string& name) {
  // Entries before queues: the trigger drops messages left without entries.
  enqueue_steps({{"DELETE FROM entries WHERE vhost = ?1", {name}},
                 {"DELETE FROM bindings WHERE vhost = ?1", {name}},
                 {"DELETE FROM queues WHERE vhost = ?1", {name}},
                 {"DELETE FROM exchanges WHERE vhost = ?1", {name}},
                 {"DELETE FROM delayed WHERE vhost = ?1", {name}},
                 {"DELETE FROM permissions WHERE vhost = ?1", {name}},
                 {"DELETE FROM topic_permissions WHERE vhost = ?1", {name}},
                 {"DELETE FROM vhost_limits WHERE vhost = ?1", {name}},
                 {"DELETE FROM policies WHERE vhost = ?1", {name}},
                 {"DELETE FROM vhosts WHERE name = ?1", {name}}});
}

void Store::put_permission(const StoredPermission& p) {
  enqueue_steps({{"INSERT INTO permissions (user, vhost, configure, write, read) "
                  "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user, vhost) DO UPDATE SET "
                  "configure = excluded.configure, write = excluded.write, read = excluded.read",
                  {p.user, p.vhost, p.configure, p.write, p.read}}});
}

void Store::delete_permission(const std::string& user, const std::string& vhost) {
  enqueue_steps({{"DELETE FROM permissions WHERE user = ?1 AND vhost = ?2", {user, vhost}}});
}

void Store::put_topic_permission(const StoredTopicPermission& p) {
  enqueue_steps({{"INSERT INTO topic_permissions (user, vhost, exchange, write, read) "
                  "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user, vhost, exchange) DO UPDATE "
                  "SET write = excluded.write, read = excluded.read",
                  {p.user, p.vhost, p.exchange, p.write, p.read}}});
}

void Store::delete_topic_permissions(const std::string& user, const std::string& vhost,
                                     const std::string& exchange) {
  if (exchange.empty()) {
    enqueue_steps({{"DELETE FROM topic_permissions WHERE user = ?1 AND vhost = ?2",
                    {user, vhost}}});
  } else {
    enqueue_steps({{"DELETE FROM topic_permissions WHERE user = ?1 AND vhost = ?2 AND "
                    "exchange = ?3",
                    {user, vhost, exchange}}});
  }
}

void Store::put_vhost_limit(const StoredVhostLimit& l) {
  enqueue_steps({{"INSERT INTO vhost_limits (vhost, name, value) VALUES (?1, ?2, ?3) "
                  "ON CONFLICT (vhost, name) DO UPDATE SET value = excluded.value",
                  {l.vhost, l.name, l.value}}});
}

void Store::delete_vhost_limit(const std::string& vhost, const std::string& name) {
  enqueue_steps({{"DELETE FROM vhost_limits WHERE vhost = ?1 AND name = ?2", {vhost, name}}});
}

void Store::put_policy(const StoredPolicy& p) {
  enqueue_steps({{"INSERT INTO policies (vhost, name, operator, pattern, apply_to, definition, "
                  "priority) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (vhost, operator, "
                  "name) DO UPDATE SET pattern = excluded.pattern, apply_to = excluded.apply_to, "
                  "definition = excluded.definition, priority = excluded.priority",
                  {p.vhost, p.name, int64_t{p.operator_policy ? 1 : 0}, p.pattern, p.apply_to,
                   p.definition, p.priority}}});
}

void Store::delete_policy(const std::string& vhost, const std::string& name,
                          bool operator_policy) {
  enqueue_steps({{"DELETE FROM policies WHERE vhost = ?1 AND operator = ?2 AND name = ?3",
                  {vhost, int64_t{operator_policy ? 1 : 0}, name}}});
}

void Store::mark_access_initialized() {
  enqueue_steps({{"INSERT OR REPLACE INTO meta (key, value) VALUES ('access_initialized', 1)",
                  {}}});
}

RecoveredAccess Store::recover_access() {
  RecoveredAccess a;
  a.initialized =
      !query_rows("SELECT value FROM meta WHERE key = 'access_initialized'").empty();
  for (auto& r : query_rows("SELECT name, password_hash, hashing_algorithm, tags FROM users "
                            "ORDER BY rowid")) {
    a.users.push_back(StoredUser{r[0], r[1], r[2], r[3]});
  }
  for (auto& r : query_rows("SELECT name, description, tags FROM vhosts ORDER BY rowid")) {
    a.vhosts.push_back(StoredVhost{r[0], r[1], r[2]});
  }
  for (auto& r : query_rows("SELECT user, vhost, configure, write, read FROM permissions "
                            "ORDER BY rowid")) {
    a.permissions.push_back(StoredPermission{r[0], r[1], r[2], r[3], r[4]});
  }
  for (auto& r : query_rows("SELECT user, vhost, exchange, write, read FROM topic_permissions "
                            "ORDER BY rowid")) {
    a.topic_permissions.push_back(StoredTopicPermission{r[0], r[1], r[2], r[3], r[4]});
  }
  for (auto& r : query_rows("SELECT vhost, name, value FROM vhost_limits ORDER BY rowid")) {
    a.vhost_limits.push_back(StoredVhostLimit{r[0], r[1], std::strtoll(r[2].c_str(), nullptr, 10)});
  }
  for (auto& r : query_rows("SELECT vhost, name, operator, pattern, apply_to, definition, "
                            "priority FROM policies ORDER BY rowid")) {
    a.policies.push_back(StoredPolicy{r[0], r[1], r[2] == "1", r[3], r[4], r[5],
                                      std::strtoll(r[6].c_str(), nullptr, 10)});
  }
  return a;
}

}  // namespace warren::persistence
