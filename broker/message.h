// Message: one published message, shared by every queue it was routed to.
//
// Immutable after routing and never copied: queues, unacked lists and outbound write
// buffers hold references. A dead-lettered copy gets new properties but shares the body of
// the original through `body_owner`. The count is not atomic: a message lives on one shard
// (N=1 for now); a cross-shard hand-off must switch this to an atomic counter.
#pragma once

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/properties.h"

namespace warren::broker {

struct Message;
using MessagePtr = boost::intrusive_ptr<Message>;

struct Message : boost::intrusive_ref_counter<Message, boost::thread_unsafe_counter> {
  std::string exchange;
  std::string routing_key;
  std::string properties;  // raw property bytes exactly as published
  std::string body_storage;
  MessagePtr body_owner;   // set when the body lives in another message
  amqp::PropertySummary summary;
  int64_t ttl_ms = -1;     // the expiration property, parsed; -1 = none
  uint64_t store_id = 0;   // id in the durable store; 0 = not stored
  // Id of its row when a queue paged it out as swap space (a transient message or a
  // non-durable queue); 0 = never paged. Separate from store_id: that row is durable state.
  uint64_t swap_id = 0;

  // A message read back from the store (recovery, paging, delayed messages).
  static MessagePtr rebuild(std::string exchange, std::string routing_key, std::string properties,
                            std::string body, uint64_t store_id = 0) {
    MessagePtr m(new Message);
    m->exchange = std::move(exchange);
    m->routing_key = std::move(routing_key);
    m->properties = std::move(properties);
    m->body_storage = std::move(body);
    m->store_id = store_id;
    try {
      m->summary = amqp::summarize_properties(m->properties);
    } catch (const amqp::DecodeError&) {
      // Stored as published; a property table RabbitMQ would refuse never got this far.
    }
    return m;
  }

  std::string_view body() const {
    return body_owner ? body_owner->body() : std::string_view(body_storage);
  }
  size_t body_size() const { return body().size(); }
};

}  // namespace warren::broker
