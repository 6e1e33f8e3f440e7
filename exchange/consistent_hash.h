// x-consistent-hash: spreads messages over bound destinations by a hash of the routing key
// (or of a header, `hash-header`, or a property, `hash-property`), as RabbitMQ's
// rabbitmq_consistent_hash_exchange plugin does. A binding's key is its weight: the number of
// points it gets on the hash ring. The same key always reaches the same destination while
// the bindings stay the same.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "exchange/exchange.h"

namespace warren::exchange {

class ConsistentHashExchange : public ExchangeType {
 public:
  void bind(const Binding& b) override;
  void unbind(const Binding& b) override;
  void route(const RoutingInput& in, std::vector<Destination>& out) const override;
  std::string validate_binding(const Binding& b) const override;
  std::string configure(const amqp::FieldTable& args) override;

  static uint32_t hash(std::string_view s);
  static constexpr int kPointsPerWeight = 64;

 private:
  void rebuild();
  std::vector<Binding> bindings_;
  std::vector<std::pair<uint32_t, Destination>> ring_;  // sorted by point
  std::string hash_header_;
  std::string hash_property_;
};

}  // namespace warren::exchange
