// Topic exchange: dot-separated words; '*' matches one word, '#' zero or more.
//
// Bindings live in a trie of words, so routing cost follows the key's length and the
// patterns that can match it, not the number of bindings (100k bindings stay fast).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "exchange/exchange.h"

namespace warren::exchange {

class TopicExchange : public ExchangeType {
 public:
  TopicExchange();
  ~TopicExchange() override;
  void bind(const Binding& b) override;
  void unbind(const Binding& b) override;
  void route(const RoutingInput& in, std::vector<Destination>& out) const override;

 private:
  struct Node;
  void match(const Node& node, const std::vector<std::string_view>& words, size_t i,
             std::vector<Destination>& out) const;
  std::unique_ptr<Node> root_;
};

}  // namespace warren::exchange
