// Fanout exchange: a message goes to every bound destination, whatever its key.
#pragma once

#include "exchange/exchange.h"

namespace warren::exchange {

class FanoutExchange : public ExchangeType {
 public:
  void bind(const Binding& b) override;
  void unbind(const Binding& b) override;
  void route(const RoutingInput& in, std::vector<Destination>& out) const override;

 private:
  // One entry per binding; a destination bound twice (two keys) appears twice.
  std::vector<Destination> destinations_;
};

}  // namespace warren::exchange
