// Broker: the root of broker state — config, users, vhosts and open connections.
//
// One per process, owned by main and used on the broker shard's thread (N=1 for now).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <unordered_map>
#include <random>
#include <optional>
#include <set>
#include <string>

#include "auth/login_throttle.h"
#include "auth/permission.h"
#include "auth/user_store.h"
#include "persistence/store.h"
#include "broker/vhost.h"
#include "common/config.h"

namespace warren::broker {

class Connection;
class Channel;

class Broker {
 public:
  // Timers (TTL, expiry, delayed messages, consumer timeouts) run on `executor`.
  Broker(common::Config config, boost::asio::any_io_executor executor);
  // For tests: timers go to an io_context of the broker's own that nobody runs.
  explicit Broker(common::Config config);
  ~Broker();

  boost::asio::any_io_executor executor() const { return executor_; }

  // Durable storage (null: everything in memory, as in unit tests).
  // Attaching the store writes the default access data when recovery found none.
  void set_store(persistence::Store* store);
  persistence::Store* store() const { return store_; }
  // Runs `f(store)` for a write unless there is no store or recovery is running; counts the
  // write so that a channel knows its reply must wait for the commit.
  template <typename F>
  void persist(F&& f) {
    if (!store_ || recovering_) return;
    ++store_writes_;
    f(*store_);
  }
  uint64_t store_writes() const { return store_writes_; }
  // The broker's message counters and rates (RabbitMQ's overview message_stats).
  MessageStats& stats() { return stats_; }
  // Objects opened and closed since start (RabbitMQ's churn counters).
  struct Churn {
    uint64_t connections_opened = 0, connections_closed = 0;
    uint64_t channels_opened = 0, channels_closed = 0;
    uint64_t queues_created = 0, queues_deleted = 0;
  };
  Churn& churn() { return churn_; }
  // Samples the rates of the broker, every queue, exchange and channel now (the tick does
  // it every collect_statistics_interval).
  void sample_stats();
  // The store for paging (swap writes are not counted as durable writes), or null when there
  // is none or recovery is running.
  persistence::Store* paging_store() const { return recovering_ ? nullptr : store_; }
  // Memory use is above vm_memory_high_watermark_paging_ratio of the watermark: queues keep
  // little in memory and page the rest out.
  bool memory_pressure() const { return memory_pressure_; }
  uint64_t next_message_id() { return ++last_message_id_; }
  // Keeps a message whose bytes the writer thread reads alive until they are committed.
  void hold_until_committed(MessagePtr m);
  // Flow control: more than `store_backlog_limit` bytes wait for the writer thread (the
  // disk is slower than the publishers). A connection that publishes meanwhile stops being
  // read until the backlog is under half of it, so memory does not run away.
  bool store_congested() const { return held_bytes_ > config_.store_backlog_limit; }
  uint64_t store_backlog_bytes() const { return held_bytes_; }
  void wait_for_store(Connection* c) { store_waiters_.insert(c); }
  void forget_store_waiter(Connection* c) { store_waiters_.erase(c); }
  // Resource alarms (memory high watermark, disk free limit, failed store).
  bool alarmed() const { return memory_alarm_ || disk_alarm_; }
  std::string alarm_reason() const;
  bool memory_alarm() const { return memory_alarm_; }
  bool disk_alarm() const { return disk_alarm_; }
  // As of the last alarm check: resident memory, its high watermark, free disk bytes.
  uint64_t mem_used() const { return mem_used_; }
  uint64_t mem_limit() const { return mem_limit_; }
  uint64_t disk_free() const { return disk_free_; }
  int64_t started_at_ms() const { return started_at_ms_; }
  // Re-evaluates the alarms now (the tick does it periodically).
  void check_alarms();
  // Rebuilds durable exchanges, queues, bindings and messages from the store.
  void recover(persistence::Recovered r);
  // Starts the periodic tick (consumer timeouts).
  void start_tick();

  // Direct reply-to: "amq.rabbitmq.reply-to.<token>" names a channel's reply consumer.
  std::string register_reply_channel(Channel* ch);
  void unregister_reply_channel(const std::string& token);
  Channel* find_reply_channel(std::string_view token) const;

  const common::Config& config() const { return config_; }
  auth::UserStore& users() { return users_; }

  VHost* find_vhost(std::string_view name);
  VHost& add_vhost(const std::string& name);
  const std::map<std::string, std::unique_ptr<VHost>, std::less<>>& vhosts() const {
    return vhosts_;
  }

  // ---- Access control (broker/broker_access.cpp). Each change is persisted and takes
  // effect at once: permission checks see it on the next operation, and deleting a user or
  // a vhost closes its connections with 320 CONNECTION_FORCED as RabbitMQ does.
  struct VHostInfo {
    std::string description;
    std::vector<std::string> tags;
    std::map<std::string, int64_t, std::less<>> limits;  // "max-connections", "max-queues"
  };
  const VHostInfo* vhost_info(std::string_view name) const;
  // Creates the vhost (true) or updates its description and tags (false).
  bool put_vhost(const std::string& name, std::string description, std::vector<std::string> tags);
  // Closes its connections, deletes its queues, exchanges, permissions and limits.
  bool delete_vhost(const std::string& name);
  void put_user(auth::User u);
  bool delete_user(const std::string& name);
  void set_permission(const std::string& user, const std::string& vhost, auth::Permission p);
  bool clear_permission(const std::string& user, const std::string& vhost);
  void set_topic_permission(const std::string& user, const std::string& vhost,
                            const std::string& exchange, auth::TopicPermission p);
  size_t clear_topic_permissions(const std::string& user, const std::string& vhost,
                                 const std::string& exchange);
  // A negative value means "no limit", as in RabbitMQ.
  void set_vhost_limit(const std::string& vhost, const std::string& name, int64_t value);
  bool clear_vhost_limit(const std::string& vhost, const std::string& name);
  // The limit when set and not negative.
  std::optional<int64_t> vhost_limit(std::string_view vhost, std::string_view name) const;
  // Policies and operator policies of a vhost (which must exist): set (true when new) or
  // clear, persisted and applied at once to the vhost's queues and exchanges.
  bool set_policy(const std::string& vhost, Policy p, bool operator_policy);
  bool clear_policy(const std::string& vhost, const std::string& name, bool operator_policy);
  // Whether `user` may `access` the resource named `name` in `vhost` (RabbitMQ's
  // configure/write/read regexes; no permission in the vhost means no access).
  bool permitted(std::string_view user, std::string_view vhost, auth::Access access,
                 std::string_view name) const;
  auth::LoginThrottle& login_throttle() { return login_throttle_; }
  // Closes, with 320 CONNECTION_FORCED and `reason`, each open connection `pred` selects.
  template <typename Pred>
  void close_connections_if(Pred pred, const std::string& reason) {
    std::vector<Connection*> picked;
    for (Connection* c : connections_)
      if (pred(*c)) picked.push_back(c);
    close_connections(picked, reason);
  }

  void register_connection(Connection* c) {
    connections_.insert(c);
    ++churn_.connections_opened;
  }
  void unregister_connection(Connection* c) {
    if (connections_.erase(c)) ++churn_.connections_closed;
  }
  const std::set<Connection*>& connections() const { return connections_; }
  // Closes every connection with 320 CONNECTION_FORCED (shutdown).
  void close_all_connections(const std::string& reason);
  // Drops every socket and cancels every timer, so that running the executor to completion
  // releases everything that refers to the broker (call before destroying it).
  void shutdown();

  // "amq.gen-XXXXXXXXXXXXXXXXXXXXXX" / "amq.ctag-..." names: prefix, '-', 22 base64url chars.
  std::string generate_name(std::string_view prefix);

 private:
  // Declared first so they are destroyed last: queues and connections own timers that
  // must go before the io_context whose timer service they use.
  std::unique_ptr<boost::asio::io_context> own_io_;
  boost::asio::any_io_executor executor_;
  common::Config config_;
  auth::UserStore users_;
  std::map<std::string, std::unique_ptr<VHost>, std::less<>> vhosts_;
  std::set<Connection*> connections_;
  std::mt19937_64 rng_;
  std::unique_ptr<boost::asio::steady_timer> tick_timer_;
  std::unordered_map<std::string, Channel*> reply_channels_;
  persistence::Store* store_ = nullptr;
  bool recovering_ = false;
  uint64_t store_writes_ = 0;
  MessageStats stats_;
  Churn churn_;
  int64_t last_stats_sample_ = 0;
  uint64_t last_message_id_ = 0;
  std::vector<MessagePtr> in_flight_;
  uint64_t in_flight_bytes_ = 0;  // of in_flight_
  uint64_t held_bytes_ = 0;       // of every message held until a commit
  std::set<Connection*> store_waiters_;
  void release_store_waiters();
  bool memory_alarm_ = false;
  bool memory_pressure_ = false;
  bool disk_alarm_ = false;
  uint64_t mem_used_ = 0, mem_limit_ = 0, disk_free_ = 0;
  int64_t started_at_ms_ = now_ms();
  int64_t last_alarm_check_ = 0;
  void tick();

  void close_connections(const std::vector<Connection*>& picked, const std::string& reason);
  // Recovery of the access data, or the defaults on a data directory that has none yet.
  void recover_access(const persistence::RecoveredAccess& a);
  void seed_default_access();
  bool seed_pending_ = false;  // recover() found no access data; written once a store is set
  std::map<std::string, VHostInfo, std::less<>> vhost_info_;
  auth::LoginThrottle login_throttle_;
  // Deleted vhosts are kept (empty) until the broker goes: connections being closed and
  // late timer callbacks may still hold pointers to them.
  std::vector<std::unique_ptr<VHost>> deleted_vhosts_;
};

}  // namespace warren::broker
