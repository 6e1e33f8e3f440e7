// Headers exchange: matches message headers against binding arguments.
//
// x-match = all (default) | any | all-with-x | any-with-x. Keys starting with "x-" are
// ignored unless the -with-x variants are used; a binding value of type void matches any
// value of that header (RabbitMQ's rabbit_exchange_type_headers).
#pragma once

#include "exchange/exchange.h"

namespace warren::exchange {

class HeadersExchange : public ExchangeType {
 public:
  void bind(const Binding& b) override;
  void unbind(const Binding& b) override;
  void route(const RoutingInput& in, std::vector<Destination>& out) const override;
  std::string validate_binding(const Binding& b) const override;

  // True when `headers` (may be null) satisfy binding arguments `args`.
  static bool matches(const amqp::FieldTable& args, const amqp::FieldTable* headers);

 private:
  std::vector<Binding> bindings_;
};

}  // namespace warren::exchange
