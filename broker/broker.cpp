#include "broker/broker.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "broker/channel.h"
#include "broker/connection.h"
#include "common/log.h"

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
  vhost_info_[config_.default_vhost].description = "Default virtual host";
  if (!config_.default_user.empty()) {
    users_.add_user(config_.default_user, config_.default_pass, config_.default_user_tags);
    users_.set_permission(config_.default_user, config_.default_vhost,
                          auth::Permission{config_.default_permission_configure,
                                           config_.default_permission_write,
                                           config_.default_permission_read});
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
std::string Broker::alarm_reason() const {
  if (memory_alarm_ && disk_alarm_) return "low on memory and disk space";
  return memory_alarm_ ? "low on memory" : "low on disk space";
}

void Broker::check_alarms() {
  // Memory: resident set size against the high watermark.
  uint64_t rss = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long size = 0, resident = 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) == 2) {
      rss = static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    }
    std::fclose(f);
  }
  uint64_t limit = config_.vm_memory_high_watermark_absolute;
  if (limit == 0) {
    const uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                         static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    limit = static_cast<uint64_t>(static_cast<double>(ram) * config_.vm_memory_high_watermark_relative);
  }
  mem_used_ = rss;
  mem_limit_ = limit;
  const bool memory = rss > limit;
  const bool pressure =
      rss > static_cast<uint64_t>(static_cast<double>(limit) *
                                  config_.vm_memory_high_watermark_paging_ratio);
  if (pressure != memory_pressure_) {
    memory_pressure_ = pressure;
    if (pressure) WLOG_INFO("memory use {} bytes is above the paging threshold: paging queues out", rss);
  }
  if (pressure && store_) {
    // Transient messages go to the store too, as RabbitMQ pages under memory pressure.
    uint64_t paged = 0;
    for (auto& [vname, v] : vhosts_) {
      for (auto& [qname, q] : v->queues()) {
        if (q->memory_bytes() > 0) paged += q->page_out_to(std::min<uint64_t>(
                                                 q->memory_bytes(), 1u << 20));
      }
    }
    if (paged) WLOG_DEBUG("paged out {} bytes of queued messages", paged);
  }
  // Disk: free space where the data lives, and a store that failed to write.
  bool disk = store_ && !store_->healthy();
  struct statvfs vfs {};
  if (!config_.data_dir.empty() && statvfs(config_.data_dir.c_str(), &vfs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    disk_free_ = free_bytes;
    disk = disk || free_bytes < config_.disk_free_limit_absolute;
  }
  if (memory != memory_alarm_) {
    memory_alarm_ = memory;
    if (memory) {
      WLOG_WARN("memory resource limit alarm set: {} bytes used, limit {}", rss, limit);
    } else {
      WLOG_INFO("memory resource limit alarm cleared");
    }
  }
  if (disk != disk_alarm_) {
    disk_alarm_ = disk;
    if (disk) {
      WLOG_WARN("disk resource limit alarm set{}",
                store_ && !store_->healthy() ? ": the store failed (" + store_->last_error() + ")"
                                             : ": free disk space below disk_free_limit");
    } else {
      WLOG_INFO("disk resource limit alarm cleared");
    }
  }
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) c->apply_alarm(alarmed(), alarm_reason());
}

void Broker::tick() {
  const int64_t now = now_ms();
  if (now - last_alarm_check_ >= 200) {
    last_alarm_check_ = now;
    check_alarms();
  }
  if (!store_waiters_.empty() && !store_congested()) release_store_waiters();
  if (now - last_stats_sample_ >= static_cast<int64_t>(config_.collect_statistics_interval_ms)) {
    sample_stats();
  }
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) {
    c->check_consumer_timeouts(now);
    c->check_flow(now);
    c->trim_if_idle(now);
  }
  const uint64_t period = std::clamp<uint64_t>(config_.consumer_timeout_ms / 4, 20, 200);
  tick_timer_->expires_after(std::chrono::milliseconds(period));
  tick_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) tick();
  });
}

void Broker::sample_stats() {
  const int64_t now = now_ms();
  const double seconds = last_stats_sample_ ? (now - last_stats_sample_) / 1000.0 : 0.0;
  last_stats_sample_ = now;
  stats_.sample(seconds);
  for (auto& [vname, v] : vhosts_) {
    for (auto& [qname, q] : v->queues()) q->sample_stats(seconds);
    for (auto& [xname, x] : v->exchanges()) x->stats.sample(seconds);
  }
  for (Connection* c : connections_) c->sample_stats(seconds);
}

void Broker::hold_until_committed(MessagePtr m) {
  if (in_flight_.empty()) {
    // After the current batch of work, one sync releases everything put meanwhile.
    boost::asio::post(executor_, [this] {
      if (!store_ || in_flight_.empty()) return;
      store_->sync([this, held = std::move(in_flight_), bytes = in_flight_bytes_](bool) {
        held_bytes_ -= std::min(held_bytes_, bytes);
        if (!store_waiters_.empty() && held_bytes_ < config_.store_backlog_limit / 2) {
          release_store_waiters();
        }
      });
      in_flight_.clear();
      in_flight_bytes_ = 0;
    });
  }
  // Bodies, properties and what each queued store operation costs besides.
  const uint64_t size = m->body_size() + m->properties.size() + 256;
  in_flight_bytes_ += size;
  held_bytes_ += size;
  in_flight_.push_back(std::move(m));
}

void Broker::release_store_waiters() {
  auto waiters = std::move(store_waiters_);
  store_waiters_.clear();
  for (Connection* c : waiters) {
    if (connections_.count(c)) c->flow_resume();
  }
}

void Broker::recover(persistence::Recovered r) {
  recovering_ = true;
  if (r.access.initialized) recover_access(r.access);
  auto table = [](const std::string& bytes) {
    if (bytes.empty()) return amqp::FieldTable{};
    amqp::Reader rd(bytes);
    return amqp::decode_table(rd);
  };
  for (const auto& x : r.exchanges) {
    VHost& v = add_vhost(x.vhost);
    if (!v.find_exchange(x.name)) {
      v.add_exchange(x.name, x.type, true, x.auto_delete, x.internal, table(x.arguments));
    }
  }
  std::map<uint64_t, MessagePtr> messages;
  for (auto& [id, sm] : r.messages) {
    messages.emplace(id, Message::rebuild(std::move(sm.exchange), std::move(sm.routing_key),
                                          std::move(sm.properties), std::move(sm.body), id));
  }
  for (const auto& q : r.queues) {
    VHost& v = add_vhost(q.vhost);
    Queue* queue = v.find_queue(q.name);
    if (!queue) queue = &v.add_queue(q.name, true, false, q.auto_delete, table(q.arguments), nullptr);
    auto it = r.entries.find({q.vhost, q.name});
    if (it == r.entries.end()) continue;
    for (const auto& e : it->second) {
      auto m = messages.find(e.message_id);
      if (m != messages.end()) queue->restore(m->second, e.seq, e.delivered, e.expires_unix_ms);
    }
    if (auto p = r.paged.find({q.vhost, q.name}); p != r.paged.end()) {
      queue->restore_paged(p->second.count, p->second.bytes, p->second.from_seq,
                           p->second.max_seq);
    }
  }
  for (const auto& b : r.bindings) {
    VHost* v = find_vhost(b.vhost);
    Exchange* src = v ? v->find_exchange(b.source) : nullptr;
    if (!src) continue;
    exchange::Destination dest;
    if (b.destination_is_exchange) {
      Exchange* d = v->find_exchange(b.destination);
      if (!d) continue;
      dest = {d->id, true};
    } else {
      Queue* q = v->find_queue(b.destination);
      if (!q) continue;
      dest = {q->id(), false};
    }
    v->bind(*src, dest, b.routing_key, table(b.arguments));
  }
  for (const auto& d : r.delayed) {
    if (VHost* v = find_vhost(d.vhost)) v->restore_delayed(d);
  }
  last_message_id_ = std::max(last_message_id_, r.max_message_id);
  recovering_ = false;
  if (!r.access.initialized) seed_pending_ = true;
}

void Broker::shutdown() {
  if (tick_timer_) tick_timer_->cancel();
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) c->abort_transport();
  for (auto& [name, v] : vhosts_) v->cancel_timers();
  for (auto& v : deleted_vhosts_) v->cancel_timers();
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
