// ExchangeType: the routing algorithm of one exchange, and the registry of types by name.
//
// Pure in-memory and single-threaded: the topology owner mutates bindings, routing reads
// them. route() appends destinations (queues or exchanges, by id) and may repeat one; the
// broker removes duplicates. New types (x-consistent-hash, x-delayed-message, ...) register
// a factory under their type name.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/field_table.h"

namespace warren::exchange {

// A queue or an exchange, by the id the broker gave it.
struct Destination {
  uint32_t id = 0;
  bool is_exchange = false;
  bool operator==(const Destination&) const = default;
  auto operator<=>(const Destination&) const = default;
};

struct Binding {
  Destination destination;
  std::string routing_key;
  amqp::FieldTable arguments;
  bool operator==(const Binding& o) const {
    return destination == o.destination && routing_key == o.routing_key &&
           arguments == o.arguments;
  }
};

// What routing may look at. Headers are decoded only when a type asks for them.
struct RoutingInput {
  std::string_view routing_key;
  std::string_view raw_properties;  // the message's property bytes, undecoded
  // Decodes the message's headers on first use; nullptr result means no headers.
  std::function<const amqp::FieldTable*()> headers;
};

class ExchangeType {
 public:
  virtual ~ExchangeType() = default;
  // Adds a binding; the caller has already checked that it is not present.
  virtual void bind(const Binding& b) = 0;
  virtual void unbind(const Binding& b) = 0;
  virtual void route(const RoutingInput& in, std::vector<Destination>& out) const = 0;
  // Validates binding arguments; returns an error text (406) or empty.
  virtual std::string validate_binding(const Binding&) const { return {}; }
  // Takes the exchange's declaration arguments; returns an error text (406) or empty.
  virtual std::string configure(const amqp::FieldTable&) { return {}; }
};

using ExchangeFactory = std::function<std::unique_ptr<ExchangeType>()>;

// Exchange types by name ("direct", "fanout", "topic", "headers").
class Registry {
 public:
  // A registry holding the built-in types.
  static Registry& builtin();
  void add(std::string name, ExchangeFactory factory);
  // nullptr when the type is unknown.
  std::unique_ptr<ExchangeType> create(std::string_view name) const;
  bool has(std::string_view name) const;

 private:
  std::map<std::string, ExchangeFactory, std::less<>> factories_;
};

}  // namespace warren::exchange
