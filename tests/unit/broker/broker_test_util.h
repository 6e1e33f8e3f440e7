// Helpers for the sans-I/O Connection/Channel tests: group the broker's output frames into
// commands (a method with its content) and assert on them with doctest.
#pragma once

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/support/amqp_client.h"

namespace warren::testing {

// One command the broker sent: a method frame and, for content methods, the header's
// property bytes and the reassembled body. Decoded methods (as<M>) view into this object.
struct Sent {
  std::optional<OutFrame> method;
  uint16_t channel = 0;
  bool has_content = false;
  uint64_t body_size = 0;  // as announced by the header
  std::string properties;
  std::string body;
  size_t body_frames = 0;

  template <typename M>
  bool is() const {
    return method && method->is<M>();
  }
  template <typename M>
  M as() const {
    REQUIRE_MESSAGE(is<M>(), "expected ", M::kName, ", got ", describe());
    return method->as<M>();
  }
  std::string describe() const { return method ? method->describe() : "nothing"; }
};

// Groups frames into commands; content frames must follow their method (per channel).
inline std::vector<Sent> commands(const std::vector<OutFrame>& frames) {
  std::vector<Sent> out;
  for (const OutFrame& f : frames) {
    if (f.type == amqp::kFrameMethod) {
      Sent s;
      s.method = f;
      s.channel = f.channel;
      s.has_content = amqp::method_has_content(f.class_id(), f.method_id());
      out.push_back(std::move(s));
    } else if (f.type == amqp::kFrameHeader) {
      REQUIRE_MESSAGE(!out.empty(), "content header without a method");
      Sent& s = out.back();
      REQUIRE(s.has_content);
      REQUIRE(s.channel == f.channel);
      amqp::Reader r(f.payload);
      CHECK(r.u16() == amqp::kClassBasic);
      CHECK(r.u16() == 0);
      s.body_size = r.u64();
      s.properties = std::string(r.bytes(r.remaining()));
    } else if (f.type == amqp::kFrameBody) {
      REQUIRE_MESSAGE(!out.empty(), "content body without a method");
      Sent& s = out.back();
      REQUIRE(s.has_content);
      REQUIRE(s.channel == f.channel);
      s.body += f.payload;
      ++s.body_frames;
    } else {
      FAIL("unexpected frame type ", int(f.type));
    }
  }
  for (const Sent& s : out) {
    if (s.has_content) CHECK(s.body.size() == s.body_size);
  }
  return out;
}

// Exactly one command, of type M, on `channel`.
template <typename M>
M only(const std::vector<Sent>& sent, uint16_t channel) {
  REQUIRE_MESSAGE(sent.size() == 1, "expected only ", M::kName, ", got ", sent.size(),
                  " commands", sent.empty() ? "" : (", first " + sent[0].describe()).c_str());
  CHECK(sent[0].channel == channel);
  return sent[0].as<M>();
}

// A client that has completed the handshake and opened channel 1.
class OpenClient : public TestClient {
 public:
  explicit OpenClient(common::Config cfg = quiet_config()) : TestClient(std::move(cfg)) {
    handshake();
    REQUIRE(conn.state() == broker::Connection::State::kOpen);
    open_channel(1);
  }

  // Sends a method and returns what the broker sent back, grouped.
  template <typename M>
  std::vector<Sent> call(uint16_t channel, const M& m) {
    send_method(channel, m);
    return sent();
  }
  std::vector<Sent> sent() { return commands(take()); }

  std::string declare_queue(std::string_view name, uint16_t channel = 1) {
    amqp::QueueDeclare q;
    q.queue = name;
    auto r = call(channel, q);
    return std::string(only<amqp::QueueDeclareOk>(r, channel).queue);
  }
  // basic.get; returns the whole reply (get-ok with content, or get-empty).
  std::vector<Sent> get(std::string_view queue, bool no_ack = false, uint16_t channel = 1) {
    amqp::BasicGet g;
    g.queue = queue;
    g.no_ack = no_ack;
    return call(channel, g);
  }
};

}  // namespace warren::testing
