// Exchange types (exchange/*.h) and their registry.
// Concerns covered:
//  - direct: exact key match, several queues per key, the empty key, unbind of one queue;
//  - fanout: every binding whatever the key, a destination bound twice appears twice,
//    unbind removes one binding;
//  - topic, with RabbitMQ's rules: '*' is exactly one word, '#' zero or more, words may be
//    empty ('a..b', 'a.'), the empty key has no words (so '*' does not match it but '#'
//    does), wildcards in a routing key are literal words, a destination matched by several
//    patterns is routed once, unbind keeps patterns that share a prefix;
//  - headers: x-match all (the default) / any / all-with-x / any-with-x, x- keys ignored
//    unless -with-x, a void binding value matches any value, integers of different widths
//    compare by value, missing headers, lazy header decoding, validate_binding, unbind by
//    arguments;
//  - registry: the built-in types, unknown names, added factories.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "exchange/direct.h"
#include "exchange/exchange.h"
#include "exchange/fanout.h"
#include "exchange/headers.h"
#include "exchange/topic.h"

using namespace warren;
using namespace warren::exchange;

namespace {

Binding binding(uint32_t queue, std::string key, amqp::FieldTable args = {}) {
  return Binding{Destination{queue, false}, std::move(key), std::move(args)};
}

// Queue ids routed for `key`, sorted (duplicates kept).
std::vector<uint32_t> route(const ExchangeType& x, std::string_view key,
                            const amqp::FieldTable* headers = nullptr) {
  RoutingInput in;
  in.routing_key = key;
  in.headers = [headers] { return headers; };
  std::vector<Destination> out;
  x.route(in, out);
  std::vector<uint32_t> ids;
  for (const Destination& d : out) ids.push_back(d.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

using Ids = std::vector<uint32_t>;

bool topic_matches(std::string pattern, std::string key) {
  TopicExchange t;
  t.bind(binding(1, std::move(pattern)));
  return route(t, key) == Ids{1};
}

amqp::FieldTable table(std::initializer_list<std::pair<const char*, amqp::FieldValue>> kv) {
  amqp::FieldTable t;
  for (const auto& [k, v] : kv) t.entries.emplace_back(k, v);
  return t;
}

}  // namespace

TEST_CASE("direct exchange") {
  DirectExchange x;
  x.bind(binding(1, "k"));
  x.bind(binding(2, "k"));
  x.bind(binding(3, "other"));
  x.bind(binding(4, ""));
  CHECK(route(x, "k") == Ids{1, 2});
  CHECK(route(x, "other") == Ids{3});
  CHECK(route(x, "") == Ids{4});
  CHECK(route(x, "K").empty());
  CHECK(route(x, "k ").empty());
  CHECK(route(x, "#").empty());

  x.unbind(binding(1, "k"));
  CHECK(route(x, "k") == Ids{2});
  x.unbind(binding(1, "k"));  // not bound any more: no-op
  x.unbind(binding(9, "nope"));
  CHECK(route(x, "k") == Ids{2});
  x.unbind(binding(2, "k"));
  CHECK(route(x, "k").empty());
  x.bind(binding(5, "k"));
  CHECK(route(x, "k") == Ids{5});

  // One queue under two keys.
  x.bind(binding(3, "k"));
  CHECK(route(x, "k") == Ids{3, 5});
  CHECK(route(x, "other") == Ids{3});
}

TEST_CASE("fanout exchange") {
  FanoutExchange x;
  CHECK(route(x, "anything").empty());
  x.bind(binding(1, "a"));
  x.bind(binding(2, ""));
  x.bind(binding(1, "b"));  // same queue, second binding
  CHECK(route(x, "") == Ids{1, 1, 2});
  CHECK(route(x, "whatever.key") == Ids{1, 1, 2});
  x.unbind(binding(1, "a"));
  CHECK(route(x, "x") == Ids{1, 2});
  x.unbind(binding(1, "b"));
  x.unbind(binding(1, "b"));
  CHECK(route(x, "x") == Ids{2});
}

TEST_CASE("topic patterns") {
  struct Case {
    const char* pattern;
    std::vector<const char*> match;
    std::vector<const char*> no_match;
  };
  const Case cases[] = {
      {"#", {"", "a", "a.b.c", ".", "a..b", "*", "#"}, {}},
      {"a.*", {"a.b", "a.", "a.*", "a.#"}, {"a", "a.b.c", "b.a", "", "ab"}},
      {"*.b.#", {"a.b", "a.b.c", "a.b.c.d", ".b", "b.b"}, {"b", "a.c.b", "a.a.b", ""}},
      {"#.c", {"c", "a.c", "a.b.c", ".c"}, {"c.a", "ac", "", "a.c."}},
      {"a.#.b", {"a.b", "a.x.b", "a.x.y.b", "a..b"}, {"a.b.c", "b.a.b", "a", "ab"}},
      {"a..b", {"a..b"}, {"a.b", "a.x.b", "a...b"}},
      {"a.*.b", {"a..b", "a.x.b"}, {"a.b", "a.x.y.b"}},
      {"", {""}, {"a", ".", "*"}},
      {"*", {"a", "*", "#", "long-word"}, {"", ".", "a.b"}},
      {"#.#", {"", "a", "a.b.c"}, {}},
      {"*.#", {"a", "a.b", "."}, {""}},
      {"#.*", {"a", "a.b", "."}, {""}},
      {"a.#", {"a", "a.b", "a.b.c", "a."}, {"b", "", "ab", "b.a"}},
      {"#.a.#", {"a", "x.a", "a.x", "x.a.y", "a.a"}, {"xa", "x.y", ""}},
      {"*.*", {"a.b", ".", "*.*"}, {"a", "a.b.c", ""}},
      {"a.b.c", {"a.b.c"}, {"a.b", "a.b.c.d", "A.b.c", "a.b.*"}},
      {".", {"."}, {"", "a", "a."}},
      {"a.", {"a."}, {"a", "a.b"}},
      {"#.b.*.#.d", {"b.c.d", "a.b.c.x.y.d", "b.x.d"}, {"b.d", "b.c", "a.b.d"}},
  };
  for (const Case& c : cases) {
    for (const char* key : c.match) {
      INFO("pattern '", c.pattern, "' should match '", key, "'");
      CHECK(topic_matches(c.pattern, key));
    }
    for (const char* key : c.no_match) {
      INFO("pattern '", c.pattern, "' should not match '", key, "'");
      CHECK_FALSE(topic_matches(c.pattern, key));
    }
  }
}

TEST_CASE("topic: many bindings at once, each destination routed once") {
  TopicExchange t;
  t.bind(binding(1, "stock.#"));
  t.bind(binding(1, "stock.*.nyse"));  // q1 matched twice for stock.usd.nyse
  t.bind(binding(1, "#.nyse"));
  t.bind(binding(2, "*.*.nyse"));
  t.bind(binding(3, "stock.eur.*"));
  t.bind(binding(4, "#"));
  t.bind(binding(5, "#.#.#"));
  CHECK(route(t, "stock.usd.nyse") == Ids{1, 2, 4, 5});
  CHECK(route(t, "stock.eur.x") == Ids{1, 3, 4, 5});
  CHECK(route(t, "nyse") == Ids{1, 4, 5});
  CHECK(route(t, "") == Ids{4, 5});
}

TEST_CASE("topic unbind") {
  TopicExchange t;
  t.bind(binding(1, "a"));
  t.bind(binding(2, "a.b"));
  t.bind(binding(3, "a.*"));
  t.bind(binding(4, "a.#"));
  t.bind(binding(5, "a.b"));
  CHECK(route(t, "a.b") == Ids{2, 3, 4, 5});

  t.unbind(binding(2, "a.b"));
  CHECK(route(t, "a.b") == Ids{3, 4, 5});
  t.unbind(binding(5, "a.b"));  // the node a.b is now empty and pruned
  CHECK(route(t, "a.b") == Ids{3, 4});
  CHECK(route(t, "a") == Ids{1, 4});

  // Removing the shorter pattern keeps the longer ones below it.
  t.unbind(binding(1, "a"));
  CHECK(route(t, "a").empty() == false);  // a.# still matches "a"
  CHECK(route(t, "a") == Ids{4});
  CHECK(route(t, "a.x") == Ids{3, 4});

  // Unknown patterns and destinations are no-ops.
  t.unbind(binding(9, "a.*"));
  t.unbind(binding(3, "x.y.z"));
  t.unbind(binding(3, "a.*.c"));
  CHECK(route(t, "a.x") == Ids{3, 4});

  t.unbind(binding(3, "a.*"));
  t.unbind(binding(4, "a.#"));
  CHECK(route(t, "a").empty());
  CHECK(route(t, "a.x").empty());

  // The trie is usable after being emptied.
  t.bind(binding(6, "a.*"));
  CHECK(route(t, "a.x") == Ids{6});
  t.bind(binding(7, ""));
  CHECK(route(t, "") == Ids{7});
  t.unbind(binding(7, ""));
  CHECK(route(t, "").empty());
}

TEST_CASE("topic: many bindings route by key, not by count") {
  TopicExchange t;
  for (uint32_t i = 0; i < 2000; ++i) t.bind(binding(i, "k" + std::to_string(i) + ".*"));
  CHECK(route(t, "k1234.x") == Ids{1234});
  CHECK(route(t, "k1234").empty());
  for (uint32_t i = 0; i < 2000; ++i) t.unbind(binding(i, "k" + std::to_string(i) + ".*"));
  CHECK(route(t, "k1234.x").empty());
}

TEST_CASE("headers: x-match all (default) and any") {
  const auto all = table({{"x-match", "all"}, {"a", int32_t{1}}, {"b", "x"}});
  const auto dflt = table({{"a", int32_t{1}}, {"b", "x"}});
  const auto any = table({{"x-match", "any"}, {"a", int32_t{1}}, {"b", "x"}});

  const auto both = table({{"a", int32_t{1}}, {"b", "x"}, {"c", "extra"}});
  const auto only_b = table({{"b", "x"}});
  const auto wrong_a = table({{"a", int32_t{2}}, {"b", "x"}});
  const auto neither = table({{"a", int32_t{2}}, {"b", "y"}});
  const amqp::FieldTable empty;

  for (const auto* args : {&all, &dflt}) {
    CHECK(HeadersExchange::matches(*args, &both));
    CHECK_FALSE(HeadersExchange::matches(*args, &only_b));
    CHECK_FALSE(HeadersExchange::matches(*args, &wrong_a));
    CHECK_FALSE(HeadersExchange::matches(*args, &empty));
    CHECK_FALSE(HeadersExchange::matches(*args, nullptr));
  }
  CHECK(HeadersExchange::matches(any, &both));
  CHECK(HeadersExchange::matches(any, &only_b));
  CHECK(HeadersExchange::matches(any, &wrong_a));
  CHECK_FALSE(HeadersExchange::matches(any, &neither));
  CHECK_FALSE(HeadersExchange::matches(any, &empty));
  CHECK_FALSE(HeadersExchange::matches(any, nullptr));

  // No arguments to check: all matches everything, any matches nothing.
  CHECK(HeadersExchange::matches(table({{"x-match", "all"}}), nullptr));
  CHECK(HeadersExchange::matches(amqp::FieldTable{}, &both));
  CHECK_FALSE(HeadersExchange::matches(table({{"x-match", "any"}}), &both));
}

TEST_CASE("headers: x- keys are ignored unless -with-x") {
  const auto hdr_plain = table({{"a", int32_t{1}}});
  const auto hdr_x = table({{"a", int32_t{1}}, {"x-foo", "bar"}});

  const auto all = table({{"x-match", "all"}, {"x-foo", "bar"}, {"a", int32_t{1}}});
  CHECK(HeadersExchange::matches(all, &hdr_plain));
  CHECK(HeadersExchange::matches(all, &hdr_x));

  const auto any_only_x = table({{"x-match", "any"}, {"x-foo", "bar"}});
  CHECK_FALSE(HeadersExchange::matches(any_only_x, &hdr_x));

  const auto all_x = table({{"x-match", "all-with-x"}, {"x-foo", "bar"}, {"a", int32_t{1}}});
  CHECK_FALSE(HeadersExchange::matches(all_x, &hdr_plain));
  CHECK(HeadersExchange::matches(all_x, &hdr_x));
  const auto hdr_x_wrong = table({{"a", int32_t{1}}, {"x-foo", "baz"}});
  CHECK_FALSE(HeadersExchange::matches(all_x, &hdr_x_wrong));

  const auto any_x = table({{"x-match", "any-with-x"}, {"x-foo", "bar"}});
  CHECK(HeadersExchange::matches(any_x, &hdr_x));
  CHECK_FALSE(HeadersExchange::matches(any_x, &hdr_plain));
  CHECK_FALSE(HeadersExchange::matches(any_x, &hdr_x_wrong));

  // x-match itself is never compared, even with -with-x.
  const auto hdr_with_match = table({{"x-match", "something"}, {"a", int32_t{1}}});
  const auto all_x_a = table({{"x-match", "all-with-x"}, {"a", int32_t{1}}});
  CHECK(HeadersExchange::matches(all_x_a, &hdr_with_match));
  CHECK(HeadersExchange::matches(all_x_a, &hdr_plain));
}

TEST_CASE("headers: void binding values match presence; values compare by value") {
  const auto presence = table({{"a", amqp::Void{}}});
  const auto hdr_str = table({{"a", "anything"}});
  const auto hdr_void = table({{"a", amqp::Void{}}});
  const auto hdr_other = table({{"b", "x"}});
  CHECK(HeadersExchange::matches(presence, &hdr_str));
  CHECK(HeadersExchange::matches(presence, &hdr_void));
  CHECK_FALSE(HeadersExchange::matches(presence, &hdr_other));
  CHECK_FALSE(HeadersExchange::matches(presence, nullptr));
  const auto any_presence = table({{"x-match", "any"}, {"a", amqp::Void{}}, {"b", "no"}});
  CHECK(HeadersExchange::matches(any_presence, &hdr_str));

  // A void header does not satisfy a non-void binding value.
  const auto want_str = table({{"a", "anything"}});
  CHECK_FALSE(HeadersExchange::matches(want_str, &hdr_void));

  // Integers of different widths and signedness are equal when their values are.
  const auto want_int = table({{"n", int32_t{5}}});
  const auto hdr_long = table({{"n", int64_t{5}}});
  const auto hdr_byte = table({{"n", uint8_t{5}}});
  const auto hdr_short = table({{"n", int16_t{5}}});
  const auto hdr_six = table({{"n", int64_t{6}}});
  const auto hdr_text = table({{"n", "5"}});
  CHECK(HeadersExchange::matches(want_int, &hdr_long));
  CHECK(HeadersExchange::matches(want_int, &hdr_byte));
  CHECK(HeadersExchange::matches(want_int, &hdr_short));
  CHECK_FALSE(HeadersExchange::matches(want_int, &hdr_six));
  CHECK_FALSE(HeadersExchange::matches(want_int, &hdr_text));

  // Nested tables and booleans compare structurally.
  const auto want_nested = table({{"t", table({{"k", true}})}});
  const auto hdr_nested = table({{"t", table({{"k", true}})}});
  const auto hdr_nested_other = table({{"t", table({{"k", false}})}});
  CHECK(HeadersExchange::matches(want_nested, &hdr_nested));
  CHECK_FALSE(HeadersExchange::matches(want_nested, &hdr_nested_other));
}

TEST_CASE("headers exchange: route, lazy headers, validation, unbind") {
  HeadersExchange x;
  int decoded = 0;
  const auto hdr = table({{"format", "pdf"}, {"type", "report"}});
  RoutingInput in;
  in.routing_key = "ignored";
  in.headers = [&] {
    ++decoded;
    return &hdr;
  };
  std::vector<Destination> out;
  x.route(in, out);
  CHECK(out.empty());
  CHECK(decoded == 0);  // no bindings: headers never decoded

  x.bind(binding(1, "", table({{"x-match", "all"}, {"format", "pdf"}, {"type", "report"}})));
  x.bind(binding(2, "", table({{"x-match", "any"}, {"format", "zip"}, {"type", "report"}})));
  x.bind(binding(3, "", table({{"format", "zip"}})));
  x.route(in, out);
  CHECK(decoded == 1);  // decoded once for all bindings
  std::vector<uint32_t> ids;
  for (auto& d : out) ids.push_back(d.id);
  std::sort(ids.begin(), ids.end());
  CHECK(ids == Ids{1, 2});

  // Unbind needs the same arguments.
  x.unbind(binding(1, "", table({{"format", "pdf"}})));
  CHECK(route(x, "", &hdr) == Ids{1, 2});
  x.unbind(binding(1, "", table({{"x-match", "all"}, {"format", "pdf"}, {"type", "report"}})));
  CHECK(route(x, "", &hdr) == Ids{2});

  CHECK(x.validate_binding(binding(1, "", table({{"x-match", "any"}}))).empty());
  CHECK(x.validate_binding(binding(1, "", table({{"x-match", "all-with-x"}}))).empty());
  CHECK(x.validate_binding(binding(1, "", table({{"x-match", "any-with-x"}}))).empty());
  CHECK(x.validate_binding(binding(1, "", table({{"a", "b"}}))).empty());
  CHECK_FALSE(x.validate_binding(binding(1, "", table({{"x-match", "bogus"}}))).empty());
  CHECK_FALSE(x.validate_binding(binding(1, "", table({{"x-match", int32_t{1}}}))).empty());
  CHECK_FALSE(x.validate_binding(binding(1, "", table({{"x-match", "ALL"}}))).empty());
}

TEST_CASE("registry") {
  Registry& r = Registry::builtin();
  for (const char* t : {"direct", "fanout", "topic", "headers"}) {
    INFO(t);
    CHECK(r.has(t));
    CHECK(r.create(t) != nullptr);
  }
  CHECK_FALSE(r.has("x-no-such-type"));
  CHECK_FALSE(r.has("Direct"));
  CHECK(r.create("nope") == nullptr);
  CHECK(dynamic_cast<TopicExchange*>(r.create("topic").get()) != nullptr);
  CHECK(dynamic_cast<HeadersExchange*>(r.create("headers").get()) != nullptr);

  // Each create() is a fresh instance.
  auto a = r.create("direct");
  auto b = r.create("direct");
  a->bind(binding(1, "k"));
  CHECK(route(*a, "k") == Ids{1});
  CHECK(route(*b, "k").empty());

  Registry custom;
  CHECK_FALSE(custom.has("direct"));
  custom.add("x-everything", [] { return std::make_unique<FanoutExchange>(); });
  CHECK(custom.has("x-everything"));
  CHECK(custom.create("x-everything") != nullptr);
}
