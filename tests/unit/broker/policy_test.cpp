// Policies (broker/policy.h, VHost::set_policy): concerns covered —
//  - definitions are validated as RabbitMQ does (types, ranges, apply-to, pattern);
//    unknown keys are kept without effect;
//  - matching is an unanchored regex search and respects apply-to;
//  - the highest priority wins; clearing a policy re-applies the next one;
//  - merging with queue arguments: limits take the minimum, the argument wins for
//    dead-lettering and overflow; operator policies only lower limits;
//  - a policy applies at once to an existing queue (max-length drops the oldest) and to
//    queues declared later; an exchange's alternate-exchange policy routes unroutable
//    messages.
#include <doctest/doctest.h>

#include "broker/policy.h"
#include "tests/unit/broker/broker_test_util.h"

using namespace warren;
using namespace warren::testing;
using broker::Policy;

namespace {
Policy make(const std::string& name, const std::string& pattern, const std::string& def,
            int priority = 0, const std::string& apply_to = "all") {
  std::string error;
  auto p = Policy::make(name, pattern, apply_to, priority, def, error);
  INFO(error);
  REQUIRE(p);
  return *p;
}

std::string error_of(const std::string& def, const std::string& pattern = ".*",
                     const std::string& apply_to = "all") {
  std::string error;
  auto p = Policy::make("p", pattern, apply_to, 0, def, error);
  return p ? "" : error;
}
}  // namespace

TEST_CASE("policy definitions are validated") {
  CHECK(error_of(R"({"message-ttl": 1000, "max-length": 5, "overflow": "reject-publish"})").empty());
  CHECK(error_of(R"({"ha-mode": "all"})").empty());  // kept, no effect
  CHECK_FALSE(error_of(R"({"message-ttl": -1})").empty());
  CHECK_FALSE(error_of(R"({"message-ttl": "soon"})").empty());
  CHECK_FALSE(error_of(R"({"expires": 0})").empty());
  CHECK_FALSE(error_of(R"({"overflow": "drop-tail"})").empty());
  CHECK_FALSE(error_of(R"({"queue-mode": "fast"})").empty());
  CHECK_FALSE(error_of(R"({"dead-letter-exchange": 5})").empty());
  CHECK_FALSE(error_of("[1, 2]").empty());
  CHECK_FALSE(error_of("{}").empty());
  CHECK_FALSE(error_of("not json").empty());
  CHECK_FALSE(error_of(R"({"max-length": 1})", "(unclosed").empty());
  CHECK_FALSE(error_of(R"({"max-length": 1})", ".*", "bindings").empty());
}

TEST_CASE("matching is a regex search that respects apply-to") {
  Policy p = make("p", "^orders\\.", R"({"max-length": 1})", 0, "queues");
  CHECK(p.matches("orders.created", true));
  CHECK_FALSE(p.matches("old.orders.created", true));
  CHECK_FALSE(p.matches("orders.created", false));  // an exchange
  Policy any = make("any", "tmp", R"({"alternate-exchange": "ae"})", 0, "exchanges");
  CHECK(any.matches("my-tmp-exchange", false));
  CHECK_FALSE(any.matches("my-tmp-queue", true));
}

TEST_CASE("the highest priority wins and limits merge as RabbitMQ merges them") {
  OpenClient c;
  amqp::QueueDeclare d;
  d.queue = "pq";
  d.arguments.set("x-max-length", int32_t{10});
  d.arguments.set("x-dead-letter-exchange", "from-arg");
  c.call(1, d);
  broker::VHost& v = *c.broker.find_vhost("/");
  broker::Queue& q = *v.find_queue("pq");
  v.set_policy(make("low", "^pq$", R"({"max-length": 3, "message-ttl": 100})", 1));
  v.set_policy(make("high", "^p", R"({"max-length": 20, "dead-letter-exchange": "from-policy",
                                      "expires": 60000})", 5));
  CHECK(q.policy_name() == "high");
  CHECK(*q.settings().max_length == 10);  // the argument is lower
  CHECK(*q.settings().dead_letter_exchange == "from-arg");  // the argument wins
  CHECK(*q.settings().expires == 60000);
  CHECK_FALSE(q.settings().message_ttl);  // only one policy applies: "high"
  v.set_policy(make("cap", ".*", R"({"max-length": 2})"), /*operator_policy=*/true);
  CHECK(q.operator_policy_name() == "cap");
  CHECK(*q.settings().max_length == 2);
  REQUIRE(v.clear_policy("high"));
  CHECK(q.policy_name() == "low");
  CHECK(*q.settings().message_ttl == 100);
  CHECK_FALSE(v.clear_policy("high"));
  REQUIRE(v.clear_policy("cap", true));
  REQUIRE(v.clear_policy("low"));
  CHECK(q.policy_name().empty());
  CHECK(*q.settings().max_length == 10);
  CHECK_FALSE(q.settings().message_ttl);
}

TEST_CASE("a policy applies at once to an existing queue and to later ones") {
  OpenClient c;
  c.declare_queue("existing");
  for (int i = 1; i <= 5; ++i) c.publish(1, "", "existing", "m" + std::to_string(i));
  broker::VHost& v = *c.broker.find_vhost("/");
  v.set_policy(make("limit", "^(existing|later)$", R"({"max-length": 2})"));
  CHECK(v.find_queue("existing")->ready_count() == 2);  // the oldest went
  auto r = c.get("existing", true);
  REQUIRE(r.size() == 1);
  CHECK(r[0].body == "m4");
  c.declare_queue("later");
  CHECK(v.find_queue("later")->policy_name() == "limit");
  for (int i = 1; i <= 3; ++i) c.publish(1, "", "later", "n" + std::to_string(i));
  CHECK(v.find_queue("later")->ready_count() == 2);
}

TEST_CASE("an alternate-exchange policy routes what the exchange cannot") {
  OpenClient c;
  amqp::ExchangeDeclare x;
  x.exchange = "main-x";
  x.type_ = "direct";
  c.call(1, x);
  amqp::ExchangeDeclare ae;
  ae.exchange = "ae";
  ae.type_ = "fanout";
  c.call(1, ae);
  c.declare_queue("unrouted");
  amqp::QueueBind b;
  b.queue = "unrouted";
  b.exchange = "ae";
  c.call(1, b);
  broker::VHost& v = *c.broker.find_vhost("/");
  v.set_policy(make("ae-policy", "^main-x$", R"({"alternate-exchange": "ae"})", 0, "exchanges"));
  CHECK(v.find_exchange("main-x")->policy_name == "ae-policy");
  c.publish(1, "main-x", "nowhere", "lost?");
  CHECK(v.find_queue("unrouted")->ready_count() == 1);
}
