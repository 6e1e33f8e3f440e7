// Message: one published message, shared by every queue it was routed to.
//
// Immutable after routing and never copied: queues, unacked lists and outbound write
// buffers hold references. The count is not atomic: a message lives on one shard (N=1 for
// now); a cross-shard hand-off must switch this to an atomic counter.
#pragma once

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <cstdint>
#include <string>

#include "amqp/properties.h"

namespace warren::broker {

struct Message : boost::intrusive_ref_counter<Message, boost::thread_unsafe_counter> {
  std::string exchange;
  std::string routing_key;
  std::string properties;  // raw property bytes exactly as published
  std::string body;
  amqp::PropertySummary summary;

  size_t body_size() const { return body.size(); }
};

using MessagePtr = boost::intrusive_ptr<Message>;

}  // namespace warren::broker
