// Channel: one AMQP channel's state machine — commands, consumers, unacked deliveries,
// prefetch, confirms and transactions.
//
// Owned by its Connection, on the connection's shard thread. Protocol faults are thrown as
// amqp::ChannelError / ConnectionError and caught by the Connection. Invariants: unacked_
// is sorted by delivery tag; `unacked_live_` counts its unsettled entries; each consumer's
// `unacked` counts its unsettled entries.
#pragma once

#include <cstdint>
#include <boost/container/deque.hpp>
#include <deque>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "amqp/command_assembler.h"
#include "amqp/methods.h"
#include "auth/permission.h"
#include "broker/queue.h"

namespace warren::broker {

class Connection;
class VHost;
struct Exchange;

// queue.declare's argument checks, shared with the management API: RabbitMQ's 406 text for
// the first bad argument of a queue described by `where` ("queue 'q' in vhost '/'"), or "".
std::string queue_arguments_error(const amqp::FieldTable& args, const std::string& where);
// Sender-selected distribution: appends the routing keys of the CC and BCC headers to `keys`
// and removes BCC from the message's properties (the message must not be shared yet).
// Throws ChannelError (406) for a CC or BCC header that is not an array, as RabbitMQ.
void sender_selected_keys(Message& msg, std::vector<std::string>& keys);
// The expiration property: a non-negative integer of milliseconds, as RabbitMQ's
// rabbit_basic:parse_expiration reads it; anything else throws ChannelError (406).
int64_t parse_expiration(std::string_view s);
// Throws ChannelError (406) when a redeclaration's arguments differ from the queue's.
void check_equivalent_args(const amqp::FieldTable& current, const amqp::FieldTable& received,
                           const std::string& what);

class Channel {
 public:
  enum class State { kOpen, kClosing };

  Channel(Connection& conn, uint16_t id);
  ~Channel();

  uint16_t id() const { return id_; }
  State state() const { return state_; }
  amqp::CommandAssembler& assembler() { return assembler_; }
  Connection& connection() { return conn_; }

  // Handles one complete command. Throws ChannelError / ConnectionError.
  void handle(amqp::Command& cmd);
  // Sends channel.close for `e` and drops frames until close-ok.
  void begin_close(const amqp::AmqpError& e);
  // Requeues unacked messages and cancels consumers (channel or connection closed).
  void release();

  // Queue -> channel: may this consumer take a message now?
  bool can_deliver(const Consumer& c) const;
  void deliver(Consumer& c, Queue& q, QueueEntry e);
  // The consumer's queue was deleted: forget the consumer and tell the client.
  void consumer_cancelled_by_queue(Consumer& c);
  // Sends deferred publisher confirms.
  void flush_confirms();
  // Re-runs dispatch on the queues this channel consumes from (credit came back).
  void kick_consumers();

  size_t unacked_count() const { return unacked_live_; }
  // RabbitMQ's per-channel message_stats.
  MessageStats& stats() { return stats_; }
  // Management (/api/channels, /api/consumers).
  const std::map<std::string, ConsumerPtr, std::less<>>& consumers() const { return consumers_; }
  uint32_t consumer_prefetch() const { return consumer_prefetch_; }
  uint32_t channel_prefetch() const { return channel_prefetch_; }
  bool confirm_mode() const { return confirm_mode_; }
  bool tx_mode() const { return tx_mode_; }
  // Closes the channel (406) when its oldest unacked delivery is older than consumer_timeout.
  void check_consumer_timeout(int64_t now);
  // Direct reply-to: a reply published to this channel's "amq.rabbitmq.reply-to.<token>".
  void deliver_reply(const MessagePtr& m, std::string_view routing_key);

 private:
  // Counts `f` for this channel, the broker and, when given, the queue.
  void count(MessageStats::Field f, Queue* q = nullptr, uint64_t n = 1);
  MessageStats stats_;
  struct Unacked {
    uint64_t tag = 0;
    QueuePtr queue;
    QueueEntry entry;
    ConsumerPtr consumer;  // null for basic.get
    int64_t delivered_at = 0;
    bool settled = false;
  };
  struct TxPublish {
    std::string exchange;
    std::string routing_key;
    bool mandatory = false;
    MessagePtr message;
  };
  enum class SettleKind { kAck, kReject };
  struct TxSettle {
    SettleKind kind;
    uint64_t tag;
    bool multiple;
    bool requeue;
  };

  // Sends a reply to a client method. When the method wrote durable state, the reply waits
  // for the commit (and so do later replies, to keep their order).
  template <typename M>
  void reply(const M& m) {
    const bool wait = conn_store_writes() != writes_at_command_;
    if (!wait && replies_.empty()) return send_now(m);
    std::string frame;
    amqp::write_method_frame(frame, id_, m);
    queue_reply(std::move(frame), wait);
  }
  template <typename M>
  void send_now(const M& m);
  uint64_t conn_store_writes() const;
  void queue_reply(std::string frame, bool wait_for_commit);
  void drain_replies();
  // Asks the store for a commit covering every persistent publish so far.
  void request_confirm_sync();

  void on_exchange_declare(const amqp::ExchangeDeclare& m);
  void on_exchange_delete(const amqp::ExchangeDelete& m);
  void on_exchange_bind(const amqp::ExchangeBind& m, bool bind);
  void on_queue_declare(const amqp::QueueDeclare& m);
  void on_queue_bind(const amqp::QueueBind& m);
  void on_queue_unbind(const amqp::QueueUnbind& m);
  void on_queue_purge(const amqp::QueuePurge& m);
  void on_queue_delete(const amqp::QueueDelete& m);
  void on_basic_qos(const amqp::BasicQos& m);
  void on_basic_consume(const amqp::BasicConsume& m);
  void on_basic_cancel(const amqp::BasicCancel& m);
  void on_basic_publish(const amqp::BasicPublish& m, amqp::Command& cmd);
  void on_basic_get(const amqp::BasicGet& m);
  void on_settle(SettleKind kind, uint64_t tag, bool multiple, bool requeue);
  void on_basic_recover(bool requeue);
  void on_tx_commit();
  void on_tx_rollback();

  VHost& vhost();
  // 403 ACCESS_REFUSED unless the user may `access` the `kind` ("queue", "exchange") named
  // `name` (broker/channel_access.cpp; the default exchange is checked as "amq.default").
  void check_access(auth::Access access, std::string_view kind, std::string_view name);
  // Topic permissions: on a topic exchange, the routing key must match the user's write
  // (publish) or read (bind, unbind) pattern for that exchange, when one is set.
  void check_topic_access(const Exchange& x, std::string_view routing_key, auth::Access access);
  // Resolves "" to the last declared queue, as RabbitMQ does.
  std::string queue_name_or_last(std::string_view name);
  Queue& queue_for(std::string_view name);  // 404 when missing, 405 when exclusive elsewhere
  Exchange& exchange_for(std::string_view name);  // 404 when missing
  void check_exclusive(const Queue& q);
  [[noreturn]] void throw_locked(const Queue& q);
  // Routes and enqueues one message; sends basic.return for unroutable mandatory ones.
  // Routes and enqueues one message (with CC/BCC and direct reply-to); returns false when a
  // queue refused it.
  bool publish(const std::string& exchange, const std::string& routing_key, bool mandatory,
               const MessagePtr& msg);
  void settle(SettleKind kind, uint64_t tag, bool multiple, bool requeue, bool check = true);
  void settle_one(Unacked& u, SettleKind kind, bool requeue);
  void cancel_consumer(const std::string& tag, bool notify_client);
  void trim_unacked();
  // The unsettled delivery with this tag, or end() / a 406 "unknown delivery tag".
  boost::container::deque<Unacked>::iterator find_unacked(uint64_t tag);
  boost::container::deque<Unacked>::iterator unacked_or_throw(uint64_t tag);
  // Lets each queue (once) deliver again after credit came back or messages were requeued.
  static void dispatch_each(std::vector<Queue*>& queues);
  // Returns false when any target queue refused the message (x-overflow reject-publish).
  bool route_and_enqueue(const std::string& exchange, const std::string& routing_key,
                         bool mandatory, const MessagePtr& msg);
  void record_confirm(bool ack, bool needs_commit);

  Connection& conn_;
  uint16_t id_;
  State state_ = State::kOpen;
  amqp::CommandAssembler assembler_;

  std::map<std::string, ConsumerPtr, std::less<>> consumers_;
  boost::container::deque<Unacked> unacked_;
  size_t unacked_live_ = 0;
  uint64_t next_delivery_tag_ = 1;
  uint32_t consumer_prefetch_ = 0;  // basic.qos global=false: for consumers created later
  uint32_t channel_prefetch_ = 0;   // basic.qos global=true: the whole channel
  std::string last_queue_;
  bool flow_active_ = true;

  bool confirm_mode_ = false;
  uint64_t next_publish_seq_ = 1;
  uint64_t confirmed_upto_ = 0;  // every seq <= this is ready to ack
  uint64_t acked_upto_ = 0;      // every seq <= this has been acked to the client
  std::vector<uint64_t> nacked_;  // seqs in (acked_upto_, confirmed_upto_] to nack, sorted

  std::string reply_tag_;    // consumer tag of the direct reply-to consumer, if any
  std::string reply_token_;  // its "amq.rabbitmq.reply-to.<token>"

  bool tx_mode_ = false;
  std::vector<TxPublish> tx_publishes_;
  std::vector<TxSettle> tx_settles_;

  std::vector<Queue*> route_scratch_;
  std::vector<Queue*> settle_scratch_;
  std::vector<ConsumerPtr> kick_scratch_;

  struct PendingReply {
    std::string frame;
    bool ready;
  };
  boost::container::deque<PendingReply> replies_;
  uint64_t writes_at_command_ = 0;
  // Publisher confirms of persistent messages wait for the commit that holds them.
  uint64_t need_sync_upto_ = 0;       // highest seq whose message went to the store
  uint64_t sync_requested_upto_ = 0;  // highest seq a requested commit covers
  uint64_t synced_upto_ = 0;          // every seq <= this is committed (or failed)
  // Expires with the channel, so late store callbacks can tell.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace warren::broker
