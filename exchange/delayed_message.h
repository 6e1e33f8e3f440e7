// x-delayed-message: routes like the type named by its `x-delayed-type` argument, after the
// delay in a message's `x-delay` header (milliseconds), as RabbitMQ's
// rabbitmq_delayed_message_exchange plugin does. This type only routes; holding messages
// until they are due is the vhost's job (VHost::route_delayed).
#pragma once

#include <memory>

#include "exchange/exchange.h"

namespace warren::exchange {

class DelayedMessageExchange : public ExchangeType {
 public:
  void bind(const Binding& b) override { inner_->bind(b); }
  void unbind(const Binding& b) override { inner_->unbind(b); }
  void route(const RoutingInput& in, std::vector<Destination>& out) const override {
    inner_->route(in, out);
  }
  std::string validate_binding(const Binding& b) const override {
    return inner_->validate_binding(b);
  }
  std::string configure(const amqp::FieldTable& args) override;

 private:
  std::unique_ptr<ExchangeType> inner_;
};

}  // namespace warren::exchange
