#include "exchange/exchange.h"

#include <algorithm>

#include "amqp/properties.h"
#include "exchange/consistent_hash.h"
#include "exchange/delayed_message.h"
#include "exchange/direct.h"
#include "exchange/fanout.h"
#include "exchange/headers.h"
#include "exchange/topic.h"

namespace warren::exchange {

Registry& Registry::builtin() {
  static Registry* r = [] {
    auto* reg = new Registry;
    reg->add("direct", [] { return std::make_unique<DirectExchange>(); });
    reg->add("fanout", [] { return std::make_unique<FanoutExchange>(); });
    reg->add("topic", [] { return std::make_unique<TopicExchange>(); });
    reg->add("headers", [] { return std::make_unique<HeadersExchange>(); });
    reg->add("x-consistent-hash", [] { return std::make_unique<ConsistentHashExchange>(); });
    reg->add("x-delayed-message", [] { return std::make_unique<DelayedMessageExchange>(); });
    return reg;
  }();
  return *r;
}

void Registry::add(std::string name, ExchangeFactory factory) {
  factories_[std::move(name)] = std::move(factory);
}

std::unique_ptr<ExchangeType> Registry::create(std::string_view name) const {
  auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : it->second();
}

bool Registry::has(std::string_view name) const { return factories_.find(name) != factories_.end(); }

// ---- direct ----
void DirectExchange::bind(const Binding& b) { by_key_[b.routing_key].push_back(b.destination); }

void DirectExchange::unbind(const Binding& b) {
  auto it = by_key_.find(b.routing_key);
  if (it == by_key_.end()) return;
  auto& v = it->second;
  auto pos = std::find(v.begin(), v.end(), b.destination);
  if (pos != v.end()) v.erase(pos);
  if (v.empty()) by_key_.erase(it);
}

void DirectExchange::route(const RoutingInput& in, std::vector<Destination>& out) const {
  auto it = by_key_.find(in.routing_key);
  if (it != by_key_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
}

// ---- fanout ----
void FanoutExchange::bind(const Binding& b) { destinations_.push_back(b.destination); }

void FanoutExchange::unbind(const Binding& b) {
  auto pos = std::find(destinations_.begin(), destinations_.end(), b.destination);
  if (pos != destinations_.end()) destinations_.erase(pos);
}

void FanoutExchange::route(const RoutingInput&, std::vector<Destination>& out) const {
  out.insert(out.end(), destinations_.begin(), destinations_.end());
}

// ---- topic ----
struct TopicExchange::Node {
  std::unordered_map<std::string, std::unique_ptr<Node>> children;
  std::vector<Destination> destinations;  // bindings whose pattern ends here
};

namespace {
// RabbitMQ splits on '.', except that the empty key has no words ("*" does not match it).
std::vector<std::string_view> split_words(std::string_view key) {
  std::vector<std::string_view> words;
  if (key.empty()) return words;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    if (dot == std::string_view::npos) {
      words.push_back(key.substr(start));
      break;
    }
    words.push_back(key.substr(start, dot - start));
    start = dot + 1;
  }
  return words;
}
}  // namespace

TopicExchange::TopicExchange() : root_(std::make_unique<Node>()) {}
TopicExchange::~TopicExchange() = default;

void TopicExchange::bind(const Binding& b) {
  Node* n = root_.get();
  for (std::string_view w : split_words(b.routing_key)) {
    auto& child = n->children[std::string(w)];
    if (!child) child = std::make_unique<Node>();
    n = child.get();
  }
  n->destinations.push_back(b.destination);
}

void TopicExchange::unbind(const Binding& b) {
  auto words = split_words(b.routing_key);
  std::vector<std::pair<Node*, std::string>> path;
  Node* n = root_.get();
  for (std::string_view w : words) {
    auto it = n->children.find(std::string(w));
    if (it == n->children.end()) return;
    path.emplace_back(n, std::string(w));
    n = it->second.get();
  }
  auto pos = std::find(n->destinations.begin(), n->destinations.end(), b.destination);
  if (pos != n->destinations.end()) n->destinations.erase(pos);
  // Prune empty nodes from the leaf up.
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    Node* parent = it->first;
    Node* child = parent->children[it->second].get();
    if (!child->destinations.empty() || !child->children.empty()) break;
    parent->children.erase(it->second);
  }
}

void TopicExchange::match(const Node& node, const std::vector<std::string_view>& words, size_t i,
                          std::vector<Destination>& out) const {
  if (i == words.size()) {
    out.insert(out.end(), node.destinations.begin(), node.destinations.end());
  }
  // '#' matches zero or more words: try every split point.
  if (auto it = node.children.find("#"); it != node.children.end()) {
    for (size_t j = i; j <= words.size(); ++j) match(*it->second, words, j, out);
  }
  if (i == words.size()) return;
  if (auto it = node.children.find("*"); it != node.children.end()) {
    match(*it->second, words, i + 1, out);
  }
  // Literal children; a '*' or '#' word in a routing key was matched by the wildcards above.
  if (words[i] != "*" && words[i] != "#") {
    if (auto it = node.children.find(std::string(words[i])); it != node.children.end()) {
      match(*it->second, words, i + 1, out);
    }
  }
}

void TopicExchange::route(const RoutingInput& in, std::vector<Destination>& out) const {
  const auto words = split_words(in.routing_key);
  const size_t before = out.size();
  match(*root_, words, 0, out);
  // Several '#' expansions can reach one binding more than once; keep each once.
  if (out.size() - before > 1) {
    std::sort(out.begin() + static_cast<long>(before), out.end());
    out.erase(std::unique(out.begin() + static_cast<long>(before), out.end()), out.end());
  }
}

// ---- headers ----
namespace {
std::string_view x_match(const amqp::FieldTable& args) {
  if (const amqp::FieldValue* v = args.find("x-match")) {
    if (auto s = v->as_string()) return *s;
  }
  return "all";
}
}  // namespace

std::string HeadersExchange::validate_binding(const Binding& b) const {
  if (const amqp::FieldValue* v = b.arguments.find("x-match")) {
    auto s = v->as_string();
    if (!s || (*s != "all" && *s != "any" && *s != "all-with-x" && *s != "any-with-x")) {
      const std::string shown =
          s ? "<<\"" + std::string(*s) + "\">>" : amqp::value_to_text(*v);
      return "Invalid x-match field value " + shown +
             "; expected all, any, all-with-x, or any-with-x";
    }
  }
  return {};
}

bool HeadersExchange::matches(const amqp::FieldTable& args, const amqp::FieldTable* headers) {
  const std::string_view mode = x_match(args);
  const bool any = mode == "any" || mode == "any-with-x";
  const bool with_x = mode == "all-with-x" || mode == "any-with-x";
  for (const auto& [key, want] : args.entries) {
    if (key == "x-match") continue;
    if (!with_x && key.size() >= 2 && key[0] == 'x' && key[1] == '-') continue;
    const amqp::FieldValue* have = headers ? headers->find(key) : nullptr;
    bool ok = false;
    if (have) {
      ok = std::holds_alternative<amqp::Void>(want.v) || *have == want;
      if (!ok) {
        // Integers of different widths compare by value, as Erlang terms do.
        auto a = have->as_int();
        auto b = want.as_int();
        ok = a && b && *a == *b;
      }
    }
    if (any && ok) return true;
    if (!any && !ok) return false;
  }
  // all: every (possibly zero) argument matched; any: none did.
  return !any;
}

void HeadersExchange::bind(const Binding& b) { bindings_.push_back(b); }

void HeadersExchange::unbind(const Binding& b) {
  auto pos = std::find(bindings_.begin(), bindings_.end(), b);
  if (pos != bindings_.end()) bindings_.erase(pos);
}

void HeadersExchange::route(const RoutingInput& in, std::vector<Destination>& out) const {
  if (bindings_.empty()) return;
  const amqp::FieldTable* headers = in.headers ? in.headers() : nullptr;
  for (const Binding& b : bindings_) {
    if (matches(b.arguments, headers)) out.push_back(b.destination);
  }
}

}  // namespace warren::exchange

namespace warren::exchange {

// ---- x-consistent-hash ----
uint32_t ConsistentHashExchange::hash(std::string_view s) {
  // FNV-1a, then a final avalanche so that nearby keys spread over the ring.
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

std::string ConsistentHashExchange::configure(const amqp::FieldTable& args) {
  if (const amqp::FieldValue* v = args.find("hash-header")) {
    auto s = v->as_string();
    if (!s) return "hash-header must be a string";
    hash_header_ = std::string(*s);
  }
  if (const amqp::FieldValue* v = args.find("hash-property")) {
    auto s = v->as_string();
    if (!s || (*s != "message_id" && *s != "correlation_id" && *s != "timestamp")) {
      return "hash-property must be one of message_id, correlation_id, timestamp";
    }
    hash_property_ = std::string(*s);
  }
  if (!hash_header_.empty() && !hash_property_.empty()) {
    return "hash-header and hash-property are mutually exclusive";
  }
  return {};
}

std::string ConsistentHashExchange::validate_binding(const Binding& b) const {
  const std::string& k = b.routing_key;
  bool ok = !k.empty() && k.size() <= 6;
  for (char c : k) ok = ok && c >= '0' && c <= '9';
  if (!ok || std::stoi(k) < 1) {
    return "The binding key must be an integer: <<\"" + k + "\">>";
  }
  return {};
}

void ConsistentHashExchange::bind(const Binding& b) {
  bindings_.push_back(b);
  rebuild();
}

void ConsistentHashExchange::unbind(const Binding& b) {
  auto pos = std::find(bindings_.begin(), bindings_.end(), b);
  if (pos != bindings_.end()) bindings_.erase(pos);
  rebuild();
}

void ConsistentHashExchange::rebuild() {
  ring_.clear();
  for (const Binding& b : bindings_) {
    // Many points per unit of weight, so that shares follow the weights closely.
    const int weight = std::max(1, std::atoi(b.routing_key.c_str()));
    const int points = std::min(weight, 4096) * kPointsPerWeight;
    for (int i = 0; i < points; ++i) {
      const std::string point = std::to_string(b.destination.id) +
                                (b.destination.is_exchange ? "x" : "q") + ":" + std::to_string(i);
      ring_.emplace_back(hash(point), b.destination);
    }
  }
  std::sort(ring_.begin(), ring_.end());
}

void ConsistentHashExchange::route(const RoutingInput& in, std::vector<Destination>& out) const {
  if (ring_.empty()) return;
  std::string key_storage;
  std::string_view key = in.routing_key;
  if (!hash_header_.empty()) {
    const amqp::FieldTable* h = in.headers ? in.headers() : nullptr;
    const amqp::FieldValue* v = h ? h->find(hash_header_) : nullptr;
    if (!v) return;  // no such header: the plugin routes nowhere
    key_storage = amqp::value_to_text(*v);
    key = key_storage;
  } else if (!hash_property_.empty()) {
    amqp::BasicProperties p;
    try {
      p = amqp::BasicProperties::decode(in.raw_properties, false);
    } catch (const amqp::DecodeError&) {
      return;
    }
    if (hash_property_ == "message_id" && p.has(amqp::BasicProperties::kMessageId)) {
      key = p.message_id;
    } else if (hash_property_ == "correlation_id" && p.has(amqp::BasicProperties::kCorrelationId)) {
      key = p.correlation_id;
    } else if (hash_property_ == "timestamp" && p.has(amqp::BasicProperties::kTimestamp)) {
      key_storage = std::to_string(p.timestamp);
      key = key_storage;
    } else {
      return;
    }
  }
  const uint32_t h = hash(key);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), h,
                             [](const auto& p, uint32_t v) { return p.first < v; });
  if (it == ring_.end()) it = ring_.begin();
  out.push_back(it->second);
}

// ---- x-delayed-message ----
std::string DelayedMessageExchange::configure(const amqp::FieldTable& args) {
  const amqp::FieldValue* t = args.find("x-delayed-type");
  auto s = t ? t->as_string() : std::nullopt;
  if (!s || *s == "x-delayed-message" || !Registry::builtin().has(*s)) {
    return "Invalid argument, 'x-delayed-type' must be an existing exchange type";
  }
  inner_ = Registry::builtin().create(*s);
  return {};
}

}  // namespace warren::exchange
