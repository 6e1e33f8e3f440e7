// Broker: the root of broker state — config, users, vhosts and open connections.
//
// One per process, owned by main and used on the broker shard's thread (N=1 for now).
#pragma once

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "auth/user_store.h"
#include "broker/vhost.h"
#include "common/config.h"

namespace warren::broker {

class Connection;

class Broker {
 public:
  explicit Broker(common::Config config);
  ~Broker();

  const common::Config& config() const { return config_; }
  auth::UserStore& users() { return users_; }

  VHost* find_vhost(std::string_view name);
  VHost& add_vhost(const std::string& name);

  void register_connection(Connection* c) { connections_.insert(c); }
  void unregister_connection(Connection* c) { connections_.erase(c); }
  const std::set<Connection*>& connections() const { return connections_; }
  // Closes every connection with 320 CONNECTION_FORCED (shutdown).
  void close_all_connections(const std::string& reason);

  // "amq.gen-XXXXXXXXXXXXXXXXXXXXXX" / "amq.ctag-..." names: prefix, '-', 22 base64url chars.
  std::string generate_name(std::string_view prefix);

 private:
  common::Config config_;
  auth::UserStore users_;
  std::map<std::string, std::unique_ptr<VHost>, std::less<>> vhosts_;
  std::set<Connection*> connections_;
  std::mt19937_64 rng_;
};

}  // namespace warren::broker
