#include "broker/connection.h"

#include <algorithm>
#include <chrono>

#include "broker/broker.h"
#include "broker/channel.h"
#include "broker/queue.h"
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

}  // namespace

Connection::Connection(Broker& broker, Transport& transport, std::string peer,
                       bool peer_is_loopback)
    : broker_(broker),
      transport_(transport),
      peer_(std::move(peer)),
      peer_is_loopback_(peer_is_loopback),
      parser_(amqp::kFrameMinSize) {
  connected_at_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  broker_.register_connection(this);
}

Connection::~Connection() {
  for (auto& q : flow_queues_) q->forget_flow_waiter(this);
  release_channels();
  broker_.forget_store_waiter(this);
  broker_.unregister_connection(this);
}

amqp::FieldTable Connection::client_properties() const {
  if (client_properties_.empty()) return {};
  try {
    amqp::Reader r(client_properties_);
    return amqp::decode_table(r);
  } catch (const amqp::DecodeError&) {
    return {};  // encoded by us from a table that decoded: cannot happen
  }
}

size_t Connection::on_bytes(const uint8_t* data, size_t len) {
  size_t used = 0;
  try {
    if (state_ == State::kAwaitHeader) {
      if (len < 8) return 0;
      if (std::memcmp(data, "AMQP", 4) != 0) {
        // Not AMQP at all: answer with the header we speak, then close (spec 4.2.2).
        out_.bytes().append(reinterpret_cast<const char*>(kProtocolHeader), 8);
        state_ = State::kClosed;
        transport_.close_after_flush();
        return len;
      }
      const uint8_t* v = data + 4;
      // 0-9-1, and the legacy layouts RabbitMQ still accepts: "AMQP 1 1 0 9" (0-9, spoken
      // as 0-9-1) and "AMQP 1 1 8 0" / "AMQP 1 1 9 1" (0-8, answered with an 8-0 start).
      const bool v091 = v[0] == 0 && v[1] == 0 && v[2] == 9 && v[3] == 1;
      const bool v09 = v[0] == 1 && v[1] == 1 && v[2] == 0 && v[3] == 9;
      const bool v08 = v[0] == 1 && v[1] == 1 && ((v[2] == 8 && v[3] == 0) || (v[2] == 9 && v[3] == 1));
      if (!v091 && !v09 && !v08) {
        out_.bytes().append(reinterpret_cast<const char*>(kProtocolHeader), 8);
        state_ = State::kClosed;
        transport_.close_after_flush();
        return len;
      }
      used = 8;
      send_start(v08);
      state_ = State::kAwaitStartOk;
    }
    while (used < len && state_ != State::kClosed && !input_held_) {
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
    fail(ConnectionError(ReplyCode::kFrameError, std::string("cannot decode: ") + e.what()));
    return len;
  } catch (const amqp::UnknownMethod& e) {
    // RabbitMQ's reader crashes here and drops the socket; a close with a code is clearer.
    fail(ConnectionError(ReplyCode::kCommandInvalid, "unknown method", e.class_id, e.method_id));
    return len;
  }
  if (state_ == State::kClosed) return len;  // anything after the end is ignored
  return used;
}

void Connection::end_of_input_batch() {
  if (state_ != State::kOpen) return;
  for (auto& [id, ch] : channels_) ch->flush_confirms();
  // A connection that starts publishing during an alarm is blocked after this batch.
  if (published_ && !blocked_ && broker_.alarmed()) apply_alarm(true, broker_.alarm_reason());
}

void Connection::flow_pause_for(Queue& q) {
  if (state_ != State::kOpen) return;
  if (std::find(flow_queues_.begin(), flow_queues_.end(), &q) == flow_queues_.end()) {
    flow_queues_.emplace_back(&q);
    q.add_flow_waiter(this);
  }
  if (flow_paused_) return;
  WLOG_DEBUG("connection {}: flow (queue '{}' is consumed slower than it is filled)", peer_,
             q.name());
  flow_paused_ = true;
  flow_since_ms_ = now_ms();
  transport_.pause_reading(true);
}

void Connection::flow_resume_from(Queue& q) {
  std::erase_if(flow_queues_, [&](const auto& p) { return p.get() == &q; });
  if (flow_queues_.empty()) flow_resume();
}

void Connection::check_flow(int64_t now) {
  if (flow_paused_ && now - flow_since_ms_ >= 1000) flow_resume();
}

void Connection::flow_pause() {
  if (flow_paused_ || state_ != State::kOpen) return;
  flow_paused_ = true;
  flow_since_ms_ = now_ms();
  WLOG_DEBUG("connection {}: flow (store backlog {} bytes)", peer_, broker_.store_backlog_bytes());
  broker_.wait_for_store(this);
  transport_.pause_reading(true);
}

void Connection::flow_resume() {
  for (auto& q : flow_queues_) q->forget_flow_waiter(this);
  flow_queues_.clear();
  if (!flow_paused_) return;
  flow_paused_ = false;
  if (!blocked_) transport_.pause_reading(false);
}

void Connection::apply_alarm(bool alarmed, const std::string& reason) {
  if (state_ != State::kOpen) return;
  if (alarmed && published_ && !blocked_) {
    blocked_ = true;
    if (client_capability(kConnectionBlocked)) {
      amqp::ConnectionBlocked b;
      b.reason = reason;
      send_method(0, b);
    }
    transport_.pause_reading(true);
  } else if (!alarmed && blocked_) {
    blocked_ = false;
    if (client_capability(kConnectionBlocked)) send_method(0, amqp::ConnectionUnblocked{});
    if (!flow_paused_) transport_.pause_reading(false);
  }
}

void Connection::fail(const amqp::AmqpError& e, bool even_in_handshake) {
  if (state_ == State::kClosed || state_ == State::kClosing) return;
  WLOG_WARN("closing AMQP connection {} (user '{}'): {} (class {} method {})", peer_, user_,
            e.reply_text(), e.class_id, e.method_id);
  if (state_ == State::kAwaitHeader ||
      (!even_in_handshake && (state_ == State::kAwaitStartOk || state_ == State::kAwaitTuneOk))) {
    silent_close(e.reply_text());
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
  // RabbitMQ waits 30 s for close-ok, but only 3 s after a fatal frame error or a refused
  // login.
  transport_.start_close_timer(e.fatal || even_in_handshake ? 3000 : 30000);
}

void Connection::close_forced(const std::string& reason) {
  if (state_ == State::kOpen) {
    fail(ConnectionError(ReplyCode::kConnectionForced, reason));
  } else if (state_ != State::kClosed && state_ != State::kClosing) {
    state_ = State::kClosed;
    transport_.abort();
  }
}

void Connection::send_start(bool amqp_0_8) {
  amqp::ConnectionStart start;
  start.version_major = amqp_0_8 ? 8 : 0;
  start.version_minor = amqp_0_8 ? 0 : 9;
  amqp::FieldTable caps;
  for (const char* c : {"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                        "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                        "authentication_failure_close", "per_consumer_qos", "direct_reply_to"}) {
    caps.set(c, true);
  }
  amqp::FieldTable props;
  if (amqp_0_8) caps = {};  // RabbitMQ advertises no capabilities to 0-8 clients
  props.set("capabilities", std::move(caps));
  props.set("cluster_name", "warren@localhost");
  props.set("copyright", "Copyright (c) the Warren authors");
  props.set("information", "Warren, an AMQP 0-9-1 broker compatible with RabbitMQ");
  props.set("platform", std::string("Warren ") + kVersion + " (C++20)");
  props.set("product", kCompatProduct);
  props.set("version", kCompatVersion);
  props.set("warren_version", kVersion);
  start.server_properties = std::move(props);
  std::string mechanisms;
  for (const auto& m : offered_mechanisms()) {
    if (!mechanisms.empty()) mechanisms += ' ';
    mechanisms += m;
  }
  start.mechanisms = mechanisms;
  start.locales = "en_US";
  // The frame is the same for every connection offered the same mechanisms: encode it once
  // and send it by reference, so that no connection holds a kilobyte of buffer for it.
  std::string frame;
  amqp::write_method_frame(frame, 0, start);
  static std::map<std::string, MessagePtr> shared_frames;  // a handful of variants
  auto it = shared_frames.find(frame);
  if (it == shared_frames.end()) {
    if (shared_frames.size() >= 16) shared_frames.clear();
    MessagePtr m(new Message);
    m->body_storage = frame;
    it = shared_frames.emplace(std::move(frame), std::move(m)).first;
  }
  out_.append_ref(it->second, it->second->body());
  transport_.request_flush();
}

void Connection::silent_close(const std::string& why) {
  WLOG_WARN("closing connection {} during the handshake: {}", peer_, why);
  state_ = State::kClosed;
  release_channels();
  transport_.close_silently(3000);
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
  const bool handshaking = state_ == State::kAwaitStartOk || state_ == State::kAwaitTuneOk;
  if (f.type == amqp::kFrameHeartbeat) {
    if (f.channel != 0) {
      throw ConnectionError(ReplyCode::kUnexpectedFrame, amqp::frame_error_text(f.type, {}, ""));
    }
    return;
  }
  if (f.channel == 0) {
    if (f.type != amqp::kFrameMethod) {
      if (handshaking) return silent_close("content frame during the handshake");
      throw ConnectionError(ReplyCode::kUnexpectedFrame,
                            amqp::frame_error_text(f.type, f.type == amqp::kFrameBody
                                                               ? std::string_view()
                                                               : f.payload,
                                                   ""));
    }
    handle_connection_method(f);
    return;
  }
  if (handshaking) return silent_close("channel frame before the connection was tuned");
  if (state_ != State::kOpen) {
    throw ConnectionError(ReplyCode::kUnexpectedFrame, amqp::frame_error_text(f.type, f.payload, ""));
  }
  dispatch_channel_frame(f);
}

void Connection::handle_connection_method(const amqp::Frame& f) {
  amqp::Reader peek(f.payload);
  const uint16_t cls = peek.u16();
  const uint16_t mid = peek.u16();
  const bool handshaking = state_ == State::kAwaitStartOk || state_ == State::kAwaitTuneOk;
  if (!amqp::method_known(cls, mid)) {
    if (handshaking) return silent_close("unknown method during the handshake");
    throw amqp::UnknownMethod(cls, mid);
  }
  amqp::Method m;
  try {
    m = amqp::decode_method_exact(f.payload, cls, mid);
  } catch (const amqp::AmqpError&) {
    if (handshaking) return silent_close("malformed method during the handshake");
    throw;
  }
  // What each state accepts; anything else is "unexpected method in connection state X"
  // once the connection is tuned, and a silent close before that (RabbitMQ's reader).
  auto unexpected = [&](const char* state_name) {
    throw ConnectionError(ReplyCode::kChannelError,
                          std::string("unexpected method in connection state ") + state_name,
                          cls, mid);
  };
  switch (state_) {
    case State::kAwaitStartOk:
      if (auto* so = std::get_if<amqp::ConnectionStartOk>(&m)) return on_start_ok(*so);
      return silent_close("expected connection.start-ok, got " + std::string(amqp::method_name(cls, mid)));
    case State::kAwaitTuneOk:
      if (auto* to = std::get_if<amqp::ConnectionTuneOk>(&m)) return on_tune_ok(*to);
      return silent_close("expected connection.tune-ok, got " + std::string(amqp::method_name(cls, mid)));
    case State::kAwaitOpen:
      if (auto* op = std::get_if<amqp::ConnectionOpen>(&m)) return on_open(*op);
      unexpected("opening");
      return;
    case State::kOpen:
      if (std::holds_alternative<amqp::ConnectionClose>(m)) {
        release_channels();
        send_method(0, amqp::ConnectionCloseOk{});
        state_ = State::kClosed;
        // The client closes the socket after close-ok; give it 30 s, as RabbitMQ does.
        transport_.linger(30000);
        return;
      }
      if (std::holds_alternative<amqp::ConnectionUpdateSecret>(m)) {
        // PLAIN/AMQPLAIN secrets do not expire; RabbitMQ just re-checks the user.
        send_method(0, amqp::ConnectionUpdateSecretOk{});
        return;
      }
      unexpected("running");
      return;
    default:
      return;
  }
}

std::vector<std::string> Connection::offered_mechanisms() const {
  std::vector<std::string> out;
  for (const auto& m : broker_.config().auth_mechanisms) {
    // rabbitmq_auth_mechanism_ssl offers EXTERNAL only when the client sent a certificate.
    if (m == "EXTERNAL" && !peer_identity_.has_certificate) continue;
    out.push_back(m);
  }
  return out;
}

void Connection::on_start_ok(const amqp::ConnectionStartOk& m) {
  client_properties_.clear();
  amqp::Writer w(client_properties_);
  amqp::encode_table(w, m.client_properties);
  client_properties_.shrink_to_fit();
  capabilities_ = 0;
  if (const amqp::FieldValue* caps = m.client_properties.find("capabilities"); caps && caps->as_table()) {
    auto on = [&](const char* name) {
      const amqp::FieldValue* v = caps->as_table()->find(name);
      return v && v->as_bool().value_or(false);
    };
    if (on("consumer_cancel_notify")) capabilities_ |= kConsumerCancelNotify;
    if (on("connection.blocked")) capabilities_ |= kConnectionBlocked;
    if (on("authentication_failure_close")) capabilities_ |= kAuthenticationFailureClose;
  }
  const auto offered = offered_mechanisms();
  if (std::find(offered.begin(), offered.end(), m.mechanism) == offered.end()) {
    return silent_close("unknown authentication mechanism '" + std::string(m.mechanism) + "'");
  }
  std::optional<auth::Credentials> cred;
  const bool external = m.mechanism == "EXTERNAL";
  if (m.mechanism == "PLAIN") {
    cred = auth::parse_plain(m.response);
  } else if (m.mechanism == "AMQPLAIN") {
    cred = auth::parse_amqplain(m.response);
  } else {
    // EXTERNAL: the name comes from the certificate (ssl_cert_login_from); the response is
    // ignored, and there is no password to check.
    cred = auth::Credentials{broker_.config().ssl_cert_login_from == "common_name"
                                 ? peer_identity_.common_name
                                 : peer_identity_.distinguished_name,
                             ""};
  }
  if (!cred) {
    return silent_close("malformed " + std::string(m.mechanism) + " response");
  }
  // A refused login is a connection.close only for clients that advertise
  // authentication_failure_close; others just see the socket close.
  mechanism_ = std::string(m.mechanism);
  // Logged as RabbitMQ logs it, never with the password; failures slow the address down
  // (auth::LoginThrottle, applied when its next connection is accepted).
  const std::string address = peer_.substr(0, peer_.rfind(':'));
  auto refuse = [&](const std::string& why) {
    WLOG_WARN("closing connection {}: {} login refused: {}", peer_, m.mechanism, why);
    broker_.login_throttle().record_failure(address, now_ms());
    if (!client_capability(kAuthenticationFailureClose)) return silent_close(why);
    fail(ConnectionError(ReplyCode::kAccessRefused,
                         "Login was refused using authentication mechanism " +
                             std::string(m.mechanism) + ". For details see the broker logfile."),
         /*even_in_handshake=*/true);
  };
  const auth::User* u = external ? broker_.users().find(cred->user)
                                 : broker_.users().authenticate(cred->user, cred->password);
  if (!u) {
    return refuse(external ? "no user '" + cred->user + "' for the client certificate"
                           : "user '" + cred->user + "' - invalid credentials");
  }
  const auto& lb = broker_.config().loopback_users;
  if (!peer_is_loopback_ && std::find(lb.begin(), lb.end(), u->name) != lb.end()) {
    return refuse("user '" + u->name + "' can only connect via localhost");
  }
  broker_.login_throttle().record_success(address);
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
  // RabbitMQ refuses 0 ("no limit") and anything above its own offer, and a frame_max
  // under 4096, by closing without a word ("failed to negotiate connection parameters").
  if (m.frame_max < amqp::kFrameMinSize || (cfg.frame_max != 0 && m.frame_max > cfg.frame_max)) {
    return silent_close("failed to negotiate connection parameters: negotiated frame_max = " +
                        std::to_string(m.frame_max) + " is outside " +
                        std::to_string(amqp::kFrameMinSize) + ".." + std::to_string(cfg.frame_max));
  }
  if (m.channel_max == 0 || (cfg.channel_max != 0 && m.channel_max > cfg.channel_max)) {
    return silent_close("failed to negotiate connection parameters: negotiated channel_max = " +
                        std::to_string(m.channel_max) + " is higher than the maximum allowed value (" +
                        std::to_string(cfg.channel_max) + ")");
  }
  channel_max_ = m.channel_max;
  frame_max_ = m.frame_max;
  parser_.set_max_frame(frame_max_);
  heartbeat_ = m.heartbeat;
  state_ = State::kAwaitOpen;
  // Heartbeats start with the tuning, before connection.open (as RabbitMQ's reader).
  transport_.start_heartbeat(heartbeat_);
}

void Connection::on_open(const amqp::ConnectionOpen& m) {
  VHost* v = broker_.find_vhost(m.virtual_host);
  // RabbitMQ's reader checks the vhost's connection limit before the vhost access.
  if (auto limit = v ? broker_.vhost_limit(v->name(), "max-connections") : std::nullopt) {
    const auto open = std::count_if(broker_.connections().begin(), broker_.connections().end(),
                                    [v](Connection* c) {
                                      return c->vhost_ == v && c->state_ == State::kOpen;
                                    });
    if (open >= *limit) {
      throw ConnectionError(ReplyCode::kNotAllowed,
                            "access to vhost '" + v->name() + "' refused for user '" + user_ +
                                "': connection limit (" + std::to_string(*limit) +
                                ") is reached",
                            amqp::ConnectionOpen::kClassId, amqp::ConnectionOpen::kMethodId);
    }
  }
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
  WLOG_INFO("connection {} opened: user '{}', vhost '{}'", peer_, user_, v->name());
}

void Connection::open_channel_frame(const amqp::Frame& f) {
  // RabbitMQ limits how many channels are open, not the channel numbers.
  if (channels_.size() >= channel_max_) {
    throw ConnectionError(ReplyCode::kNotAllowed,
                          "number of channels opened (" + std::to_string(channels_.size()) +
                              ") has reached the negotiated channel_max (" +
                              std::to_string(channel_max_) + ")");
  }
  auto pending = unopened_.find(f.channel);
  if (pending == unopened_.end()) {
    if (f.type != amqp::kFrameMethod) {
      throw ConnectionError(ReplyCode::kUnexpectedFrame,
                            "expected method frame, got non method frame instead");
    }
    amqp::Reader r(f.payload);
    const uint16_t cls = r.u16(), mid = r.u16();
    if (cls == amqp::kClassChannel && mid == amqp::ChannelOpen::kMethodId) {
      amqp::decode_method_exact(f.payload, cls, mid);
      channels_.emplace(f.channel, std::make_unique<Channel>(*this, f.channel));
      ++broker_.churn().channels_opened;
      send_method(f.channel, amqp::ChannelOpenOk{});
      return;
    }
    if (!amqp::method_known(cls, mid)) throw amqp::UnknownMethod(cls, mid);
    if (!amqp::method_has_content(cls, mid)) {
      throw ConnectionError(ReplyCode::kChannelError, "expected 'channel.open'", cls, mid);
    }
    pending = unopened_.emplace(f.channel, amqp::CommandAssembler()).first;
  }
  amqp::Command cmd;
  if (pending->second.feed(f, cmd)) {
    unopened_.erase(pending);
    throw ConnectionError(ReplyCode::kChannelError, "expected 'channel.open'", cmd.class_id,
                          cmd.method_id);
  }
}

void Connection::dispatch_channel_frame(const amqp::Frame& f) {
  auto it = channels_.find(f.channel);
  if (it == channels_.end()) return open_channel_frame(f);
  Channel& ch = *it->second;
  amqp::Command cmd;
  uint16_t cls = 0, mid = 0;
  try {
    if (!ch.assembler().feed(f, cmd)) return;
    cls = cmd.class_id;
    mid = cmd.method_id;
    const bool is_channel_class = cls == amqp::kClassChannel;
    if (ch.state() == Channel::State::kClosing) {
      // Everything is dropped until close-ok; frame order is still checked (above).
      if (is_channel_class && mid == amqp::ChannelCloseOk::kMethodId) {
        close_channel(f.channel);
      } else if (is_channel_class && mid == amqp::ChannelClose::kMethodId) {
        send_method(f.channel, amqp::ChannelCloseOk{});  // still waiting for our close-ok
      } else if (is_channel_class && mid == amqp::ChannelOpen::kMethodId) {
        throw ConnectionError(ReplyCode::kChannelError, "second 'channel.open' seen", cls, mid);
      }
      return;
    }
    if (is_channel_class) {
      if (mid == amqp::ChannelClose::kMethodId) {
        ch.release();
        send_method(f.channel, amqp::ChannelCloseOk{});
        close_channel(f.channel);
        return;
      }
      if (mid == amqp::ChannelCloseOk::kMethodId) {
        throw ConnectionError(ReplyCode::kCommandInvalid, "unimplemented method", cls, mid);
      }
      if (mid == amqp::ChannelOpen::kMethodId) {
        throw ConnectionError(ReplyCode::kChannelError, "second 'channel.open' seen", cls, mid);
      }
    }
    if (cls == amqp::kClassAccess && mid == amqp::AccessRequest::kMethodId) {
      // Deprecated in 0-9-1; RabbitMQ answers with ticket 1 for old clients.
      amqp::AccessRequestOk ok;
      ok.reserved_1 = 1;
      send_method(f.channel, ok);
      return;
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
  ++broker_.churn().channels_closed;
}

void Connection::trim_if_idle(int64_t now) {
  const uint64_t activity = recv_cnt_ + send_cnt_;
  if (activity != activity_seen_) {
    activity_seen_ = activity;
    idle_since_ = now;
    trimmed_ = false;
    return;
  }
  if (trimmed_ || now - idle_since_ < 1000 || !out_.empty()) return;
  trimmed_ = true;
  out_.release();
  transport_.release_idle_buffers();
}

void Connection::sample_stats(double seconds) {
  recv_oct_.sample(seconds);
  send_oct_.sample(seconds);
  for (auto& [id, ch] : channels_) ch->stats().sample(seconds);
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

void Connection::check_consumer_timeouts(int64_t now) {
  if (state_ != State::kOpen) return;
  for (auto& [id, ch] : channels_) ch->check_consumer_timeout(now);
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
  amqp::write_header_frame(b, channel, msg->body_size(), msg->properties);
  const size_t chunk = (frame_max_ == 0 ? 131072 : frame_max_) - amqp::kFrameOverhead;
  std::string_view body = msg->body();
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
