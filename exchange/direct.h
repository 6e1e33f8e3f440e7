// Direct exchange: a message goes to the bindings whose key equals its routing key.
#pragma once

#include <unordered_map>

#include "exchange/exchange.h"

namespace warren::exchange {

class DirectExchange : public ExchangeType {
 public:
  void bind(const Binding& b) override;
  void unbind(const Binding& b) override;
  void route(const RoutingInput& in, std::vector<Destination>& out) const override;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<Destination>, Hash, std::equal_to<>> by_key_;
};

}  // namespace warren::exchange
