// Queue: an ordered store of ready messages and the consumers that drain it.
//
// Owned by its VHost (shared via QueuePtr so unacked entries can outlive a deletion); runs
// on the queue's home shard. Invariants: `ready_` is sorted by `seq`; a requeued message
// goes back to its original position; each entry is either ready here or unacked on
// exactly one channel. Storage is in memory; a durable store attaches behind enqueue/ack.
#pragma once

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "amqp/field_table.h"
#include "broker/message.h"

namespace warren::broker {

class Channel;
class Connection;
class VHost;
struct Consumer;

struct QueueEntry {
  MessagePtr message;
  uint64_t seq = 0;  // position in the queue, kept across requeues
  bool redelivered = false;
};

class Queue : public boost::intrusive_ref_counter<Queue, boost::thread_unsafe_counter> {
 public:
  Queue(VHost& vhost, uint32_t id, std::string name, bool durable, bool exclusive,
        bool auto_delete, amqp::FieldTable arguments, Connection* owner);

  const std::string& name() const { return name_; }
  uint32_t id() const { return id_; }
  VHost& vhost() const { return *vhost_; }
  bool durable() const { return durable_; }
  bool exclusive() const { return exclusive_; }
  bool auto_delete() const { return auto_delete_; }
  const amqp::FieldTable& arguments() const { return arguments_; }
  Connection* owner() const { return owner_; }
  bool deleted() const { return deleted_; }

  size_t ready_count() const { return ready_.size(); }
  size_t unacked_count() const { return unacked_; }
  size_t consumer_count() const { return consumers_.size(); }
  const std::vector<Consumer*>& consumers() const { return consumers_; }

  void enqueue(MessagePtr m);
  // Puts a message delivered earlier back at its original position, marked redelivered.
  void requeue(QueueEntry e);
  // Called when a delivered message is acked or dropped by its channel.
  void settle(size_t n = 1) { unacked_ -= n; }
  // Removes and returns the head for basic.get (counted as unacked when `ack_required`).
  std::optional<QueueEntry> get(bool ack_required);
  size_t purge();

  void add_consumer(Consumer* c);
  void remove_consumer(Consumer* c);
  bool has_exclusive_consumer() const;
  // Delivers ready messages to consumers with credit, round-robin.
  void dispatch();

  // Marks the queue deleted and cancels its consumers (the VHost removes it from its maps).
  // Returns the number of ready messages dropped.
  size_t mark_deleted();
  bool ever_had_consumer() const { return had_consumer_; }

 private:
  VHost* vhost_;
  uint32_t id_;
  std::string name_;
  bool durable_;
  bool exclusive_;
  bool auto_delete_;
  amqp::FieldTable arguments_;
  Connection* owner_;
  bool deleted_ = false;
  bool had_consumer_ = false;
  bool dispatching_ = false;

  std::deque<QueueEntry> ready_;
  uint64_t next_seq_ = 1;
  size_t unacked_ = 0;
  std::vector<Consumer*> consumers_;
  size_t next_consumer_ = 0;
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
  bool cancelled = false;
  amqp::FieldTable arguments;
};

using ConsumerPtr = boost::intrusive_ptr<Consumer>;

}  // namespace warren::broker
