// libFuzzer target: a broker::Connection (real Broker, FakeTransport) after a valid
// handshake, fed arbitrary bytes.
//
// Each input gets a fresh Broker and Connection. The handshake (protocol header, start-ok
// PLAIN guest/guest, tune-ok, open) and channel.open on channels 1 and 2 come first; then
// the input is delivered in chunks whose sizes come from its first byte, so frames also
// arrive split. Oracles: on_bytes never throws and never consumes more than it was given;
// everything the broker writes is a well-formed frame stream whose methods and content
// headers decode; no sanitizer report or leak after the connection is torn down.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "amqp/frame.h"
#include "amqp/methods.h"
#include "amqp/properties.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "tests/support/amqp_client.h"
#include "tests/support/fake_transport.h"

using namespace warren;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// Validates and drops what the broker wrote.
void drain(broker::Connection& conn) {
  const std::string out = conn.out().flatten();
  conn.out().clear();
  amqp::FrameParser parser(0);
  size_t at = 0;
  while (at < out.size()) {
    amqp::Frame f;
    size_t n = 0;
    try {
      n = parser.parse(reinterpret_cast<const uint8_t*>(out.data()) + at, out.size() - at, f);
    } catch (...) {
      std::abort();  // the broker wrote a malformed frame
    }
    check(n != 0);
    at += n;
    try {
      amqp::Reader r(f.payload);
      if (f.type == amqp::kFrameMethod) {
        amqp::decode_method(r);
        check(r.at_end());
      } else if (f.type == amqp::kFrameHeader) {
        check(r.u16() == amqp::kClassBasic);
        r.u16();
        r.u64();
        amqp::BasicProperties::decode(r.bytes(r.remaining()), true);
      }
    } catch (...) {
      std::abort();  // the broker wrote a frame that does not decode
    }
  }
}

std::string handshake() {
  using testing::method_frame;
  std::string bytes = testing::protocol_header();
  amqp::ConnectionStartOk so;
  so.client_properties.set("product", "connection_fuzz");
  amqp::FieldTable caps;
  caps.set("consumer_cancel_notify", true);
  so.client_properties.set("capabilities", caps);
  so.mechanism = "PLAIN";
  const std::string response = testing::plain_response("guest", "guest");
  so.response = response;
  so.locale = "en_US";
  bytes += method_frame(0, so);
  amqp::ConnectionTuneOk to;
  to.channel_max = 16;
  to.frame_max = 8192;
  bytes += method_frame(0, to);
  amqp::ConnectionOpen open;
  open.virtual_host = "/";
  bytes += method_frame(0, open);
  bytes += method_frame(1, amqp::ChannelOpen{});
  bytes += method_frame(2, amqp::ChannelOpen{});
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  common::Config cfg = testing::quiet_config();
  cfg.max_message_size = 65536;
  broker::Broker b(cfg);
  testing::FakeTransport transport;
  {
    broker::Connection conn(b, transport, "127.0.0.1:1", true);
    static const std::string hello = handshake();
    std::string buf = hello;
    size_t used = conn.on_bytes(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
    check(used == buf.size());
    check(conn.state() == broker::Connection::State::kOpen);
    conn.end_of_input_batch();
    drain(conn);
    buf.clear();

    const size_t chunk = size == 0 ? 1 : 1 + data[0] % 64 * 37;
    size_t at = size == 0 ? 0 : 1;
    while (at < size && conn.state() != broker::Connection::State::kClosed) {
      const size_t n = std::min(chunk, size - at);
      buf.append(reinterpret_cast<const char*>(data + at), n);
      at += n;
      used = conn.on_bytes(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
      check(used <= buf.size());
      buf.erase(0, used);
      conn.end_of_input_batch();
      drain(conn);
    }
    conn.on_transport_closed();
    drain(conn);
  }
  return 0;
}
