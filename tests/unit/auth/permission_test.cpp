// Permission patterns and login throttling (auth/permission.h, auth/login_throttle.h,
// UserStore's permission tables).
// Concerns covered:
//  - patterns are unanchored searches as in RabbitMQ's re:run; "" matches only the empty
//    name (RabbitMQ's "^$"); ".*" matches everything; anchors and alternation work;
//    a pattern that does not compile matches nothing and is reported invalid;
//  - topic patterns expand {username} and {vhost}; unknown braces stay;
//  - RabbitMQ's refusal texts;
//  - UserStore: deleting a user drops its permissions and topic permissions; forgetting a
//    vhost drops its permissions; every change bumps the generation;
//  - LoginThrottle: free attempts, then a doubling delay up to the cap, forgotten after the
//    window or a success.
#include <doctest/doctest.h>

#include "auth/login_throttle.h"
#include "auth/permission.h"
#include "auth/user_store.h"

using namespace warren::auth;

TEST_CASE("permission patterns match as RabbitMQ's unanchored regex search") {
  CHECK(pattern_matches(".*", "anything"));
  CHECK(pattern_matches(".*", ""));
  CHECK(pattern_matches("", ""));
  CHECK_FALSE(pattern_matches("", "q"));
  CHECK(pattern_matches("^$", ""));
  CHECK_FALSE(pattern_matches("^$", "q"));
  CHECK(pattern_matches("^c", "cq"));
  CHECK_FALSE(pattern_matches("^c", "qc"));
  CHECK(pattern_matches("c", "qcq"));  // unanchored
  CHECK(pattern_matches("^(c|amq\\.topic)$", "amq.topic"));
  CHECK_FALSE(pattern_matches("^(c|amq\\.topic)$", "amqXtopic"));
  CHECK(pattern_matches("^amq\\.gen-", "amq.gen-abc"));
  CHECK(pattern_matches("^[a-z]+-[0-9]+$", "job-42"));
  CHECK_FALSE(pattern_matches("^[a-z]+-[0-9]+$", "job-4x"));
}

TEST_CASE("a pattern that does not compile matches nothing") {
  CHECK_FALSE(valid_pattern("(unclosed"));
  CHECK_FALSE(pattern_matches("(unclosed", "(unclosed"));
  CHECK(valid_pattern(""));
  CHECK(valid_pattern("^a.*$"));
}

TEST_CASE("topic patterns expand {username} and {vhost}") {
  CHECK(expand_topic_pattern("^{username}\\.", "u1", "/") == "^u1\\.");
  CHECK(expand_topic_pattern("^{vhost}-{username}-{other}$", "u", "v") == "^v-u-{other}$");
  CHECK(expand_topic_pattern("{username}{username}", "a", "v") == "aa");
  CHECK(pattern_matches(expand_topic_pattern("^{username}\\.", "u1", "/"), "u1.k"));
  CHECK_FALSE(pattern_matches(expand_topic_pattern("^{username}\\.", "u1", "/"), "u2.k"));
}

TEST_CASE("refusal texts are RabbitMQ's") {
  CHECK(access_refused_text("queue", "q", "/", "u") ==
        "access to queue 'q' in vhost '/' refused for user 'u'");
  CHECK(topic_refused_text("a.b", "amq.topic", "v1", "u1") ==
        "access to topic 'a.b' in exchange 'amq.topic' in vhost 'v1' refused for user 'u1'");
  CHECK(access_name(Access::kConfigure) == "configure");
}

TEST_CASE("UserStore keeps permissions consistent with users and vhosts") {
  UserStore s;
  s.add_user("a", "pw", {"management"});
  s.add_user("b", "pw");
  s.set_permission("a", "/", Permission{});
  s.set_permission("a", "v", Permission{"^c", "^w", "^r"});
  s.set_permission("b", "v", Permission{});
  s.set_topic_permission("a", "v", "amq.topic", TopicPermission{"^x", "^y"});
  REQUIRE(s.topic_permission("a", "v", "amq.topic"));
  CHECK(s.topic_permission("a", "v", "amq.topic")->write == "^x");
  CHECK(s.topic_permission("a", "v", "other") == nullptr);
  const uint64_t g = s.generation();
  CHECK(s.delete_user("a"));
  CHECK(s.generation() > g);
  CHECK_FALSE(s.delete_user("a"));
  CHECK(s.permission("a", "/") == nullptr);
  CHECK(s.permission("a", "v") == nullptr);
  CHECK(s.topic_permission("a", "v", "amq.topic") == nullptr);
  CHECK(s.permission("b", "v") != nullptr);
  s.forget_vhost("v");
  CHECK(s.permission("b", "v") == nullptr);
  CHECK(s.clear_permission("b", "v") == false);
  s.set_topic_permission("b", "w", "x1", {});
  s.set_topic_permission("b", "w", "x2", {});
  CHECK(s.clear_topic_permissions("b", "w", "x1") == 1);
  CHECK(s.clear_topic_permissions("b", "w") == 1);
}

TEST_CASE("hashing algorithm names round-trip") {
  for (auto a : {HashAlgorithm::kSha256, HashAlgorithm::kSha512, HashAlgorithm::kMd5}) {
    CHECK(parse_algorithm(algorithm_name(a)) == a);
  }
  CHECK_FALSE(parse_algorithm("rabbit_password_hashing_foo").has_value());
}

TEST_CASE("LoginThrottle slows an address down after repeated failures") {
  LoginThrottle t;
  int64_t now = 1'000'000;
  for (int i = 0; i < LoginThrottle::kFree - 1; ++i) t.record_failure("10.0.0.1", now);
  CHECK(t.delay_ms("10.0.0.1", now) == 0);
  t.record_failure("10.0.0.1", now);
  CHECK(t.delay_ms("10.0.0.1", now) == 200);
  t.record_failure("10.0.0.1", now);
  CHECK(t.delay_ms("10.0.0.1", now) == 400);
  for (int i = 0; i < 20; ++i) t.record_failure("10.0.0.1", now);
  CHECK(t.delay_ms("10.0.0.1", now) == LoginThrottle::kMaxDelayMs);
  CHECK(t.delay_ms("10.0.0.2", now) == 0);  // other addresses are unaffected
  CHECK(t.delay_ms("10.0.0.1", now + LoginThrottle::kWindowMs + 1) == 0);  // forgotten
  t.record_success("10.0.0.1");
  CHECK(t.delay_ms("10.0.0.1", now) == 0);
}
