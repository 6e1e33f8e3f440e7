#include "broker/connection.h"

#include <algorithm>

#include "broker/broker.h"
#include "broker/channel.h"
#include "common/log.h"

namespace warren::broker {

using amqp::ConnectionError;
using amqp::ReplyCode;

namespace {
constexpr uint8_t kProtocolHeader[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
constexpr const char* kVersion = "0.1.0";
// kombu (and so Celery) picks its basic.qos semantics from `product` and `version`: only a
// server calling itself RabbitMQ >= 3.3 gets RabbitMQ's per-consumer prefetch. Warren
// implements those semantics, so it reports the RabbitMQ release whose behaviour it follows
// and names itself in `platform`, `information` and `warren_version`.
constexpr const char* kCompatProduct = "RabbitMQ";
constexpr const char* kCompatVersion = "3.13.7";

// RabbitMQ negotiates each tune value as: 0 means "no limit", else the smaller one.
uint32_t negotiate(uint32_t server, uint32_t client) {
  if (server == 0) return client;
  if (client == 0) return server;
  return std::min(server, client);
}
}  // namespace

Connection::Connection(Broker& broker, Transport& transport, std::string peer,
                       bool peer_is_loopback)
    : broker_(broker),
      transport_(transport),
      peer_(std::move(peer)),
      peer_is_loopback_(peer_is_loopback),
      parser_(amqp::kFrameMinSize) {
  broker_.register_connection(this);
}

Connection::~Connection() {
  release_channels();
  broker_.unregister_connection(this);
}

bool Connection::client_capability(std::string_view name) const {
  const amqp::FieldValue* caps = client_properties_.find("capabilities");
  if (!caps || !caps->as_table()) return false;
  const amqp::FieldValue* v = caps->as_table()->find(name);
  return v && v->as_bool().value_or(false);
}

size_t Connection::on_bytes(const uint8_t* data, size_t len) {
  size_t used = 0;
  try {
    if (state_ == State::kAwaitHeader) {
      if (len < 8) return 0;
      if (std::memcmp(data, kProtocolHeader, 8) != 0) {
        // Wrong protocol or version: answer with the header we speak, then close (spec 4.2.2).
        out_.bytes().append(reinterpret_cast<const char*>(kProtocolHeader), 8);
        state_ = State::kClosed;
        transport_.close_after_flush();
        return len;
      }
      used = 8;
      send_start();
      state_ = State::kAwaitStartOk;
    }
    while (used < len && state_ != State::kClosed) {
      amqp::Frame f;
      size_t n = parser_.parse(data + used, len - used, f);
      if (n == 0) break;
      used += n;
      handle_frame(f);
    }
  } catch (const amqp::AmqpError& e) {
    fail(e);
    return len;
  } catch (const amqp::DecodeError& e) {
    fail(ConnectionError(ReplyCode::kSyntaxError, e.what()));
    return len;
  } catch (const amqp::UnknownMethod& e) {
    fail(ConnectionError(ReplyCode::kCommandInvalid, "unknown method", e.class_id, e.method_id));
    return len;
  }
  return used;
}

void Connection::end_of_input_batch() {
  if (state_ != State::kOpen) return;
  for (auto& [id, ch] : channels_) ch->flush_confirms();
}

void Connection::fail(const amqp::AmqpError& e) {
  if (state_ == State::kClosed || state_ == State::kClosing) return;
  WLOG_WARN("closing AMQP connection {} (user '{}'): {} (class {} method {})", peer_, user_,
            e.reply_text(), e.class_id, e.method_id);
  if (state_ == State::kAwaitHeader) {
    state_ = State::kClosed;
    transport_.abort();
    return;
  }
  amqp::ConnectionClose close;
  close.reply_code = static_cast<uint16_t>(e.code);
  const std::string text = e.reply_text();
  close.reply_text = text;
  close.class_id = e.class_id;
  close.method_id = e.method_id;
  send_method(0, close);
  release_channels();
  state_ = State::kClosing;
  transport_.start_close_timer();
}

void Connection::close_forced(const std::string& reason) {
  if (state_ == State::kOpen) {
    fail(ConnectionError(ReplyCode::kConnectionForced, reason));
  } else if (state_ != State::kClosed && state_ != State::kClosing) {
    state_ = State::kClosed;
    transport_.abort();
  }
}

void Connection::send_start() {
  amqp::ConnectionStart start;
  start.version_major = 0;
  start.version_minor = 9;
  amqp::FieldTable caps;
  for (const char* c : {"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                        "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                        "authentication_failure_close", "per_consumer_qos", "direct_reply_to"}) {
    caps.set(c, true);
  }
  amqp::FieldTable props;
  props.set("capabilities", std::move(caps));
  props.set("cluster_name", "warren@localhost");
  props.set("copyright", "Copyright (c) the Warren authors");
  props.set("information", "Warren, an AMQP 0-9-1 broker compatible with RabbitMQ");
  props.set("platform", std::string("Warren ") + kVersion + " (C++20)");
  props.set("product", kCompatProduct);
  props.set("version", kCompatVersion);
  props.set("warren_version", kVersion);
  start.server_properties = std::move(props);
  start.mechanisms = "PLAIN AMQPLAIN";
  start.locales = "en_US";
  send_method(0, start);
}

void Connection::handle_frame(const amqp::Frame& f) {
  if (state_ == State::kClosing) {
    // After our connection.close only close-ok (or the peer's own close) matters.
    if (f.type == amqp::kFrameMethod && f.channel == 0) {
      amqp::Reader r(f.payload);
      uint16_t cls = r.u16(), mid = r.u16();
      if (cls == amqp::kClassConnection &&
          (mid == amqp::ConnectionCloseOk::kMethodId || mid == amqp::ConnectionClose::kMethodId)) {
        if (mid == amqp::ConnectionClose::kMethodId) send_method(0, amqp::ConnectionCloseOk{});
        state_ = State::kClosed;
        transport_.close_after_flush();
      }
    }
    return;
  }
  if (f.type == amqp::kFrameHeartbeat) {
    if (f.channel != 0) {
      throw ConnectionError(ReplyCode::kFrameError,
                            "heartbeat frame on channel " + std::to_string(f.channel));
    }
    return;
  }
  if (f.channel == 0) {
    if (f.type != amqp::kFrameMethod) {
      throw ConnectionError(ReplyCode::kUnexpectedFrame,
                            "non-method frame on channel 0");
    }
    handle_connection_method(f);
    return;
  }
  if (state_ != State::kOpen) {
    throw ConnectionError(ReplyCode::kChannelError, "channel frame before connection.open");
  }
  dispatch_channel_frame(f);
}

void Connection::handle_connection_method(const amqp::Frame& f) {
  amqp::Reader r(f.payload);
  amqp::Method m = amqp::decode_method(r);
  const uint16_t cls = amqp::method_class_id(m);
  const uint16_t mid = amqp::method_method_id(m);
  auto expect = [&](State s, const char* what) {
    if (state_ != s) {
      throw ConnectionError(ReplyCode::kCommandInvalid,
                            std::string("expected '") + what + "' but got '" +
                                std::string(amqp::method_name(cls, mid)) + "'",
                            cls, mid);
    }
  };
  if (auto* so = std::get_if<amqp::ConnectionStartOk>(&m)) {
    expect(State::kAwaitStartOk, "connection.start_ok");
    on_start_ok(*so);
  } else if (auto* to = std::get_if<amqp::ConnectionTuneOk>(&m)) {
    expect(State::kAwaitTuneOk, "connection.tune_ok");
    on_tune_ok(*to);
  } else if (auto* op = std::get_if<amqp::ConnectionOpen>(&m)) {
    expect(State::kAwaitOpen, "connection.open");
    on_open(*op);
  } else if (std::holds_alternative<amqp::ConnectionClose>(m)) {
    release_channels();
    send_method(0, amqp::ConnectionCloseOk{});
    state_ = State::kClosed;
    transport_.close_after_flush();
  } else if (std::holds_alternative<amqp::ConnectionCloseOk>(m)) {
    state_ = State::kClosed;
    transport_.close_after_flush();
  } else if (auto* us = std::get_if<amqp::ConnectionUpdateSecret>(&m)) {
    expect(State::kOpen, "connection.update_secret");
    (void)us;  // PLAIN/AMQPLAIN secrets do not expire; RabbitMQ just re-checks the user.
    send_method(0, amqp::ConnectionUpdateSecretOk{});
  } else if (state_ != State::kOpen) {
    throw ConnectionError(ReplyCode::kCommandInvalid,
                          "unexpected method '" + std::string(amqp::method_name(cls, mid)) +
                              "' during handshake",
                          cls, mid);
  } else {
    throw ConnectionError(ReplyCode::kCommandInvalid,
                          "method '" + std::string(amqp::method_name(cls, mid)) +
                              "' is not allowed on channel 0",
                          cls, mid);
  }
}

void Connection::on_start_ok(const amqp::ConnectionStartOk& m) {
  client_properties_ = m.client_properties;
  std::optional<auth::Credentials> cred;
  if (m.mechanism == "PLAIN") {
    cred = auth::parse_plain(m.response);
  } else if (m.mechanism == "AMQPLAIN") {
    cred = auth::parse_amqplain(m.response);
  } else {
    throw ConnectionError(ReplyCode::kCommandInvalid,
                          "unknown authentication mechanism '" + std::string(m.mechanism) + "'",
                          amqp::ConnectionStartOk::kClassId, amqp::ConnectionStartOk::kMethodId);
  }
  const std::string refused = "Login was refused using authentication mechanism " +
                              std::string(m.mechanism) + ". For details see the broker logfile.";
  if (!cred) {
    WLOG_WARN("authentication failed from {}: malformed {} response", peer_, m.mechanism);
    throw ConnectionError(ReplyCode::kAccessRefused, refused);
  }
  const auth::User* u = broker_.users().authenticate(cred->user, cred->password);
  if (!u) {
    WLOG_WARN("authentication failed from {} for user '{}'", peer_, cred->user);
    throw ConnectionError(ReplyCode::kAccessRefused, refused);
  }
  const auto& lb = broker_.config().loopback_users;
  if (!peer_is_loopback_ && std::find(lb.begin(), lb.end(), u->name) != lb.end()) {
    WLOG_WARN("user '{}' may only connect from localhost; refused {}", u->name, peer_);
    throw ConnectionError(ReplyCode::kAccessRefused,
                          "Login was refused using authentication mechanism " +
                              std::string(m.mechanism) + ". For details see the broker logfile.");
  }
  user_ = u->name;
  amqp::ConnectionTune tune;
  tune.channel_max = broker_.config().channel_max;
  tune.frame_max = broker_.config().frame_max;
  tune.heartbeat = broker_.config().heartbeat;
  send_method(0, tune);
  state_ = State::kAwaitTuneOk;
}

void Connection::on_tune_ok(const amqp::ConnectionTuneOk& m) {
  const auto& cfg = broker_.config();
  if (m.frame_max != 0 && m.frame_max < amqp::kFrameMinSize) {
    throw ConnectionError(ReplyCode::kNotAllowed,
                          "frame_max=" + std::to_string(m.frame_max) + " < " +
                              std::to_string(amqp::kFrameMinSize) + " min size");
  }
  if (cfg.frame_max != 0 && m.frame_max > cfg.frame_max) {
    throw ConnectionError(ReplyCode::kNotAllowed,
                          "negotiated frame_max = " + std::to_string(m.frame_max) +
                              " is higher than the maximum allowed value (" +
                              std::to_string(cfg.frame_max) + ")");
  }
  if (cfg.channel_max != 0 && m.channel_max > cfg.channel_max) {
    throw ConnectionError(ReplyCode::kNotAllowed,
                          "negotiated channel_max = " + std::to_string(m.channel_max) +
                              " is higher than the maximum allowed value (" +
                              std::to_string(cfg.channel_max) + ")");
  }
  channel_max_ = static_cast<uint16_t>(negotiate(cfg.channel_max, m.channel_max));
  if (channel_max_ == 0) channel_max_ = 65535;
  frame_max_ = negotiate(cfg.frame_max, m.frame_max);
  parser_.set_max_frame(frame_max_);
  heartbeat_ = m.heartbeat;
  state_ = State::kAwaitOpen;
}

void Connection::on_open(const amqp::ConnectionOpen& m) {
  VHost* v = broker_.find_vhost(m.virtual_host);
  if (!v) {
    throw ConnectionError(ReplyCode::kNotAllowed,
                          "vhost " + std::string(m.virtual_host) + " not found",
                          amqp::ConnectionOpen::kClassId, amqp::ConnectionOpen::kMethodId);
  }
  if (!broker_.users().permission(user_, m.virtual_host)) {
    throw ConnectionError(ReplyCode::kNotAllowed,
                          "access to vhost '" + std::string(m.virtual_host) +
                              "' refused for user '" + user_ + "'",
                          amqp::ConnectionOpen::kClassId, amqp::ConnectionOpen::kMethodId);
  }
  vhost_ = v;
  send_method(0, amqp::ConnectionOpenOk{});
  state_ = State::kOpen;
  transport_.handshake_complete();
  transport_.start_heartbeat(heartbeat_);
  WLOG_INFO("connection {} opened: user '{}', vhost '{}'", peer_, user_, v->name());
}

void Connection::dispatch_channel_frame(const amqp::Frame& f) {
  auto it = channels_.find(f.channel);
  if (it == channels_.end()) {
    // Only channel.open may start a channel.
    if (f.type == amqp::kFrameMethod) {
      amqp::Reader r(f.payload);
      uint16_t cls = r.u16(), mid = r.u16();
      if (cls == amqp::kClassChannel && mid == amqp::ChannelOpen::kMethodId) {
        // RabbitMQ limits how many channels are open, not the channel numbers.
        if (channels_.size() >= channel_max_) {
          throw ConnectionError(ReplyCode::kNotAllowed,
                                "number of channels opened (" + std::to_string(channels_.size()) +
                                    ") has reached the negotiated channel_max (" +
                                    std::to_string(channel_max_) + ")");
        }
        amqp::ChannelOpen open;
        open.decode(r);
        auto ch = std::make_unique<Channel>(*this, f.channel);
        channels_.emplace(f.channel, std::move(ch));
        amqp::ChannelOpenOk ok;
        send_method(f.channel, ok);
        return;
      }
      throw ConnectionError(ReplyCode::kChannelError, "expected 'channel.open'", cls, mid);
    }
    throw ConnectionError(ReplyCode::kChannelError, "expected 'channel.open'");
  }
  Channel& ch = *it->second;
  if (ch.state() == Channel::State::kClosing) {
    // Drop everything until close-ok; answer a crossing channel.close.
    if (f.type == amqp::kFrameMethod) {
      amqp::Reader r(f.payload);
      uint16_t cls = r.u16(), mid = r.u16();
      if (cls == amqp::kClassChannel && mid == amqp::ChannelCloseOk::kMethodId) {
        close_channel(f.channel);
      } else if (cls == amqp::kClassChannel && mid == amqp::ChannelClose::kMethodId) {
        send_method(f.channel, amqp::ChannelCloseOk{});
        close_channel(f.channel);
      }
    }
    return;
  }
  amqp::Command cmd;
  uint16_t cls = 0, mid = 0;
  try {
    if (!ch.assembler().feed(f, cmd)) return;
    cls = cmd.class_id;
    mid = cmd.method_id;
    if (cls == amqp::kClassChannel) {
      if (auto* c = std::get_if<amqp::ChannelClose>(cmd.method)) {
        (void)c;
        ch.release();
        send_method(f.channel, amqp::ChannelCloseOk{});
        close_channel(f.channel);
        return;
      }
      if (std::holds_alternative<amqp::ChannelCloseOk>(*cmd.method)) {
        // close-ok without our close: nothing to do (RabbitMQ ignores it).
        return;
      }
      if (std::holds_alternative<amqp::ChannelOpen>(*cmd.method)) {
        throw ConnectionError(ReplyCode::kChannelError, "second 'channel.open' seen", cls, mid);
      }
    }
    ch.handle(cmd);
  } catch (amqp::ChannelError& e) {
    if (e.class_id == 0 && !e.keep_ids) {
      e.class_id = cls;
      e.method_id = mid;
    }
    ch.assembler().reset();
    ch.begin_close(e);
  } catch (amqp::ConnectionError& e) {
    if (e.class_id == 0 && !e.keep_ids) {
      e.class_id = cls;
      e.method_id = mid;
    }
    throw;
  }
}

void Connection::close_channel(uint16_t id) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  it->second->release();
  channels_.erase(it);
}

void Connection::release_channels() {
  if (released_) return;
  released_ = true;
  for (auto& [id, ch] : channels_) ch->release();
  channels_.clear();
  // Exclusive queues die with their connection.
  if (vhost_) {
    std::vector<Queue*> owned;
    for (const auto& [name, q] : vhost_->queues())
      if (q->owner() == this) owned.push_back(q.get());
    for (Queue* q : owned) vhost_->delete_queue(*q);
  }
}

void Connection::on_transport_closed() {
  if (state_ == State::kOpen) {
    WLOG_INFO("connection {} closed by peer (user '{}')", peer_, user_);
  }
  state_ = State::kClosed;
  release_channels();
}

void Connection::on_heartbeat_timeout() {
  WLOG_WARN("missed heartbeats from client {}, timeout: {}s", peer_, heartbeat_);
  state_ = State::kClosed;
  release_channels();
  transport_.abort();
}

void Connection::on_handshake_timeout() {
  if (state_ == State::kOpen || state_ == State::kClosed) return;
  WLOG_WARN("closing connection {}: handshake timeout", peer_);
  state_ = State::kClosed;
  release_channels();
  transport_.abort();
}

void Connection::on_output_drained() {
  for (auto& [id, ch] : channels_) ch->kick_consumers();
}

void Connection::send_heartbeat() {
  amqp::write_heartbeat_frame(out_.bytes());
  transport_.request_flush();
}

void Connection::write_content(uint16_t channel, const MessagePtr& msg) {
  std::string& b = out_.bytes();
  amqp::write_header_frame(b, channel, msg->body.size(), msg->properties);
  const size_t chunk = (frame_max_ == 0 ? 131072 : frame_max_) - amqp::kFrameOverhead;
  std::string_view body = msg->body;
  while (!body.empty()) {
    const size_t n = std::min(chunk, body.size());
    amqp::write_body_frame_header(b, channel, static_cast<uint32_t>(n));
    if (n >= OutBuffer::kRefThreshold) {
      out_.append_ref(msg, body.substr(0, n));
    } else {
      b.append(body.data(), n);
    }
    out_.bytes().push_back(static_cast<char>(amqp::kFrameEnd));
    body.remove_prefix(n);
  }
  transport_.request_flush();
}

}  // namespace warren::broker
