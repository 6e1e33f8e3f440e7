#include "broker/broker.h"

#include <algorithm>
#include <vector>

#include "broker/channel.h"
#include "broker/connection.h"

namespace warren::broker {

Broker::Broker(common::Config config)
    : Broker(std::move(config), boost::asio::any_io_executor()) {}

Broker::Broker(common::Config config, boost::asio::any_io_executor executor)
    : config_(std::move(config)), rng_(std::random_device{}()) {
  if (executor) {
    executor_ = std::move(executor);
  } else {
    own_io_ = std::make_unique<boost::asio::io_context>();
    executor_ = own_io_->get_executor();
  }
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

void Broker::start_tick() {
  tick_timer_ = std::make_unique<boost::asio::steady_timer>(executor_);
  tick();
}

// Consumer timeouts are checked a few times per timeout period (at most once a second).
void Broker::tick() {
  const int64_t now = now_ms();
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) c->check_consumer_timeouts(now);
  const uint64_t period = std::clamp<uint64_t>(config_.consumer_timeout_ms / 4, 20, 1000);
  tick_timer_->expires_after(std::chrono::milliseconds(period));
  tick_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) tick();
  });
}

void Broker::shutdown() {
  if (tick_timer_) tick_timer_->cancel();
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) c->abort_transport();
  for (auto& [name, v] : vhosts_) v->cancel_timers();
}

std::string Broker::register_reply_channel(Channel* ch) {
  std::string token = generate_name("r").substr(2);
  reply_channels_[token] = ch;
  return token;
}

void Broker::unregister_reply_channel(const std::string& token) { reply_channels_.erase(token); }

Channel* Broker::find_reply_channel(std::string_view token) const {
  auto it = reply_channels_.find(std::string(token));
  return it == reply_channels_.end() ? nullptr : it->second;
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
