// Test-side AMQP helpers: frame builders, an output-frame parser, and TestClient, which
// drives a real broker::Connection (with a FakeTransport) by bytes, the way a client would.
//
// Sans-I/O and single-threaded. No doctest here: the fuzz targets use the builders too.
// Decoded methods hold string views into an OutFrame's payload, so keep the frame alive.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amqp/frame.h"
#include "amqp/methods.h"
#include "amqp/properties.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "common/config.h"
#include "tests/support/fake_transport.h"

namespace warren::testing {

inline std::string protocol_header() { return std::string("AMQP\x00\x00\x09\x01", 8); }

template <typename M>
std::string method_frame(uint16_t channel, const M& m) {
  std::string s;
  amqp::write_method_frame(s, channel, m);
  return s;
}

// A frame of any type around an arbitrary payload.
inline std::string raw_frame(uint8_t type, uint16_t channel, std::string_view payload,
                             uint8_t frame_end = amqp::kFrameEnd) {
  std::string s;
  amqp::Writer w(s);
  w.u8(type);
  w.u16(channel);
  w.u32(static_cast<uint32_t>(payload.size()));
  w.raw(payload);
  w.u8(frame_end);
  return s;
}

inline std::string header_frame(uint16_t channel, uint64_t body_size,
                                std::string_view raw_properties = std::string_view("\0\0", 2),
                                uint16_t class_id = amqp::kClassBasic, uint16_t weight = 0) {
  std::string payload;
  amqp::Writer w(payload);
  w.u16(class_id);
  w.u16(weight);
  w.u64(body_size);
  w.raw(raw_properties);
  return raw_frame(amqp::kFrameHeader, channel, payload);
}

inline std::string body_frame(uint16_t channel, std::string_view body) {
  return raw_frame(amqp::kFrameBody, channel, body);
}

inline std::string heartbeat_frame(uint16_t channel = 0) {
  return raw_frame(amqp::kFrameHeartbeat, channel, {});
}

inline std::string encode_properties(const amqp::BasicProperties& p) {
  std::string s;
  amqp::Writer w(s);
  p.encode(w);
  return s;
}

// "\0user\0password", the SASL PLAIN response clients send.
inline std::string plain_response(std::string_view user, std::string_view password) {
  std::string s(1, '\0');
  s += user;
  s += '\0';
  s += password;
  return s;
}

// One frame of the broker's output, owning its payload.
struct OutFrame {
  uint8_t type = 0;
  uint16_t channel = 0;
  std::string payload;

  bool is_method() const { return type == amqp::kFrameMethod && payload.size() >= 4; }
  uint16_t class_id() const {
    return is_method() ? static_cast<uint16_t>((uint8_t(payload[0]) << 8) | uint8_t(payload[1]))
                       : 0;
  }
  uint16_t method_id() const {
    return is_method() ? static_cast<uint16_t>((uint8_t(payload[2]) << 8) | uint8_t(payload[3]))
                       : 0;
  }
  template <typename M>
  bool is() const {
    return is_method() && class_id() == M::kClassId && method_id() == M::kMethodId;
  }
  // Decodes the method; its views point into `payload`. Throws when it is another method.
  template <typename M>
  M as() const {
    if (!is<M>()) {
      throw std::runtime_error("expected " + std::string(M::kName) + ", got " + describe());
    }
    amqp::Reader r(payload);
    r.u16();
    r.u16();
    M m;
    m.decode(r);
    return m;
  }
  std::string describe() const {
    if (is_method()) {
      return std::string(amqp::method_name(class_id(), method_id())) + " on channel " +
             std::to_string(channel);
    }
    return "frame type " + std::to_string(type) + " on channel " + std::to_string(channel);
  }
};

// Splits `bytes` into frames. Throws on a malformed or incomplete frame.
inline std::vector<OutFrame> parse_frames(std::string_view bytes) {
  std::vector<OutFrame> out;
  amqp::FrameParser parser(0);
  size_t at = 0;
  while (at < bytes.size()) {
    amqp::Frame f;
    const size_t n = parser.parse(reinterpret_cast<const uint8_t*>(bytes.data()) + at,
                                  bytes.size() - at, f);
    if (n == 0) throw std::runtime_error("incomplete frame in broker output");
    out.push_back(OutFrame{f.type, f.channel, std::string(f.payload)});
    at += n;
  }
  return out;
}

inline common::Config quiet_config() {
  common::Config cfg;
  cfg.log_level = "none";
  return cfg;
}

// A Broker, a FakeTransport and one Connection, fed with bytes.
class TestClient {
 public:
  explicit TestClient(common::Config cfg = quiet_config(), bool loopback = true)
      : broker(silence(std::move(cfg))), conn(broker, transport, "127.0.0.1:40000", loopback) {}

  broker::Broker broker;
  FakeTransport transport;
  broker::Connection conn;

  // Feeds bytes (after any partial frame left from before), then ends the input batch.
  void send(std::string_view bytes) {
    pending_.append(bytes.data(), bytes.size());
    const size_t used =
        conn.on_bytes(reinterpret_cast<const uint8_t*>(pending_.data()), pending_.size());
    pending_.erase(0, used);
    conn.end_of_input_batch();
  }
  template <typename M>
  void send_method(uint16_t channel, const M& m) {
    send(method_frame(channel, m));
  }
  // basic.publish, its header and its body in `chunks` body frames, in one batch.
  void publish(uint16_t channel, std::string_view exchange, std::string_view routing_key,
               std::string_view body,
               std::string_view raw_properties = std::string_view("\0\0", 2),
               bool mandatory = false, size_t chunks = 1) {
    amqp::BasicPublish p;
    p.exchange = exchange;
    p.routing_key = routing_key;
    p.mandatory = mandatory;
    std::string bytes = method_frame(channel, p);
    bytes += header_frame(channel, body.size(), raw_properties);
    const size_t step = chunks <= 1 ? body.size() : (body.size() + chunks - 1) / chunks;
    for (size_t at = 0; at < body.size(); at += step) {
      bytes += body_frame(channel, body.substr(at, step));
    }
    send(bytes);
  }

  // Everything the broker wrote since the last call, as raw bytes.
  std::string take_bytes() {
    std::string s = conn.out().flatten();
    conn.out().clear();
    return s;
  }
  std::vector<OutFrame> take() { return parse_frames(take_bytes()); }

  // Protocol header, start-ok (PLAIN), tune-ok and open; returns the frames the broker sent.
  std::vector<OutFrame> handshake(std::string_view user = "guest",
                                  std::string_view password = "guest",
                                  std::string_view vhost = "/") {
    std::string bytes = protocol_header();
    amqp::ConnectionStartOk so;
    amqp::FieldTable caps;
    caps.set("consumer_cancel_notify", true);
    caps.set("publisher_confirms", true);
    caps.set("basic.nack", true);
    caps.set("authentication_failure_close", true);
    so.client_properties.set("capabilities", std::move(caps));
    so.client_properties.set("product", "warren-unit-tests");
    so.mechanism = "PLAIN";
    const std::string response = plain_response(user, password);
    so.response = response;
    so.locale = "en_US";
    bytes += method_frame(0, so);
    amqp::ConnectionTuneOk to;
    to.channel_max = 2047;
    to.frame_max = 131072;
    to.heartbeat = 0;
    bytes += method_frame(0, to);
    amqp::ConnectionOpen open;
    open.virtual_host = vhost;
    bytes += method_frame(0, open);
    send(bytes);
    return take();
  }

  // channel.open on `channel`; returns the frames the broker sent.
  std::vector<OutFrame> open_channel(uint16_t channel) {
    send_method(channel, amqp::ChannelOpen{});
    return take();
  }

 private:
  static common::Config silence(common::Config cfg) {
    spdlog::set_level(spdlog::level::off);
    return cfg;
  }
  std::string pending_;
};

}  // namespace warren::testing
