// VHost: the exchanges, queues and bindings of one virtual host, and publish routing.
//
// Topology owner for its vhost (single shard for now). Queues and exchanges get ids that
// the exchange layer routes to; names are unique per vhost.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "amqp/field_table.h"
#include "broker/policy.h"
#include "broker/queue.h"
#include "exchange/exchange.h"
#include "persistence/store.h"

namespace warren::broker {

class Broker;

struct ExchangeBinding {
  std::string source;
  exchange::Binding binding;
};

struct Exchange {
  uint32_t id = 0;
  std::string name;
  std::string type;
  bool durable = false;
  bool auto_delete = false;
  bool internal = false;
  amqp::FieldTable arguments;
  std::string alternate;  // alternate-exchange argument, or empty
  // From the winning policy (kept here so routing never matches patterns).
  std::string policy_name;
  std::string policy_alternate;
  std::unique_ptr<exchange::ExchangeType> impl;
  std::vector<exchange::Binding> bindings;  // bindings with this exchange as source
  size_t bound_as_destination = 0;
  MessageStats stats;  // publish (RabbitMQ's publish_in) and publish_out
};

class VHost {
 public:
  VHost(Broker& broker, std::string name);
  ~VHost();
  const std::string& name() const { return name_; }
  Broker& broker() const { return *broker_; }

  Exchange* find_exchange(std::string_view name);
  Exchange* exchange_by_id(uint32_t id);
  Queue* find_queue(std::string_view name);
  Queue* queue_by_id(uint32_t id);
  const std::map<std::string, std::unique_ptr<Exchange>, std::less<>>& exchanges() const {
    return exchanges_;
  }
  const std::map<std::string, QueuePtr, std::less<>>& queues() const { return queues_; }

  // REQUIRES: no exchange of that name; `type` is registered. Returns null and sets `error`
  // when the type refuses the arguments (406).
  Exchange* add_exchange(std::string name, std::string type, bool durable, bool auto_delete,
                         bool internal, amqp::FieldTable arguments, std::string* error = nullptr);
  // Removes the exchange and every binding it is source or destination of.
  void delete_exchange(Exchange& x);

  // REQUIRES: no queue of that name.
  Queue& add_queue(std::string name, bool durable, bool exclusive, bool auto_delete,
                   amqp::FieldTable arguments, Connection* owner);
  // Removes the queue and its bindings, cancels its consumers; returns ready messages dropped.
  size_t delete_queue(Queue& q);

  // Returns false when the binding already existed.
  bool bind(Exchange& source, exchange::Destination dest, std::string routing_key,
            amqp::FieldTable arguments);
  // Returns false when there was no such binding.
  bool unbind(Exchange& source, exchange::Destination dest, std::string_view routing_key,
              const amqp::FieldTable& arguments);

  // Republishes a message dropped by `q` to its dead-letter exchange, with the x-death
  // header as RabbitMQ writes it, dropping targets that would close a fully automatic cycle.
  void dead_letter(Queue& q, const MessagePtr& m, DeathReason reason);

  // An x-delayed-message exchange holds a message with a positive x-delay header until it
  // is due, then routes it. Returns true when the message was taken to be held.
  bool route_delayed(Exchange* x, const MessagePtr& m, const std::string& routing_key);
  // Recovery: a stored delayed message, due at `due_unix_ms` (wall clock).
  void restore_delayed(const persistence::StoredDelayed& d);

  // Policies (operator = true: operator policies). Setting or clearing one re-applies the
  // winning policy to every queue at once, as RabbitMQ does.
  void set_policy(Policy p, bool operator_policy = false);
  bool clear_policy(const std::string& name, bool operator_policy = false);
  const std::map<std::string, Policy>& policies(bool operator_policy = false) const {
    return operator_policy ? operator_policies_ : policies_;
  }
  // The highest-priority policy matching a queue or exchange name, or null.
  const Policy* effective_policy(const std::string& name, bool is_queue,
                                 bool operator_policy = false) const;
  void apply_policies(Queue& q);
  void apply_policies(Exchange& x);

  // Cancels the timers of the vhost and its queues (broker shutdown).
  void cancel_timers();

  // Routes a message from `x` (or the default exchange when x is null) into queues,
  // following exchange-to-exchange bindings and alternate exchanges. Fills `out` with each
  // target queue once.
  void route(Exchange* x, const Message& m, std::string_view routing_key,
             std::vector<Queue*>& out);

 private:
  void route_into(Exchange& x, const Message& m, std::string_view routing_key,
                  const exchange::RoutingInput& in, std::vector<Queue*>& out);
  void remove_bindings_to(exchange::Destination dest);
  persistence::StoredBinding stored_binding(const Exchange& source, const exchange::Binding& b);
  bool durable_binding(const Exchange& source, const exchange::Binding& b);
  void maybe_auto_delete(Exchange& x);

  Broker* broker_;
  std::string name_;
  std::map<std::string, Policy> policies_;
  std::map<std::string, Policy> operator_policies_;
  uint32_t next_id_ = 1;
  std::map<std::string, std::unique_ptr<Exchange>, std::less<>> exchanges_;
  std::map<std::string, QueuePtr, std::less<>> queues_;
  std::unordered_map<uint32_t, Exchange*> exchange_ids_;
  std::unordered_map<uint32_t, Queue*> queue_ids_;
  // Reused by every route() so publishing allocates nothing here once warmed up.
  std::vector<exchange::Destination> scratch_;
  std::vector<uint32_t> visited_;

  struct Delayed {
    std::string exchange;
    std::string routing_key;
    MessagePtr message;
    uint64_t store_id = 0;  // in the store while held (durable exchange)
  };
  void hold_delayed(int64_t due, Delayed d);
  void fire_delayed();
  std::multimap<int64_t, Delayed> delayed_;  // by due time (steady ms)
  std::unique_ptr<boost::asio::steady_timer> delayed_timer_;
};

}  // namespace warren::broker
