#include "broker/broker.h"

#include <vector>

#include "broker/connection.h"

namespace warren::broker {

Broker::Broker(common::Config config) : config_(std::move(config)), rng_(std::random_device{}()) {
  add_vhost(config_.default_vhost);
  if (!config_.default_user.empty()) {
    users_.add_user(config_.default_user, config_.default_pass, {"administrator"});
    users_.set_permission(config_.default_user, config_.default_vhost, auth::Permission{});
  }
}

Broker::~Broker() = default;

VHost* Broker::find_vhost(std::string_view name) {
  auto it = vhosts_.find(name);
  return it == vhosts_.end() ? nullptr : it->second.get();
}

VHost& Broker::add_vhost(const std::string& name) {
  auto& v = vhosts_[name];
  if (!v) v = std::make_unique<VHost>(*this, name);
  return *v;
}

void Broker::close_all_connections(const std::string& reason) {
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) c->close_forced(reason);
}

std::string Broker::generate_name(std::string_view prefix) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string s(prefix);
  s += '-';
  uint64_t a = rng_(), b = rng_();
  for (int i = 0; i < 22; ++i) {
    uint64_t& src = i < 11 ? a : b;
    s += kAlphabet[src & 63];
    src >>= 6;
  }
  return s;
}

}  // namespace warren::broker
