// Queue: an ordered store of ready messages and the consumers that drain it, with
// RabbitMQ's queue arguments (TTL, expiry, length limits, dead-lettering, priorities,
// single active consumer).
//
// Owned by its VHost (shared via QueuePtr so unacked entries and timers can outlive a
// deletion); runs on the queue's home shard. Invariants: within one priority, entries are
// sorted by `seq`; a requeued message goes back to its original position; each entry is
// either ready here or unacked on exactly one channel; ready_bytes_ is the sum of the ready
// bodies.
//
// Paging (RabbitMQ's lazy queues): with a store attached, a queue whose ready bodies in
// memory pass its memory limit (`queue_memory_limit`, 0 with x-queue-mode=lazy, smaller under
// memory pressure) keeps the rest only in SQLite: the tail of the queue (every seq from
// paged_from_seq_ on) is paged out, new messages go straight to the store while any are
// paged, and batches are read back in order as consumers drain the head. Invariant: every
// ready in-memory entry and every delivered-but-unacked entry has seq < paged_from_seq_
// (page-out only takes ready entries above max_handed_seq_). Priority queues and queues with
// length limits are not paged.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "amqp/field_table.h"
#include "broker/message.h"
#include "broker/message_stats.h"
#include "persistence/store.h"

namespace warren::broker {

class Channel;
struct Policy;
class Connection;
class VHost;
struct Consumer;

// Milliseconds on the steady clock.
int64_t now_ms();
// Milliseconds on the wall clock (deadlines that must survive a restart), and conversions of
// a deadline between the two clocks.
int64_t unix_ms();
int64_t steady_to_unix_ms(int64_t steady_ms);
int64_t unix_to_steady_ms(int64_t unix_ms);

struct QueueEntry {
  MessagePtr message;
  uint64_t seq = 0;  // position in the queue, kept across requeues
  int64_t expires_at = 0;  // steady ms; 0 = never
  uint8_t priority = 0;
  bool redelivered = false;
};

enum class Overflow { kDropHead, kRejectPublish, kRejectPublishDlx };
Overflow parse_overflow(std::string_view o);

// The queue arguments RabbitMQ gives meaning to, parsed once at declaration.
struct QueueSettings {
  std::optional<int64_t> message_ttl;  // x-message-ttl
  std::optional<int64_t> expires;      // x-expires
  std::optional<int64_t> max_length;   // x-max-length
  std::optional<int64_t> max_length_bytes;
  Overflow overflow = Overflow::kDropHead;
  std::optional<std::string> dead_letter_exchange;
  std::optional<std::string> dead_letter_routing_key;
  uint8_t max_priority = 0;  // 0 = not a priority queue
  bool single_active_consumer = false;
  bool lazy = false;  // x-queue-mode=lazy: keep as little as possible in memory

  static QueueSettings from_arguments(const amqp::FieldTable& args);
};

// Why a message was dead-lettered (the x-death "reason").
enum class DeathReason { kRejected, kExpired, kMaxLen };
std::string_view death_reason_name(DeathReason r);

class Queue : public boost::intrusive_ref_counter<Queue, boost::thread_unsafe_counter> {
 public:
  Queue(VHost& vhost, uint32_t id, std::string name, bool durable, bool exclusive,
        bool auto_delete, amqp::FieldTable arguments, Connection* owner);
  ~Queue();

  const std::string& name() const { return name_; }
  uint32_t id() const { return id_; }
  VHost& vhost() const { return *vhost_; }
  bool durable() const { return durable_; }
  bool exclusive() const { return exclusive_; }
  bool auto_delete() const { return auto_delete_; }
  const amqp::FieldTable& arguments() const { return arguments_; }
  // Effective settings: the arguments, with the winning policy and operator policy applied.
  const QueueSettings& settings() const { return settings_; }
  void apply_policies(const Policy* policy, const Policy* operator_policy);
  const std::string& policy_name() const { return policy_name_; }
  const std::string& operator_policy_name() const { return operator_policy_name_; }
  Connection* owner() const { return owner_; }
  bool deleted() const { return deleted_; }

  // Ready messages, in memory and paged out.
  size_t ready_count() const { return ready_count_ + paged_count_; }
  uint64_t ready_bytes() const { return ready_bytes_ + paged_bytes_; }
  size_t paged_count() const { return paged_count_; }
  // What the ready messages held in memory cost: bodies plus a per-message allowance for the
  // Message, its strings and the queue entry. Paging decisions use this, not bodies alone,
  // so a queue of tiny messages is bounded too.
  static constexpr uint64_t kEntryOverhead = 320;
  uint64_t memory_bytes() const { return ready_bytes_ + ready_count_ * kEntryOverhead; }
  size_t unacked_count() const { return unacked_; }
  // Message counters and rates (RabbitMQ's per-queue message_stats), and the rates of
  // change of its length, sampled by Broker's statistics tick.
  MessageStats& stats() { return stats_; }
  const MessageStats& stats() const { return stats_; }
  void sample_stats(double seconds) {
    stats_.sample(seconds);
    ready_rate_.sample(static_cast<int64_t>(ready_count()), seconds);
    unacked_rate_.sample(static_cast<int64_t>(unacked_), seconds);
  }
  double messages_rate() const { return ready_rate_.rate + unacked_rate_.rate; }
  double ready_rate() const { return ready_rate_.rate; }
  double unacked_rate() const { return unacked_rate_.rate; }
  size_t consumer_count() const { return consumers_.size(); }
  const std::vector<Consumer*>& consumers() const { return consumers_; }

  // Adds a message. Returns false when the queue refused it (x-overflow reject-publish or
  // reject-publish-dlx with the queue full); the publisher's confirm becomes a nack.
  bool enqueue(MessagePtr m);
  // Puts a message delivered earlier back at its original position, marked redelivered.
  void requeue(QueueEntry e);
  // A delivered message was acked: it leaves the queue (and the store).
  void ack(QueueEntry& e);
  // Recovery: appends a stored message at its stored position.
  void restore(const MessagePtr& m, uint64_t seq, bool delivered, int64_t expires_unix_ms = 0);
  // Recovery: the stored entries from `from_seq` on (`count` of them) stay paged out.
  void restore_paged(uint64_t count, uint64_t bytes, uint64_t from_seq, uint64_t max_seq);
  // Pages out ready messages from the tail until at most `keep_bytes` of bodies stay in
  // memory (memory pressure). Returns the bytes paged out.
  uint64_t page_out_to(uint64_t keep_bytes);
  bool pageable() const;

  // Flow control for queues being consumed (RabbitMQ's credit flow, in effect): once the
  // ready messages in memory pass kFlowHigh while consumers are taking messages, publishers
  // to this queue are paused until it drains under kFlowLow. A queue nobody consumes from
  // pages instead, so publishers are not held back by a backlog that is meant to grow.
  static constexpr uint64_t kFlowHigh = 8u << 20;
  static constexpr uint64_t kFlowLow = 4u << 20;
  bool publishers_should_wait() const;
  void add_flow_waiter(Connection* c);
  void forget_flow_waiter(Connection* c);
  // A delivered message was rejected without requeue: dead-letter it ("rejected").
  void reject(QueueEntry e);
  // Removes and returns the head for basic.get (counted as unacked when `ack_required`).
  std::optional<QueueEntry> get(bool ack_required);
  // The head is paged out and on its way back: basic.get must wait. `f` runs once the next
  // batch is in memory (or the paged part is gone).
  bool head_paged_out() const { return ready_count_ == 0 && paged_count_ > 0; }
  void when_loaded(std::function<void()> f);
  size_t purge();

  void add_consumer(Consumer* c);
  void remove_consumer(Consumer* c);
  bool has_exclusive_consumer() const;
  // Delivers ready messages to consumers with credit: highest consumer priority first,
  // round-robin within a priority; only the active consumer with x-single-active-consumer.
  void dispatch();

  // Redeclaration, basic.get and consumer changes count as use (x-expires).
  void touch();
  void cancel_timers();

  // Marks the queue deleted and cancels its consumers (the VHost removes it from its maps).
  // Returns the number of ready messages dropped.
  size_t mark_deleted();
  bool ever_had_consumer() const { return had_consumer_; }

 private:
  bool empty() const { return ready_count_ == 0; }
  QueueEntry& head();
  QueueEntry pop_head();
  void push(QueueEntry e);
  // Drops (and dead-letters) expired messages at the head; arms the TTL timer for the next.
  void expire_head(int64_t now);
  void arm_ttl_timer();
  void arm_expiry_timer();
  void enforce_limits();
  bool over_limits(size_t extra_count, uint64_t extra_bytes) const;
  void dead_letter(QueueEntry& e, DeathReason reason);
  // Durable queue + persistent message: the message is in the store.
  bool stores(const Message& m) const { return durable_ && m.summary.persistent; }
  void forget(const QueueEntry& e);         // removes a stored entry
  void note_delivered(const QueueEntry& e);  // records a first delivery of a stored entry
  Consumer* pick_consumer();
  uint64_t memory_limit() const;
  // Writes one ready entry to the store as paged out and counts it there.
  void page_out(QueueEntry& e);
  // Reads the next batch back when the in-memory head runs low.
  void maybe_load();
  void loaded(std::vector<persistence::LoadedEntry> entries);
  // Forgets the paged-out part (purge, delete) and removes it from the store.
  void drop_paged();
  // Takes an entry out of the ready counts (it left the in-memory deques).
  void uncount(const QueueEntry& e);

  VHost* vhost_;
  uint32_t id_;
  std::string name_;
  bool durable_;
  bool exclusive_;
  bool auto_delete_;
  amqp::FieldTable arguments_;
  QueueSettings settings_;
  std::string policy_name_;
  std::string operator_policy_name_;
  Connection* owner_;
  bool deleted_ = false;
  bool had_consumer_ = false;
  bool dispatching_ = false;

  // One deque per priority (just one without x-max-priority); highest index first.
  std::vector<std::deque<QueueEntry>> ready_;
  // The queue's identity for store operations, shared by all of them.
  persistence::QueueRef store_key_;
  size_t ready_count_ = 0;
  uint64_t ready_bytes_ = 0;
  size_t entries_with_expiry_ = 0;
  uint64_t next_seq_ = 1;
  size_t unacked_ = 0;
  MessageStats stats_;
  GaugeRate ready_rate_, unacked_rate_;
  std::vector<Consumer*> consumers_;  // in registration order
  size_t next_consumer_ = 0;

  // Paging (see the header comment).
  uint64_t memory_limit_ = 0;
  size_t paged_count_ = 0;
  uint64_t paged_bytes_ = 0;
  uint64_t paged_from_seq_ = 0;
  uint64_t max_handed_seq_ = 0;  // highest seq ever handed to a consumer or basic.get
  bool loading_ = false;
  int64_t last_delivery_ms_ = 0;
  std::vector<Connection*> flow_waiters_;
  void release_flow_waiters();
  std::vector<std::function<void()>> load_waiters_;
  uint64_t page_epoch_ = 0;  // bumped by purge/delete: a load in flight is stale

  std::unique_ptr<boost::asio::steady_timer> ttl_timer_;
  int64_t ttl_timer_at_ = 0;
  std::unique_ptr<boost::asio::steady_timer> expiry_timer_;
  int64_t last_used_ = 0;
};

using QueuePtr = boost::intrusive_ptr<Queue>;

// A basic.consume subscription. Owned by its Channel; the queue holds a plain pointer while
// the consumer is registered.
struct Consumer : boost::intrusive_ref_counter<Consumer, boost::thread_unsafe_counter> {
  std::string tag;
  Channel* channel = nullptr;
  QueuePtr queue;
  bool no_ack = false;
  bool exclusive = false;
  uint32_t prefetch = 0;  // 0 = unlimited (basic.qos global=false at consume time)
  uint32_t unacked = 0;
  int32_t priority = 0;   // x-priority
  bool cancelled = false;
  amqp::FieldTable arguments;
};

using ConsumerPtr = boost::intrusive_ptr<Consumer>;

}  // namespace warren::broker
