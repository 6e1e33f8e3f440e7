// broker::Connection, sans-I/O: bytes in (through a FakeTransport), frames out.
// Concerns covered:
//  - the handshake: protocol header -> connection.start (0-9, PLAIN/AMQPLAIN, capabilities)
//    -> start-ok -> tune -> tune-ok -> open -> open-ok; transport told handshake complete
//    and the negotiated heartbeat; the same bytes fed one at a time give the same result;
//  - a wrong protocol header is answered with AMQP 0-9-1's header, then the socket closes;
//    RabbitMQ's legacy 0-9 and 0-8 headers are accepted;
//  - login: wrong password, unknown user, or guest from a non-loopback peer ->
//    connection.close 403 ACCESS_REFUSED for clients with authentication_failure_close,
//    a silent close for the others; malformed responses and unknown mechanisms close
//    silently; AMQPLAIN works;
//  - unknown vhost -> 530 NOT_ALLOWED (class 10, method 40);
//  - tune-ok outside the limits (frame_max < 4096 or 0, channel_max 0) closes silently;
//  - after the broker's connection.close only close-ok counts; the client's close gets
//    close-ok and the socket lingers for the client to close it;
//  - payloads over the negotiated frame_max -> 501; heartbeats on a channel -> 505;
//    a truncated method -> 501 with its ids; an unknown method -> a hard error;
//    bytes after the close are ignored;
//  - channel.open twice -> 504; channel frames before connection.open -> 505.
#include <doctest/doctest.h>

#include <string>

#include "tests/unit/broker/broker_test_util.h"

using namespace warren;
using namespace warren::testing;
using amqp::ReplyCode;
using State = broker::Connection::State;

namespace {

amqp::ConnectionStartOk start_ok(std::string_view mechanism, const std::string& response,
                                 bool failure_close = true) {
  amqp::ConnectionStartOk so;
  if (failure_close) {
    amqp::FieldTable caps;
    caps.set("authentication_failure_close", true);
    so.client_properties.set("capabilities", std::move(caps));
  }
  so.mechanism = mechanism;
  so.response = response;
  so.locale = "en_US";
  return so;
}

amqp::ConnectionTuneOk tune_ok(uint32_t frame_max = 131072, uint16_t heartbeat = 0) {
  amqp::ConnectionTuneOk t;
  t.channel_max = 2047;
  t.frame_max = frame_max;
  t.heartbeat = heartbeat;
  return t;
}

// Checks that the broker closed the connection with `code` and returns the close.
void expect_connection_close(TestClient& c, ReplyCode code, uint16_t class_id = 0,
                             uint16_t method_id = 0, bool check_ids = false) {
  auto sent = commands(c.take());
  REQUIRE_FALSE(sent.empty());
  const auto close = sent.back().as<amqp::ConnectionClose>();
  CHECK(sent.back().channel == 0);
  CHECK(close.reply_code == static_cast<uint16_t>(code));
  CHECK(close.reply_text.substr(0, amqp::reply_code_name(code).size()) ==
        amqp::reply_code_name(code));
  if (check_ids) {
    CHECK(close.class_id == class_id);
    CHECK(close.method_id == method_id);
  }
  CHECK(c.conn.state() == State::kClosing);
  CHECK(c.transport.close_timer_started);
}

// Checks that the broker closed the socket without a word (RabbitMQ's handshake failures).
void expect_silent_close(TestClient& c) {
  CHECK(c.take_bytes().empty());
  CHECK(c.conn.state() == State::kClosed);
  CHECK(c.transport.closed_silently);
}

// Protocol header and start-ok (PLAIN guest/guest) sent, tune taken.
void up_to_tune(TestClient& c) {
  c.send(protocol_header());
  c.send_method(0, start_ok("PLAIN", plain_response("guest", "guest")));
  c.take();
  REQUIRE(c.conn.state() == State::kAwaitTuneOk);
}

}  // namespace

TEST_CASE("handshake, step by step") {
  TestClient c;
  CHECK(c.conn.state() == State::kAwaitHeader);
  c.send(std::string("AMQP\x00\x00\x09", 7));  // incomplete header: nothing yet
  CHECK(c.take_bytes().empty());
  c.send(std::string("\x01", 1));
  {
    auto sent = commands(c.take());
    const auto start = only<amqp::ConnectionStart>(sent, 0);
    CHECK(start.version_major == 0);
    CHECK(start.version_minor == 9);
    CHECK(start.mechanisms.find("PLAIN") != std::string_view::npos);
    CHECK(start.mechanisms.find("AMQPLAIN") != std::string_view::npos);
    CHECK(start.locales == "en_US");
    const amqp::FieldValue* caps = start.server_properties.find("capabilities");
    REQUIRE(caps != nullptr);
    REQUIRE(caps->as_table() != nullptr);
    for (const char* cap : {"publisher_confirms", "basic.nack", "consumer_cancel_notify",
                            "exchange_exchange_bindings", "authentication_failure_close"}) {
      INFO(cap);
      REQUIRE(caps->as_table()->find(cap) != nullptr);
      CHECK(caps->as_table()->find(cap)->as_bool() == true);
    }
    CHECK(start.server_properties.find("product") != nullptr);
    CHECK(start.server_properties.find("version") != nullptr);
  }
  CHECK(c.conn.state() == State::kAwaitStartOk);

  c.send_method(0, start_ok("PLAIN", plain_response("guest", "guest")));
  {
    auto sent = commands(c.take());
    const auto tune = only<amqp::ConnectionTune>(sent, 0);
    CHECK(tune.channel_max == 2047);
    CHECK(tune.frame_max == 131072);
    CHECK(tune.heartbeat == 60);
  }
  CHECK(c.conn.state() == State::kAwaitTuneOk);

  c.send_method(0, tune_ok(65536, 30));
  CHECK(c.take_bytes().empty());
  CHECK(c.conn.state() == State::kAwaitOpen);
  CHECK_FALSE(c.transport.handshake_done);

  amqp::ConnectionOpen open;
  open.virtual_host = "/";
  c.send_method(0, open);
  {
    auto sent = commands(c.take());
    only<amqp::ConnectionOpenOk>(sent, 0);
  }
  CHECK(c.conn.state() == State::kOpen);
  CHECK(c.conn.user() == "guest");
  CHECK(c.conn.frame_max() == 65536);
  CHECK(c.transport.handshake_done);
  CHECK(c.transport.heartbeat_started);
  CHECK(c.transport.heartbeat_seconds == 30);
  CHECK_FALSE(c.transport.closed_after_flush);
  CHECK_FALSE(c.transport.aborted);
}

TEST_CASE("the handshake fed one byte at a time") {
  TestClient whole;
  whole.handshake();
  REQUIRE(whole.conn.state() == State::kOpen);

  TestClient c;
  std::string bytes = protocol_header();
  bytes += method_frame(0, start_ok("PLAIN", plain_response("guest", "guest")));
  bytes += method_frame(0, tune_ok());
  amqp::ConnectionOpen open;
  open.virtual_host = "/";
  bytes += method_frame(0, open);
  bytes += method_frame(1, amqp::ChannelOpen{});
  std::vector<std::string> kinds;
  for (char b : bytes) {
    c.send(std::string(1, b));
    for (const Sent& s : commands(c.take())) kinds.push_back(s.describe());
  }
  CHECK(c.conn.state() == State::kOpen);
  CHECK(kinds == std::vector<std::string>{"connection.start on channel 0",
                                          "connection.tune on channel 0",
                                          "connection.open-ok on channel 0",
                                          "channel.open-ok on channel 1"});
}

TEST_CASE("RabbitMQ's legacy protocol headers are accepted") {
  TestClient v09;
  v09.send(std::string("AMQP\x01\x01\x00\x09", 8));
  const auto s09 = only<amqp::ConnectionStart>(commands(v09.take()), 0);
  CHECK(s09.version_major == 0);
  CHECK(s09.version_minor == 9);

  TestClient v08;
  v08.send(std::string("AMQP\x01\x01\x08\x00", 8));
  const auto s08 = only<amqp::ConnectionStart>(commands(v08.take()), 0);
  CHECK(s08.version_major == 8);
  CHECK(s08.version_minor == 0);
}

TEST_CASE("a wrong protocol header gets AMQP 0-9-1's header back, then the socket closes") {
  for (const std::string& header :
       {std::string("AMQP\x00\x00\x09\x00", 8), std::string("AMQP\x01\x01\x00\x0a", 8),
        std::string("AMQP\x00\x01\x00\x00", 8), std::string("GET / HTTP/1.1\r\n\r\n")}) {
    TestClient c;
    c.send(header);
    CHECK(c.take_bytes() == protocol_header());
    CHECK(c.conn.state() == State::kClosed);
    CHECK(c.transport.closed_after_flush);
    // Nothing more is read.
    c.send(protocol_header());
    CHECK(c.take_bytes().empty());
  }
}

TEST_CASE("wrong password or unknown user: connection.close 403, or a silent close") {
  for (auto [user, pass] : {std::pair{"guest", "wrong"}, std::pair{"nobody", "guest"},
                            std::pair{"guest", ""}, std::pair{"", ""}}) {
    INFO(user, "/", pass);
    TestClient c;
    c.send(protocol_header());
    c.take();
    c.send_method(0, start_ok("PLAIN", plain_response(user, pass)));
    expect_connection_close(c, ReplyCode::kAccessRefused);
    CHECK(c.conn.user().empty());

    // Only close-ok (or close) matters now.
    c.send_method(0, tune_ok());
    amqp::ConnectionOpen open;
    open.virtual_host = "/";
    c.send_method(0, open);
    CHECK(c.take_bytes().empty());
    CHECK(c.conn.state() == State::kClosing);
    c.send_method(0, amqp::ConnectionCloseOk{});
    CHECK(c.conn.state() == State::kClosed);

    // A client without authentication_failure_close just sees the socket close.
    TestClient quiet;
    quiet.send(protocol_header());
    quiet.take();
    quiet.send_method(0, start_ok("PLAIN", plain_response(user, pass), false));
    expect_silent_close(quiet);
  }
}

TEST_CASE("malformed PLAIN responses close silently") {
  for (const std::string& response :
       {std::string("guest"), std::string("authz\0guest\0guest", 17),
        std::string("\0guest", 6), std::string()}) {
    TestClient c;
    c.send(protocol_header());
    c.take();
    c.send_method(0, start_ok("PLAIN", response));
    expect_silent_close(c);
  }
}

TEST_CASE("AMQPLAIN login") {
  TestClient c;
  c.send(protocol_header());
  c.take();
  amqp::FieldTable t;
  t.set("LOGIN", "guest");
  t.set("PASSWORD", "guest");
  std::string response;
  amqp::Writer w(response);
  amqp::encode_table(w, t);
  c.send_method(0, start_ok("AMQPLAIN", response.substr(4)));
  only<amqp::ConnectionTune>(commands(c.take()), 0);
  CHECK(c.conn.state() == State::kAwaitTuneOk);
}

TEST_CASE("an unknown mechanism closes silently") {
  TestClient c;
  c.send(protocol_header());
  c.take();
  c.send_method(0, start_ok("EXTERNAL-OR-WHATEVER", ""));
  expect_silent_close(c);
}

TEST_CASE("guest may only connect from loopback") {
  TestClient c(quiet_config(), /*loopback=*/false);
  c.send(protocol_header());
  c.take();
  c.send_method(0, start_ok("PLAIN", plain_response("guest", "guest")));
  expect_connection_close(c, ReplyCode::kAccessRefused);

  // Another user may.
  common::Config cfg = quiet_config();
  cfg.default_user = "admin";
  cfg.default_pass = "pw";
  TestClient remote(cfg, false);
  remote.handshake("admin", "pw");
  CHECK(remote.conn.state() == State::kOpen);
}

TEST_CASE("an unknown vhost: 530 NOT_ALLOWED on connection.open") {
  TestClient c;
  c.handshake("guest", "guest", "/no-such-vhost");
  // handshake() took the frames already; look at the state and send nothing more.
  CHECK(c.conn.state() == State::kClosing);
  CHECK(c.conn.vhost() == nullptr);

  TestClient d;
  d.send(protocol_header());
  d.send_method(0, start_ok("PLAIN", plain_response("guest", "guest")));
  d.send_method(0, tune_ok());
  d.take();
  amqp::ConnectionOpen open;
  open.virtual_host = "/no-such-vhost";
  d.send_method(0, open);
  expect_connection_close(d, ReplyCode::kNotAllowed, 10, 40, true);
}

TEST_CASE("tune-ok outside the limits closes silently") {
  for (auto [frame_max, channel_max] :
       {std::pair<uint32_t, uint16_t>{1024, 10}, {4095, 10}, {0, 10}, {131073, 10},
        {131072, 0}, {131072, 2048}}) {
    INFO(frame_max, " ", channel_max);
    TestClient c;
    up_to_tune(c);
    amqp::ConnectionTuneOk t = tune_ok(frame_max);
    t.channel_max = channel_max;
    c.send_method(0, t);
    expect_silent_close(c);
  }
  TestClient ok;
  up_to_tune(ok);
  ok.send_method(0, tune_ok(4096));
  CHECK(ok.conn.state() == State::kAwaitOpen);
}

TEST_CASE("anything but tune-ok while tuning closes silently") {
  TestClient c;
  up_to_tune(c);
  c.send_method(1, amqp::ChannelOpen{});
  expect_silent_close(c);
}

TEST_CASE("the client's connection.close is answered with close-ok") {
  TestClient c;
  c.handshake();
  c.open_channel(1);
  amqp::ConnectionClose close;
  close.reply_code = 200;
  close.reply_text = "bye";
  c.send_method(0, close);
  only<amqp::ConnectionCloseOk>(commands(c.take()), 0);
  CHECK(c.conn.state() == State::kClosed);
  CHECK(c.transport.lingering);  // the client closes the socket after close-ok
  // Later bytes are ignored.
  c.send_method(1, amqp::BasicQos{});
  CHECK(c.take_bytes().empty());
}

TEST_CASE("close crossing: the broker closed, then the client's close arrives") {
  TestClient c;
  c.handshake();
  c.send(raw_frame(amqp::kFrameBody, 0, "x"));  // content on channel 0: hard error
  REQUIRE(c.conn.state() == State::kClosing);
  c.take();
  amqp::ConnectionClose close;
  close.reply_code = 200;
  c.send_method(0, close);
  only<amqp::ConnectionCloseOk>(commands(c.take()), 0);
  CHECK(c.conn.state() == State::kClosed);
}

TEST_CASE("frame errors after the handshake") {
  SUBCASE("a payload over the negotiated frame_max is 501") {
    TestClient c;
    c.handshake();
    c.open_channel(1);
    c.send(body_frame(1, std::string(131073, 'x')));
    expect_connection_close(c, ReplyCode::kFrameError);
  }
  SUBCASE("a bad frame-end octet is 501") {
    TestClient c;
    c.handshake();
    c.send(raw_frame(amqp::kFrameHeartbeat, 0, "", 0x00));
    expect_connection_close(c, ReplyCode::kFrameError);
  }
  SUBCASE("an unknown frame type is 501") {
    TestClient c;
    c.handshake();
    c.send(raw_frame(4, 0, ""));
    expect_connection_close(c, ReplyCode::kFrameError);
  }
  SUBCASE("a heartbeat on a channel other than 0 is 505") {
    TestClient c;
    c.handshake();
    c.open_channel(1);
    c.send(heartbeat_frame(1));
    expect_connection_close(c, ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("heartbeats on channel 0 are fine") {
    TestClient c;
    c.handshake();
    c.send(heartbeat_frame(0) + heartbeat_frame(0));
    CHECK(c.take_bytes().empty());
    CHECK(c.conn.state() == State::kOpen);
  }
  SUBCASE("a truncated method is 501 with its ids") {
    TestClient c;
    c.handshake();
    c.open_channel(1);
    c.send(raw_frame(amqp::kFrameMethod, 1, std::string("\x00\x32\x00\x0a\x00", 5)));
    expect_connection_close(c, ReplyCode::kFrameError, 50, 10, true);
  }
  SUBCASE("an unknown method is a hard error") {
    TestClient c;
    c.handshake();
    c.open_channel(1);
    c.send(raw_frame(amqp::kFrameMethod, 1, std::string("\x00\x3c\x03\xe7", 4)));
    auto sent = commands(c.take());
    REQUIRE_FALSE(sent.empty());
    const auto close = sent.back().as<amqp::ConnectionClose>();
    CHECK(amqp::is_hard_error(static_cast<ReplyCode>(close.reply_code)));
    CHECK(close.class_id == 60);
    CHECK(close.method_id == 999);
  }
}

TEST_CASE("channels: open twice is 504; frames on a channel never opened close the connection") {
  SUBCASE("second channel.open") {
    TestClient c;
    c.handshake();
    only<amqp::ChannelOpenOk>(commands(c.open_channel(1)), 1);
    c.send_method(1, amqp::ChannelOpen{});
    expect_connection_close(c, ReplyCode::kChannelError);
  }
  SUBCASE("a method on an unopened channel") {
    TestClient c;
    c.handshake();
    c.send_method(5, amqp::BasicQos{});
    auto sent = commands(c.take());
    REQUIRE_FALSE(sent.empty());
    const auto close = sent.back().as<amqp::ConnectionClose>();
    CHECK(amqp::is_hard_error(static_cast<ReplyCode>(close.reply_code)));
  }
  SUBCASE("a channel frame before connection.open is 505") {
    TestClient c;
    up_to_tune(c);
    c.send_method(0, tune_ok());
    c.send_method(1, amqp::ChannelOpen{});
    expect_connection_close(c, ReplyCode::kUnexpectedFrame);
  }
  SUBCASE("channels are independent and numbered freely") {
    TestClient c;
    c.handshake();
    only<amqp::ChannelOpenOk>(commands(c.open_channel(7)), 7);
    only<amqp::ChannelOpenOk>(commands(c.open_channel(2047)), 2047);
    only<amqp::ChannelOpenOk>(commands(c.open_channel(1)), 1);
  }
}

TEST_CASE("transport closed: channels and exclusive queues are released") {
  TestClient c;
  c.handshake();
  c.open_channel(1);
  amqp::QueueDeclare q;
  q.queue = "mine";
  q.exclusive = true;
  c.send_method(1, q);
  c.take();
  broker::VHost* vh = c.broker.find_vhost("/");
  REQUIRE(vh != nullptr);
  CHECK(vh->find_queue("mine") != nullptr);
  c.conn.on_transport_closed();
  CHECK(c.conn.state() == State::kClosed);
  CHECK(vh->find_queue("mine") == nullptr);
}
