#include "broker/channel.h"

#include <algorithm>

#include "amqp/errors.h"
#include "amqp/properties.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/vhost.h"
#include "common/log.h"
#include "exchange/exchange.h"

namespace warren::broker {

using amqp::ChannelError;
using amqp::ConnectionError;
using amqp::ReplyCode;

namespace {
std::string quote_bool(bool b) { return b ? "'true'" : "'false'"; }

bool has_reserved_prefix(std::string_view name) { return name.rfind("amq.", 0) == 0; }

}  // namespace

namespace {
std::string type_name(const amqp::FieldValue& v);
}  // namespace

void sender_selected_keys(Message& msg, std::vector<std::string>& keys) {
  if (!msg.summary.has_headers || (!amqp::raw_headers_have_key(msg.properties, "CC") &&
                                   !amqp::raw_headers_have_key(msg.properties, "BCC"))) {
    return;
  }
  auto props = amqp::BasicProperties::decode(msg.properties, true);
  for (const char* h : {"CC", "BCC"}) {
    if (const amqp::FieldValue* v = props.headers.find(h)) {
      const amqp::FieldArray* a = v->as_array();
      if (!a) {
        throw ChannelError(ReplyCode::kPreconditionFailed,
                           std::string("invalid message: {unacceptable_type_in_header,\"") + h +
                               "\"," + type_name(*v) + "}");
      }
      for (const auto& k : *a)
        if (auto s = k.as_string()) keys.emplace_back(*s);
    }
  }
  if (props.headers.find("BCC")) {
    props.headers.erase("BCC");
    std::string rewritten;
    amqp::Writer w(rewritten);
    props.encode(w);
    msg.properties = std::move(rewritten);  // not shared yet: still the publisher's to change
  }
}

int64_t parse_expiration(std::string_view s) {
  std::string err;
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  const size_t digits_start = i;
  int64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && v < (int64_t{1} << 52)) v = v * 10 + (s[i++] - '0');
  if (i == digits_start) {
    err = "no_integer";
  } else if (i != s.size()) {
    err = "{leftover_string,\"" + std::string(s.substr(i)) + "\"}";
  } else if (neg && v != 0) {
    err = "{value_negative,-" + std::to_string(v) + "}";
  }
  if (!err.empty()) {
    throw ChannelError(ReplyCode::kPreconditionFailed,
                       "invalid expiration '" + std::string(s) + "': " + err);
  }
  return v;
}

namespace {
// RabbitMQ's name for a field value's type in inequivalence messages.
std::string type_name(const amqp::FieldValue& v) {
  switch (v.type_char()) {
    case 'S': return "longstr";
    case 'I': return "signedint";
    case 'i': return "unsignedint";
    case 'l': return "long";
    case 's': return "short";
    case 'u': return "unsignedshort";
    case 'b': return "byte";
    case 'B': return "unsignedbyte";
    case 't': return "bool";
    case 'd': return "double";
    case 'f': return "float";
    case 'F': return "table";
    case 'A': return "array";
    case 'T': return "timestamp";
    case 'D': return "decimal";
    case 'x': return "binary";
    default: return "void";
  }
}

// Queue arguments whose values RabbitMQ compares on redeclaration.
constexpr const char* kQueueEquivArgs[] = {
    "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-expires", "x-max-length",
    "x-max-length-bytes", "x-max-priority", "x-message-ttl", "x-overflow", "x-queue-mode",
    "x-queue-type", "x-single-active-consumer", "x-queue-master-locator", "x-queue-version"};

bool is_int(const amqp::FieldValue& v) { return v.as_int().has_value(); }

// Validates the queue arguments RabbitMQ knows. Returns "" or a message in which \x01 marks
// where "queue 'q' in vhost 'v'" goes.
std::string validate_queue_arguments(const amqp::FieldTable& args) {
  for (const auto& entry : args.entries) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture those in lambdas.
    const std::string& key = entry.first;
    const amqp::FieldValue& v = entry.second;
    std::string err;
    auto need_int = [&]() -> bool {
      if (is_int(v)) return true;
      err = "\"expected integer, got " + type_name(v) + "\"";
      return false;
    };
    if (key == "x-message-ttl" || key == "x-max-length" || key == "x-max-length-bytes" ||
        key == "x-max-priority") {
      if (need_int() && *v.as_int() < 0) err = "{value_negative," + std::to_string(*v.as_int()) + "}";
      if (err.empty() && key == "x-max-priority" && *v.as_int() > 255) {
        err = "{max_value_exceeded," + std::to_string(*v.as_int()) + "}";
      }
    } else if (key == "x-expires") {
      if (need_int()) {
        if (*v.as_int() == 0) err = "{value_zero,0}";
        else if (*v.as_int() < 0) err = "{value_negative," + std::to_string(*v.as_int()) + "}";
      }
    } else if (key == "x-dead-letter-exchange") {
      if (!std::holds_alternative<amqp::LongString>(v.v)) {
        // RabbitMQ resolves the DLX name first, with its own wording.
        return "\x02invalid type '" + type_name(v) + "' for arg '" + key + "' in \x01";
      }
    } else if (key == "x-dead-letter-routing-key") {
      if (!std::holds_alternative<amqp::LongString>(v.v)) err = "{unacceptable_type," + type_name(v) + "}";
    } else if (key == "x-single-active-consumer") {
      if (!v.as_bool()) err = "{unacceptable_type," + type_name(v) + "}";
    } else if (key == "x-overflow") {
      auto s = v.as_string();
      if (!s) {
        err = "{unacceptable_type," + type_name(v) + "}";
      } else if (*s != "drop-head" && *s != "reject-publish" && *s != "reject-publish-dlx") {
        err = "invalid_overflow";
      }
    } else if (key == "x-queue-mode") {
      auto s = v.as_string();
      if (!s || (*s != "default" && *s != "lazy")) {
        err = "\"unsupported queue mode '" + amqp::value_to_text(v) + "'\"";
      }
    } else if (key == "x-queue-version") {
      auto n = v.as_int();
      if (!n || (*n != 1 && *n != 2)) {
        err = "\"unsupported queue version '" + amqp::value_to_text(v) + "'\"";
      }
    } else if (key == "x-queue-type") {
      auto s = v.as_string();
      if (!s || (*s != "classic" && *s != "quorum" && *s != "stream")) {
        err = "\"unsupported queue type '" + amqp::value_to_text(v) + "'\"";
      }
    }
    if (!err.empty()) return "invalid arg '" + key + "' for \x01: " + err;
  }
  if (args.find("x-dead-letter-routing-key") && !args.find("x-dead-letter-exchange")) {
    return "invalid arg 'x-dead-letter-routing-key' for \x01: routing_key_but_no_dlx_defined";
  }
  return {};
}

bool same_int_value(const amqp::FieldValue& a, const amqp::FieldValue& b) {
  auto x = a.as_int(), y = b.as_int();
  return x && y && *x == *y;
}

}  // namespace

void check_equivalent_args(const amqp::FieldTable& current, const amqp::FieldTable& received,
                           const std::string& what) {
  for (const char* key : kQueueEquivArgs) {
    const amqp::FieldValue* c = current.find(key);
    const amqp::FieldValue* r = received.find(key);
    if (!c && !r) continue;
    if (c && r && (*c == *r || same_int_value(*c, *r))) continue;
    // Both present: bare quoted values; one missing: typed value against "none".
    auto show = [&](const amqp::FieldValue* v) -> std::string {
      if (!v) return "none";
      if (c && r) return "'" + amqp::value_to_text(*v) + "'";
      return "the value '" + amqp::value_to_text(*v) + "' of type '" + type_name(*v) + "'";
    };
    std::string rs = show(r);
    std::string cs = show(c);
    throw ChannelError(ReplyCode::kPreconditionFailed,
                       "inequivalent arg '" + std::string(key) + "' for " + what + ": received " +
                           rs + " but current is " + cs);
  }
}

std::string queue_arguments_error(const amqp::FieldTable& args, const std::string& where) {
  if (std::string err = validate_queue_arguments(args); !err.empty()) {
    // \x01 marks where the queue's description goes; \x02 a message of its own wording.
    const size_t at = err.find('\x01');
    std::string text = err.substr(0, at) + where + err.substr(at + 1);
    if (text[0] == '\x02') text = text.substr(1);
    return text;
  }
  if (const amqp::FieldValue* qt = args.find("x-queue-type")) {
    if (auto s = qt->as_string(); *s != "classic") {
      return "invalid arg 'x-queue-type' for " + where + ": queue type '" + std::string(*s) +
             "' is not supported by Warren yet";
    }
  }
  return "";
}

Channel::Channel(Connection& conn, uint16_t id)
    : conn_(conn), id_(id), assembler_(conn.broker().config().max_message_size) {}

Channel::~Channel() { release(); }

void Channel::queue_reply(std::string frame, bool wait_for_commit) {
  replies_.push_back(PendingReply{std::move(frame), !wait_for_commit});
  if (!wait_for_commit) return drain_replies();
  // Commits complete in order, so each callback readies the oldest reply still waiting.
  conn_.broker().store()->sync([alive = std::weak_ptr<int>(alive_), this](bool) {
    if (alive.expired()) return;
    for (auto& r : replies_) {
      if (!r.ready) {
        r.ready = true;
        break;
      }
    }
    drain_replies();
  });
}

void Channel::drain_replies() {
  while (!replies_.empty() && replies_.front().ready) {
    conn_.out().bytes() += replies_.front().frame;
    replies_.pop_front();
  }
  conn_.request_flush();
}

VHost& Channel::vhost() { return *conn_.vhost(); }

void Channel::begin_close(const amqp::AmqpError& e) {
  amqp::ChannelClose close;
  close.reply_code = static_cast<uint16_t>(e.code);
  const std::string text = e.reply_text();
  close.reply_text = text;
  close.class_id = e.class_id;
  close.method_id = e.method_id;
  release();
  conn_.send_method(id_, close);
  state_ = State::kClosing;
}

void Channel::release() {
  replies_.clear();
  if (!reply_token_.empty()) {
    conn_.broker().unregister_reply_channel(reply_token_);
    reply_token_.clear();
    reply_tag_.clear();
  }
  // Cancel consumers first so requeued messages are not delivered back to them.
  std::vector<std::string> tags;
  for (const auto& [tag, c] : consumers_) tags.push_back(tag);
  for (const auto& tag : tags) cancel_consumer(tag, false);
  // Requeue unacked in tag order; each goes back to its original position.
  std::vector<Queue*> touched;
  for (auto& u : unacked_) {
    if (u.settled) continue;
    u.settled = true;
    u.queue->requeue(std::move(u.entry));
    touched.push_back(u.queue.get());
  }
  unacked_.clear();
  unacked_live_ = 0;
  tx_publishes_.clear();
  tx_settles_.clear();
  dispatch_each(touched);
}

std::string Channel::queue_name_or_last(std::string_view name) {
  if (!name.empty()) return std::string(name);
  if (last_queue_.empty()) {
    throw ChannelError(ReplyCode::kNotFound, "no previously declared queue");
  }
  return last_queue_;
}

void Channel::check_exclusive(const Queue& q) {
  if (q.exclusive() && q.owner() != &conn_) throw_locked(q);
}

void Channel::throw_locked(const Queue& q) {
  {
    throw ChannelError(ReplyCode::kResourceLocked,
                       "cannot obtain exclusive access to locked queue '" + q.name() +
                           "' in vhost '" + vhost().name() +
                           "'. It could be originally declared on another connection or the "
                           "exclusive property value does not match that of the original "
                           "declaration.");
  }
}

Queue& Channel::queue_for(std::string_view name) {
  Queue* q = vhost().find_queue(name);
  if (!q) {
    throw ChannelError(ReplyCode::kNotFound, "no queue '" + std::string(name) + "' in vhost '" +
                                                 vhost().name() + "'");
  }
  check_exclusive(*q);
  return *q;
}

Exchange& Channel::exchange_for(std::string_view name) {
  Exchange* x = vhost().find_exchange(name);
  if (!x) {
    throw ChannelError(ReplyCode::kNotFound, "no exchange '" + std::string(name) +
                                                 "' in vhost '" + vhost().name() + "'");
  }
  return *x;
}

void Channel::handle(amqp::Command& cmd) {
  const amqp::Method& m = *cmd.method;
  writes_at_command_ = conn_.broker().store_writes();
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, amqp::ChannelFlow>) {
          if (!x.active) {
            throw ConnectionError(ReplyCode::kNotImplemented, "active=false", T::kClassId,
                                  T::kMethodId);
          }
          amqp::ChannelFlowOk ok;
          ok.active = true;
          reply(ok);
        } else if constexpr (std::is_same_v<T, amqp::ChannelFlowOk>) {
          // The broker never sends channel.flow; nothing to confirm.
        } else if constexpr (std::is_same_v<T, amqp::ExchangeDeclare>) {
          on_exchange_declare(x);
        } else if constexpr (std::is_same_v<T, amqp::ExchangeDelete>) {
          on_exchange_delete(x);
        } else if constexpr (std::is_same_v<T, amqp::ExchangeBind>) {
          on_exchange_bind(x, true);
        } else if constexpr (std::is_same_v<T, amqp::ExchangeUnbind>) {
          amqp::ExchangeBind b;
          b.destination = x.destination;
          b.source = x.source;
          b.routing_key = x.routing_key;
          b.no_wait = x.no_wait;
          b.arguments = x.arguments;
          on_exchange_bind(b, false);
        } else if constexpr (std::is_same_v<T, amqp::QueueDeclare>) {
          on_queue_declare(x);
        } else if constexpr (std::is_same_v<T, amqp::QueueBind>) {
          on_queue_bind(x);
        } else if constexpr (std::is_same_v<T, amqp::QueueUnbind>) {
          on_queue_unbind(x);
        } else if constexpr (std::is_same_v<T, amqp::QueuePurge>) {
          on_queue_purge(x);
        } else if constexpr (std::is_same_v<T, amqp::QueueDelete>) {
          on_queue_delete(x);
        } else if constexpr (std::is_same_v<T, amqp::BasicQos>) {
          on_basic_qos(x);
        } else if constexpr (std::is_same_v<T, amqp::BasicConsume>) {
          on_basic_consume(x);
        } else if constexpr (std::is_same_v<T, amqp::BasicCancel>) {
          on_basic_cancel(x);
        } else if constexpr (std::is_same_v<T, amqp::BasicPublish>) {
          on_basic_publish(x, cmd);
        } else if constexpr (std::is_same_v<T, amqp::BasicGet>) {
          on_basic_get(x);
        } else if constexpr (std::is_same_v<T, amqp::BasicAck>) {
          on_settle(SettleKind::kAck, x.delivery_tag, x.multiple, false);
        } else if constexpr (std::is_same_v<T, amqp::BasicReject>) {
          on_settle(SettleKind::kReject, x.delivery_tag, false, x.requeue);
        } else if constexpr (std::is_same_v<T, amqp::BasicNack>) {
          on_settle(SettleKind::kReject, x.delivery_tag, x.multiple, x.requeue);
        } else if constexpr (std::is_same_v<T, amqp::BasicRecover>) {
          on_basic_recover(x.requeue);
          reply(amqp::BasicRecoverOk{});
        } else if constexpr (std::is_same_v<T, amqp::BasicRecoverAsync>) {
          on_basic_recover(x.requeue);
        } else if constexpr (std::is_same_v<T, amqp::ConfirmSelect>) {
          if (tx_mode_) {
            throw ChannelError(ReplyCode::kPreconditionFailed,
                               "cannot switch from tx to confirm mode");
          }
          confirm_mode_ = true;
          if (!x.nowait) reply(amqp::ConfirmSelectOk{});
        } else if constexpr (std::is_same_v<T, amqp::TxSelect>) {
          if (confirm_mode_) {
            throw ChannelError(ReplyCode::kPreconditionFailed,
                               "cannot switch from confirm to tx mode");
          }
          tx_mode_ = true;
          reply(amqp::TxSelectOk{});
        } else if constexpr (std::is_same_v<T, amqp::TxCommit>) {
          on_tx_commit();
        } else if constexpr (std::is_same_v<T, amqp::TxRollback>) {
          on_tx_rollback();
        } else if constexpr (std::is_same_v<T, std::monostate>) {
        } else {
          // A method only the server sends (deliver, get-ok, ...) or one of another class.
          throw ConnectionError(ReplyCode::kCommandInvalid, "unimplemented method",
                                T::kClassId, T::kMethodId);
        }
      },
      m);
}

// ---------------------------------------------------------------- exchanges

void Channel::on_exchange_declare(const amqp::ExchangeDeclare& m) {
  const std::string name(m.exchange);
  const std::string where = "exchange '" + name + "' in vhost '" + vhost().name() + "'";
  if (name.empty()) {
    throw ChannelError(ReplyCode::kAccessRefused, "operation not permitted on the default exchange");
  }
  if (m.passive) {
    exchange_for(name);
    if (!m.no_wait) reply(amqp::ExchangeDeclareOk{});
    return;
  }
  const std::string type(m.type_);
  if (!exchange::Registry::builtin().has(type)) {
    throw ConnectionError(ReplyCode::kCommandInvalid, "unknown exchange type '" + type + "'");
  }
  check_access(auth::Access::kConfigure, "exchange", name);
  if (const amqp::FieldValue* ae = m.arguments.find("alternate-exchange")) {
    if (!ae->as_string()) {
      throw ChannelError(ReplyCode::kPreconditionFailed,
                         "invalid arg 'alternate-exchange' for " + where + ": \"" +
                             amqp::value_to_text(*ae) + "\" is not a valid exchange name");
    }
  }
  if (Exchange* x = vhost().find_exchange(name)) {
    auto inequivalent = [&](const char* arg, const std::string& got, const std::string& cur) {
      throw ChannelError(ReplyCode::kPreconditionFailed,
                         std::string("inequivalent arg '") + arg + "' for " + where +
                             ": received " + got + " but current is " + cur);
    };
    if (x->type != type) inequivalent("type", "'" + type + "'", "'" + x->type + "'");
    if (x->durable != m.durable) inequivalent("durable", quote_bool(m.durable), quote_bool(x->durable));
    if (x->auto_delete != m.auto_delete) {
      inequivalent("auto_delete", quote_bool(m.auto_delete), quote_bool(x->auto_delete));
    }
    if (x->internal != m.internal) {
      inequivalent("internal", quote_bool(m.internal), quote_bool(x->internal));
    }
    const amqp::FieldValue* cur = x->arguments.find("alternate-exchange");
    const amqp::FieldValue* got = m.arguments.find("alternate-exchange");
    if ((cur == nullptr) != (got == nullptr) || (cur && !(*cur == *got))) {
      inequivalent("alternate-exchange",
                   got ? "the value '" + amqp::value_to_text(*got) + "' of type 'longstr'" : "none",
                   cur ? "the value '" + amqp::value_to_text(*cur) + "' of type 'longstr'" : "none");
    }
  } else {
    if (has_reserved_prefix(name)) {
      throw ChannelError(ReplyCode::kAccessRefused,
                         "exchange name '" + name + "' contains reserved prefix 'amq.*'");
    }
    if (const amqp::FieldValue* ae = m.arguments.find("alternate-exchange")) {
      // RabbitMQ: read on the new exchange, write on its alternate.
      check_access(auth::Access::kRead, "exchange", name);
      check_access(auth::Access::kWrite, "exchange", *ae->as_string());
    }
    std::string err;
    if (!vhost().add_exchange(name, type, m.durable, m.auto_delete, m.internal, m.arguments,
                              &err)) {
      throw ChannelError(ReplyCode::kPreconditionFailed, err);
    }
  }
  if (!m.no_wait) reply(amqp::ExchangeDeclareOk{});
}

void Channel::on_exchange_delete(const amqp::ExchangeDelete& m) {
  const std::string name(m.exchange);
  if (name.empty()) {
    throw ChannelError(ReplyCode::kAccessRefused, "operation not permitted on the default exchange");
  }
  if (has_reserved_prefix(name)) {
    throw ChannelError(ReplyCode::kAccessRefused, "deletion of system exchange '" + name +
                                                      "' in vhost '" + vhost().name() +
                                                      "' not allowed");
  }
  check_access(auth::Access::kConfigure, "exchange", name);
  if (Exchange* x = vhost().find_exchange(name)) {
    if (m.if_unused && (!x->bindings.empty() || x->bound_as_destination > 0)) {
      throw ChannelError(ReplyCode::kPreconditionFailed,
                         "exchange '" + name + "' in vhost '" + vhost().name() + "' in use");
    }
    vhost().delete_exchange(*x);
  }
  if (!m.no_wait) reply(amqp::ExchangeDeleteOk{});
}

void Channel::on_exchange_bind(const amqp::ExchangeBind& m, bool bind) {
  const std::string src(m.source), dst(m.destination);
  // RabbitMQ's binding_action: write on the destination, read on the source (and its topic
  // permission for the binding key), both before anything is looked up.
  check_access(auth::Access::kWrite, "exchange", dst);
  if (src.empty() || dst.empty()) {
    throw ChannelError(ReplyCode::kAccessRefused, "operation not permitted on the default exchange");
  }
  check_access(auth::Access::kRead, "exchange", src);
  if (Exchange* s = vhost().find_exchange(src)) {
    check_topic_access(*s, m.routing_key, auth::Access::kRead);
  }
  if (!bind) {
    Exchange* d = vhost().find_exchange(dst);
    Exchange* s = vhost().find_exchange(src);
    if (d && s) vhost().unbind(*s, exchange::Destination{d->id, true}, m.routing_key, m.arguments);
    if (!m.no_wait) reply(amqp::ExchangeUnbindOk{});
    return;
  }
  Exchange& d = exchange_for(dst);
  Exchange& s = exchange_for(src);
  const exchange::Destination dest{d.id, true};
  {
    exchange::Binding b{dest, std::string(m.routing_key), m.arguments};
    if (std::string err = s.impl->validate_binding(b); !err.empty()) {
      throw ChannelError(ReplyCode::kPreconditionFailed, err);
    }
    vhost().bind(s, dest, std::string(m.routing_key), m.arguments);
    if (!m.no_wait) reply(amqp::ExchangeBindOk{});
  }
}

// ---------------------------------------------------------------- queues

void Channel::on_queue_declare(const amqp::QueueDeclare& m) {
  std::string name(m.queue);
  VHost& vh = vhost();
  static constexpr std::string_view kReplyTo = "amq.rabbitmq.reply-to";
  if (m.passive && name.rfind(kReplyTo, 0) == 0) {
    // The direct reply-to pseudo-queues: the bare name (this channel's reply consumer, if
    // any) and the per-requester names while their requester is connected.
    uint32_t consumers = 0;
    if (name == kReplyTo) {
      consumers = 1;  // RabbitMQ always reports one consumer for the bare name
    } else if (name.size() > kReplyTo.size() + 1 && name[kReplyTo.size()] == '.' &&
               conn_.broker().find_reply_channel(std::string_view(name).substr(kReplyTo.size() + 1))) {
      consumers = 1;
    } else {
      throw ChannelError(ReplyCode::kNotFound,
                         "no queue '" + name + "' in vhost '" + vh.name() + "'");
    }
    if (!m.no_wait) {
      amqp::QueueDeclareOk ok;
      ok.queue = name;
      ok.consumer_count = consumers;
      reply(ok);
    }
    return;
  }
  if (m.passive) {
    Queue& q = queue_for(name);
    q.touch();
    last_queue_ = name;
    if (!m.no_wait) {
      amqp::QueueDeclareOk ok;
      ok.queue = q.name();
      ok.message_count = static_cast<uint32_t>(q.ready_count());
      ok.consumer_count = static_cast<uint32_t>(q.consumer_count());
      reply(ok);
    }
    return;
  }
  if (name.empty()) {
    name = conn_.broker().generate_name("amq.gen");
  } else if (has_reserved_prefix(name)) {
    throw ChannelError(ReplyCode::kAccessRefused,
                       "queue name '" + name + "' contains reserved prefix 'amq.*'");
  }
  check_access(auth::Access::kConfigure, "queue", name);
  const std::string where = "queue '" + name + "' in vhost '" + vh.name() + "'";
  if (std::string err = queue_arguments_error(m.arguments, where); !err.empty()) {
    throw ChannelError(ReplyCode::kPreconditionFailed, err);
  }
  // RabbitMQ makes exclusive queues transient whatever the durable flag says.
  const bool durable = m.durable && !m.exclusive;
  Queue* q = vh.find_queue(name);
  if (q) {
    check_exclusive(*q);
    if (q->exclusive() != m.exclusive) throw_locked(*q);
    auto inequivalent = [&](const char* arg, bool got, bool cur) {
      throw ChannelError(ReplyCode::kPreconditionFailed,
                         std::string("inequivalent arg '") + arg + "' for " + where +
                             ": received " + quote_bool(got) + " but current is " +
                             quote_bool(cur));
    };
    if (q->durable() != durable) inequivalent("durable", durable, q->durable());
    if (q->auto_delete() != m.auto_delete) inequivalent("auto_delete", m.auto_delete, q->auto_delete());
    check_equivalent_args(q->arguments(), m.arguments, where);
    q->touch();
  } else {
    // The vhost's queue limit applies to new queues only (rabbit_channel).
    if (auto limit = conn_.broker().vhost_limit(vh.name(), "max-queues")) {
      if (static_cast<int64_t>(vh.queues().size()) >= *limit) {
        throw ChannelError(ReplyCode::kPreconditionFailed,
                           "cannot declare queue '" + name + "': queue limit in vhost '" +
                               vh.name() + "' (" + std::to_string(*limit) + ") is reached");
      }
    }
    const amqp::FieldValue* dlx = m.arguments.find("x-dead-letter-exchange");
    if (auto dlx_name = dlx ? dlx->as_string() : std::nullopt) {
      // Read on the queue, write on its dead-letter exchange.
      check_access(auth::Access::kRead, "queue", name);
      check_access(auth::Access::kWrite, "exchange", *dlx_name);
    }
    q = &vh.add_queue(name, durable, m.exclusive, m.auto_delete, m.arguments,
                      m.exclusive ? &conn_ : nullptr);
  }
  last_queue_ = name;
  if (!m.no_wait) {
    amqp::QueueDeclareOk ok;
    ok.queue = q->name();
    ok.message_count = static_cast<uint32_t>(q->ready_count());
    ok.consumer_count = static_cast<uint32_t>(q->consumer_count());
    reply(ok);
  }
}

void Channel::on_queue_bind(const amqp::QueueBind& m) {
  const std::string qname = queue_name_or_last(m.queue);
  // An empty key with an empty queue name means "the last queue's name" (AMQP 0-9-1 1.7.2.3).
  std::string key(m.routing_key);
  if (m.queue.empty() && key.empty()) key = qname;
  check_access(auth::Access::kWrite, "queue", qname);
  if (m.exchange.empty()) {
    throw ChannelError(ReplyCode::kAccessRefused,
                       "operation not permitted on the default exchange");
  }
  check_access(auth::Access::kRead, "exchange", m.exchange);
  if (Exchange* src = vhost().find_exchange(m.exchange)) {
    check_topic_access(*src, key, auth::Access::kRead);
  }
  Queue& q = queue_for(qname);
  Exchange& x = exchange_for(m.exchange);
  const exchange::Destination dest{q.id(), false};
  exchange::Binding b{dest, key, m.arguments};
  if (std::string err = x.impl->validate_binding(b); !err.empty()) {
    throw ChannelError(ReplyCode::kPreconditionFailed, err);
  }
  vhost().bind(x, dest, std::move(key), m.arguments);
  if (!m.no_wait) reply(amqp::QueueBindOk{});
}

void Channel::on_queue_unbind(const amqp::QueueUnbind& m) {
  const std::string qname = queue_name_or_last(m.queue);
  check_access(auth::Access::kWrite, "queue", qname);
  if (m.exchange.empty()) {
    throw ChannelError(ReplyCode::kAccessRefused,
                       "operation not permitted on the default exchange");
  }
  check_access(auth::Access::kRead, "exchange", m.exchange);
  Queue* q = vhost().find_queue(qname);
  Exchange* x = vhost().find_exchange(m.exchange);
  if (x) check_topic_access(*x, m.routing_key, auth::Access::kRead);
  if (q) check_exclusive(*q);
  if (q && x) vhost().unbind(*x, exchange::Destination{q->id(), false}, m.routing_key, m.arguments);
  reply(amqp::QueueUnbindOk{});
}

void Channel::on_queue_purge(const amqp::QueuePurge& m) {
  const std::string qname = queue_name_or_last(m.queue);
  check_access(auth::Access::kRead, "queue", qname);
  Queue& q = queue_for(qname);
  const size_t n = q.purge();
  if (!m.no_wait) {
    amqp::QueuePurgeOk ok;
    ok.message_count = static_cast<uint32_t>(n);
    reply(ok);
  }
}

void Channel::on_queue_delete(const amqp::QueueDelete& m) {
  const std::string name = queue_name_or_last(m.queue);
  check_access(auth::Access::kConfigure, "queue", name);
  Queue* q = vhost().find_queue(name);
  size_t n = 0;
  if (q) {
    check_exclusive(*q);
    const std::string where = "queue '" + name + "' in vhost '" + vhost().name() + "'";
    if (m.if_unused && q->consumer_count() > 0) {
      throw ChannelError(ReplyCode::kPreconditionFailed, where + " in use");
    }
    if (m.if_empty && q->ready_count() + q->unacked_count() > 0) {
      throw ChannelError(ReplyCode::kPreconditionFailed, where + " not empty");
    }
    n = vhost().delete_queue(*q);
  }
  if (!m.no_wait) {
    amqp::QueueDeleteOk ok;
    ok.message_count = static_cast<uint32_t>(n);
    reply(ok);
  }
}

// ---------------------------------------------------------------- basic

void Channel::on_basic_qos(const amqp::BasicQos& m) {
  if (m.prefetch_size != 0) {
    throw ConnectionError(ReplyCode::kNotImplemented,
                          "prefetch_size!=0 (" + std::to_string(m.prefetch_size) + ")");
  }
  // RabbitMQ reinterprets global: false = each new consumer, true = the whole channel.
  if (m.global_) {
    channel_prefetch_ = m.prefetch_count;
  } else {
    consumer_prefetch_ = m.prefetch_count;
  }
  reply(amqp::BasicQosOk{});
  kick_consumers();
}

void Channel::on_basic_consume(const amqp::BasicConsume& m) {
  std::string tag(m.consumer_tag);
  if (tag.empty()) tag = conn_.broker().generate_name("amq.ctag");
  if (consumers_.count(tag) || tag == reply_tag_) {
    throw ConnectionError(ReplyCode::kNotAllowed, "attempt to reuse consumer tag '" + tag + "'");
  }
  if (m.queue == "amq.rabbitmq.reply-to") {
    // Direct reply-to: a pseudo-queue consumed in no-ack mode, one per channel.
    if (!m.no_ack) {
      throw ChannelError(ReplyCode::kPreconditionFailed, "reply consumer cannot acknowledge");
    }
    if (!reply_tag_.empty()) {
      throw ChannelError(ReplyCode::kPreconditionFailed, "reply consumer already set");
    }
    reply_tag_ = tag;
    reply_token_ = conn_.broker().register_reply_channel(this);
    if (!m.no_wait) {
      amqp::BasicConsumeOk ok;
      ok.consumer_tag = tag;
      reply(ok);
    }
    return;
  }
  const std::string qname = queue_name_or_last(m.queue);
  check_access(auth::Access::kRead, "queue", qname);
  Queue& q = queue_for(qname);
  int32_t priority = 0;
  if (const amqp::FieldValue* p = m.arguments.find("x-priority")) {
    auto v = p->as_int();
    if (!v) {
      throw ChannelError(ReplyCode::kPreconditionFailed,
                         "invalid arg 'x-priority' for consumer '" + tag + "': expected integer");
    }
    priority = static_cast<int32_t>(std::clamp<int64_t>(*v, INT32_MIN, INT32_MAX));
  }
  if (q.has_exclusive_consumer() || (m.exclusive && q.consumer_count() > 0)) {
    throw ChannelError(ReplyCode::kAccessRefused, "queue '" + q.name() + "' in vhost '" +
                                                      vhost().name() + "' in exclusive use");
  }
  ConsumerPtr c(new Consumer);
  c->tag = tag;
  c->channel = this;
  c->queue = QueuePtr(&q);
  c->no_ack = m.no_ack;
  c->exclusive = m.exclusive;
  c->prefetch = consumer_prefetch_;
  c->priority = priority;
  c->arguments = m.arguments;
  consumers_.emplace(tag, c);
  if (!m.no_wait) {
    amqp::BasicConsumeOk ok;
    ok.consumer_tag = tag;
    reply(ok);
  }
  q.add_consumer(c.get());
  q.dispatch();
}

void Channel::cancel_consumer(const std::string& tag, bool notify_client) {
  auto it = consumers_.find(tag);
  if (it == consumers_.end()) return;
  ConsumerPtr c = it->second;
  consumers_.erase(it);
  c->cancelled = true;
  Queue& q = *c->queue;
  q.remove_consumer(c.get());
  if (notify_client) {
    amqp::BasicCancel cancel;
    cancel.consumer_tag = c->tag;
    cancel.no_wait = true;
    conn_.send_method(id_, cancel);
  }
  // An auto-delete queue goes when its last consumer does (RabbitMQ's auto_delete).
  if (q.auto_delete() && !q.deleted() && q.consumer_count() == 0 && q.ever_had_consumer()) {
    q.vhost().delete_queue(q);
  }
}

void Channel::on_basic_cancel(const amqp::BasicCancel& m) {
  const std::string tag(m.consumer_tag);
  if (!reply_tag_.empty() && tag == reply_tag_) {
    conn_.broker().unregister_reply_channel(reply_token_);
    reply_tag_.clear();
    reply_token_.clear();
  }
  cancel_consumer(tag, false);
  if (!m.no_wait) {
    amqp::BasicCancelOk ok;
    ok.consumer_tag = tag;
    reply(ok);
  }
}

void Channel::consumer_cancelled_by_queue(Consumer& c) {
  ConsumerPtr keep(&c);
  auto it = consumers_.find(c.tag);
  if (it == consumers_.end() || it->second.get() != &c) return;
  consumers_.erase(it);
  c.cancelled = true;
  if (conn_.client_capability(Connection::kConsumerCancelNotify) && state_ == State::kOpen) {
    amqp::BasicCancel cancel;
    cancel.consumer_tag = c.tag;
    cancel.no_wait = true;
    conn_.send_method(id_, cancel);
  }
}

void Channel::on_basic_publish(const amqp::BasicPublish& m, amqp::Command& cmd) {
  if (m.immediate) {
    throw ConnectionError(ReplyCode::kNotImplemented, "immediate=true", amqp::BasicPublish::kClassId,
                          amqp::BasicPublish::kMethodId);
  }
  check_access(auth::Access::kWrite, "exchange", m.exchange);
  Exchange* x = nullptr;
  if (!m.exchange.empty()) {
    x = &exchange_for(m.exchange);
    if (x->internal) {
      throw ChannelError(ReplyCode::kAccessRefused,
                         "cannot publish to internal exchange '" + x->name + "' in vhost '" +
                             vhost().name() + "'");
    }
    check_topic_access(*x, m.routing_key, auth::Access::kWrite);
  }
  conn_.note_publish();
  MessagePtr msg(new Message);
  try {
    msg->summary = amqp::summarize_properties(cmd.properties);
  } catch (const amqp::DecodeError&) {
    // RabbitMQ decodes every publish's headers; a table it cannot parse crashes its channel
    // process, and the connection closes with a bare 541 INTERNAL_ERROR, class/method 0/0.
    ConnectionError err(ReplyCode::kInternalError, "");
    err.keep_ids = true;
    throw err;
  }
  const amqp::PropertySummary& sum = msg->summary;
  if (sum.has_user_id || sum.has_expiration || sum.has_reply_to) {
    auto props = amqp::BasicProperties::decode(cmd.properties, false);
    if (sum.has_user_id && props.user_id != conn_.user()) {
      throw ChannelError(ReplyCode::kPreconditionFailed,
                         "user_id property set to '" + std::string(props.user_id) +
                             "' but authenticated user was '" + conn_.user() + "'");
    }
    if (sum.has_expiration) msg->ttl_ms = parse_expiration(props.expiration);
    if (sum.has_reply_to && props.reply_to == "amq.rabbitmq.reply-to") {
      // Direct reply-to: the request names this channel's reply consumer.
      if (reply_token_.empty()) {
        throw ChannelError(ReplyCode::kPreconditionFailed, "fast reply consumer does not exist");
      }
      auto full = amqp::BasicProperties::decode(cmd.properties, true);
      const std::string reply_to = "amq.rabbitmq.reply-to." + reply_token_;
      full.reply_to = reply_to;
      std::string rewritten;
      amqp::Writer w(rewritten);
      full.encode(w);
      cmd.properties = std::move(rewritten);
    }
  }
  msg->exchange.assign(m.exchange);
  msg->routing_key.assign(m.routing_key);
  msg->properties = std::move(cmd.properties);
  msg->body_storage = std::move(cmd.body);
  if (tx_mode_) {
    tx_publishes_.push_back(TxPublish{msg->exchange, msg->routing_key, m.mandatory, std::move(msg)});
    return;
  }
  const bool accepted = publish(msg->exchange, msg->routing_key, m.mandatory, msg);
  if (confirm_mode_) record_confirm(accepted, msg->store_id != 0);
  if (conn_.broker().store_congested()) conn_.flow_pause();
  for (Queue* q : route_scratch_) {
    if (q->publishers_should_wait()) conn_.flow_pause_for(*q);
  }
}

void Channel::record_confirm(bool ack, bool needs_commit) {
  const uint64_t seq = next_publish_seq_++;
  confirmed_upto_ = seq;
  if (!ack) nacked_.push_back(seq);
  if (needs_commit) need_sync_upto_ = seq;
}

uint64_t Channel::conn_store_writes() const { return conn_.broker().store_writes(); }

template <typename M>
void Channel::send_now(const M& m) {
  conn_.send_method(id_, m);
}

void Channel::request_confirm_sync() {
  if (need_sync_upto_ <= sync_requested_upto_ || !conn_.broker().store()) return;
  const uint64_t upto = need_sync_upto_;
  sync_requested_upto_ = upto;
  conn_.broker().store()->sync([alive = std::weak_ptr<int>(alive_), this, upto](bool ok) {
    if (alive.expired()) return;
    if (!ok) {
      // Not stored, so not confirmed: nack what this commit held (RabbitMQ nacks what it
      // could not write).
      for (uint64_t s = synced_upto_ + 1; s <= upto; ++s) nacked_.push_back(s);
      std::sort(nacked_.begin(), nacked_.end());
      nacked_.erase(std::unique(nacked_.begin(), nacked_.end()), nacked_.end());
    }
    synced_upto_ = std::max(synced_upto_, upto);
    flush_confirms();
    conn_.request_flush();
  });
}

bool Channel::publish(const std::string& exchange, const std::string& routing_key, bool mandatory,
                      const MessagePtr& msg) {
  auto no_route = [&] {
    if (!mandatory) {
      count(MessageStats::kDropUnroutable);
      return;
    }
    count(MessageStats::kReturnUnroutable);
    amqp::BasicReturn ret;
    ret.reply_code = 312;
    ret.reply_text = "NO_ROUTE";
    ret.exchange = exchange;
    ret.routing_key = routing_key;
    conn_.send_content(id_, ret, msg);
  };
  VHost& vh = vhost();
  count(MessageStats::kPublish);
  route_scratch_.clear();  // read after publish() for flow control: never stale
  static constexpr std::string_view kReplyPrefix = "amq.rabbitmq.reply-to.";
  if (exchange.empty() && routing_key.size() > kReplyPrefix.size() &&
      std::string_view(routing_key).substr(0, kReplyPrefix.size()) == kReplyPrefix) {
    if (Channel* ch = conn_.broker().find_reply_channel(
            std::string_view(routing_key).substr(kReplyPrefix.size()))) {
      ch->deliver_reply(msg, routing_key);
    } else {
      no_route();  // the requester is gone
    }
    return true;
  }
  Exchange* x = exchange.empty() ? nullptr : vh.find_exchange(exchange);
  if (!exchange.empty() && !x) return true;  // deleted since (tx commit): dropped, as RabbitMQ
  if (x) x->stats.add(MessageStats::kPublish);

  std::vector<std::string> extra_keys;
  sender_selected_keys(*msg, extra_keys);
  if (vh.route_delayed(x, msg, routing_key)) return true;
  vh.route(x, *msg, routing_key, route_scratch_);
  if (!extra_keys.empty()) {
    std::vector<Queue*> more;
    for (const auto& k : extra_keys) {
      vh.route(x, *msg, k, more);
      route_scratch_.insert(route_scratch_.end(), more.begin(), more.end());
    }
    std::sort(route_scratch_.begin(), route_scratch_.end());
    route_scratch_.erase(std::unique(route_scratch_.begin(), route_scratch_.end()),
                         route_scratch_.end());
  }
  if (route_scratch_.empty()) {
    no_route();
    return true;
  }
  if (x) x->stats.add(MessageStats::kPublishOut);
  // enqueue() may dead-letter, which routes through the vhost's own scratch, not this one.
  bool accepted = true;
  for (Queue* q : route_scratch_) accepted = q->enqueue(msg) && accepted;
  return accepted;
}

void Channel::deliver_reply(const MessagePtr& m, std::string_view routing_key) {
  amqp::BasicDeliver d;
  d.consumer_tag = reply_tag_;
  d.delivery_tag = next_delivery_tag_++;
  d.redelivered = false;
  d.exchange = "";
  d.routing_key = routing_key;
  conn_.send_content(id_, d, m);
}

void Channel::flush_confirms() {
  if (!confirm_mode_ || confirmed_upto_ <= acked_upto_) return;
  // Confirms go out in order; a persistent message's waits for its commit.
  uint64_t limit = confirmed_upto_;
  if (need_sync_upto_ > synced_upto_) {
    request_confirm_sync();
    limit = synced_upto_;
  }
  auto ack_upto = [this](uint64_t upto) {
    if (upto <= acked_upto_) return;
    count(MessageStats::kConfirm, nullptr, upto - acked_upto_);
    amqp::BasicAck ack;
    ack.delivery_tag = upto;
    ack.multiple = upto - acked_upto_ > 1;
    conn_.send_method(id_, ack);
    acked_upto_ = upto;
  };
  // Nacks interleave with acks in publish order.
  size_t done = 0;
  for (uint64_t seq : nacked_) {
    if (seq > limit) break;
    ++done;
    ack_upto(seq - 1);
    amqp::BasicNack nack;
    nack.delivery_tag = seq;
    nack.multiple = false;
    nack.requeue = false;
    conn_.send_method(id_, nack);
    acked_upto_ = seq;
  }
  nacked_.erase(nacked_.begin(), nacked_.begin() + static_cast<long>(done));
  ack_upto(limit);
}

void Channel::check_consumer_timeout(int64_t now) {
  if (state_ != State::kOpen) return;
  const uint64_t timeout = conn_.broker().config().consumer_timeout_ms;
  for (const auto& u : unacked_) {
    if (u.settled) continue;
    if (now - u.delivered_at > static_cast<int64_t>(timeout)) {
      begin_close(ChannelError(
          ReplyCode::kPreconditionFailed,
          "delivery acknowledgement on channel " + std::to_string(id_) +
              " timed out. Timeout value used: " + std::to_string(timeout) +
              " ms. This timeout value can be configured, see consumers doc guide to learn more"));
    }
    return;  // only the oldest matters
  }
}

void Channel::on_basic_get(const amqp::BasicGet& m) {
  const std::string qname = queue_name_or_last(m.queue);
  check_access(auth::Access::kRead, "queue", qname);
  Queue& q = queue_for(qname);
  auto e = q.get(!m.no_ack);
  if (!e && q.head_paged_out()) {
    // RabbitMQ reads the message from disk before answering; so does Warren, without
    // blocking the thread: later frames of this connection wait until the batch is in.
    WLOG_DEBUG("basic.get on queue '{}' waits for its paged-out head", q.name());
    conn_.hold_input();
    q.when_loaded([this, alive = std::weak_ptr<int>(alive_), queue = std::string(q.name()),
                   no_ack = m.no_ack] {
      if (alive.expired()) return;
      conn_.release_input();
      amqp::BasicGet again;
      again.queue = queue;
      again.no_ack = no_ack;
      try {
        on_basic_get(again);
      } catch (amqp::ChannelError& e) {  // the queue went meanwhile
        e.class_id = amqp::BasicGet::kClassId;
        e.method_id = amqp::BasicGet::kMethodId;
        begin_close(e);
      }
    });
    return;
  }
  if (!e) {
    count(MessageStats::kGetEmpty, &q);
    reply(amqp::BasicGetEmpty{});
    return;
  }
  count(m.no_ack ? MessageStats::kGetNoAck : MessageStats::kGet, &q);
  if (e->redelivered) count(MessageStats::kRedeliver, &q);
  const uint64_t tag = next_delivery_tag_++;
  amqp::BasicGetOk ok;
  ok.delivery_tag = tag;
  ok.redelivered = e->redelivered;
  ok.exchange = e->message->exchange;
  ok.routing_key = e->message->routing_key;
  ok.message_count = static_cast<uint32_t>(q.ready_count());
  conn_.send_content(id_, ok, e->message);
  if (!m.no_ack) {
    unacked_.push_back(Unacked{tag, QueuePtr(&q), std::move(*e), nullptr, now_ms(), false});
    ++unacked_live_;
  }
}

bool Channel::can_deliver(const Consumer& c) const {
  if (state_ != State::kOpen || !flow_active_ || conn_.write_blocked()) return false;
  if (c.no_ack) return true;
  if (c.prefetch != 0 && c.unacked >= c.prefetch) return false;
  if (channel_prefetch_ != 0 && unacked_live_ >= channel_prefetch_) return false;
  return true;
}

void Channel::deliver(Consumer& c, Queue& q, QueueEntry e) {
  const uint64_t tag = next_delivery_tag_++;
  amqp::BasicDeliver d;
  d.consumer_tag = c.tag;
  d.delivery_tag = tag;
  d.redelivered = e.redelivered;
  count(c.no_ack ? MessageStats::kDeliverNoAck : MessageStats::kDeliver, &q);
  if (e.redelivered) count(MessageStats::kRedeliver, &q);
  d.exchange = e.message->exchange;
  d.routing_key = e.message->routing_key;
  conn_.send_content(id_, d, e.message);
  if (!c.no_ack) {
    ++c.unacked;
    unacked_.push_back(
        Unacked{tag, QueuePtr(&q), std::move(e), ConsumerPtr(&c), now_ms(), false});
    ++unacked_live_;
  }
}

boost::container::deque<Channel::Unacked>::iterator Channel::find_unacked(uint64_t tag) {
  auto it = std::lower_bound(unacked_.begin(), unacked_.end(), tag,
                             [](const Unacked& u, uint64_t t) { return u.tag < t; });
  return it != unacked_.end() && it->tag == tag && !it->settled ? it : unacked_.end();
}

boost::container::deque<Channel::Unacked>::iterator Channel::unacked_or_throw(uint64_t tag) {
  auto it = find_unacked(tag);
  if (it == unacked_.end()) {
    throw ChannelError(ReplyCode::kPreconditionFailed, "unknown delivery tag " + std::to_string(tag));
  }
  return it;
}

void Channel::dispatch_each(std::vector<Queue*>& queues) {
  std::sort(queues.begin(), queues.end());
  queues.erase(std::unique(queues.begin(), queues.end()), queues.end());
  for (Queue* q : queues) q->dispatch();
}

void Channel::on_settle(SettleKind kind, uint64_t tag, bool multiple, bool requeue) {
  if (tx_mode_) {
    // An unknown tag fails at once, not at commit.
    if (!(multiple && tag == 0)) unacked_or_throw(tag);
    tx_settles_.push_back(TxSettle{kind, tag, multiple, requeue});
    return;
  }
  settle(kind, tag, multiple, requeue);
}

void Channel::settle_one(Unacked& u, SettleKind kind, bool requeue) {
  u.settled = true;
  --unacked_live_;
  if (u.consumer) --u.consumer->unacked;
  if (kind == SettleKind::kReject && requeue) {
    u.queue->requeue(std::move(u.entry));
  } else if (kind == SettleKind::kReject) {
    u.queue->reject(std::move(u.entry));
  } else {
    stats_.add(MessageStats::kAck);  // the queue counts it for itself and the broker
    u.queue->ack(u.entry);
  }
}

void Channel::count(MessageStats::Field f, Queue* q, uint64_t n) {
  stats_.add(f, n);
  conn_.broker().stats().add(f, n);
  if (q) q->stats().add(f, n);
}

void Channel::settle(SettleKind kind, uint64_t tag, bool multiple, bool requeue, bool check) {
  if (!multiple) {
    // The common case, one ack: no list of touched queues to build.
    auto it = unacked_or_throw(tag);
    settle_one(*it, kind, requeue);
    QueuePtr q = it->queue;  // trim_unacked() may drop the entry holding it
    trim_unacked();
    q->dispatch();  // credit came back (and a requeued message waits)
  } else {
    if (check && tag != 0) unacked_or_throw(tag);  // RabbitMQ refuses an unknown tag
    // The member's capacity is reused; swapped out in case a dispatch settles again.
    std::vector<Queue*> touched;
    touched.swap(settle_scratch_);
    for (auto& u : unacked_) {
      if (tag != 0 && u.tag > tag) break;
      if (u.settled) continue;
      settle_one(u, kind, requeue);
      touched.push_back(u.queue.get());
    }
    trim_unacked();
    dispatch_each(touched);
    touched.clear();
    settle_scratch_.swap(touched);
  }
  if (channel_prefetch_ != 0) kick_consumers();
}

void Channel::trim_unacked() {
  while (!unacked_.empty() && unacked_.front().settled) unacked_.pop_front();
}

void Channel::kick_consumers() {
  // Runs on every ack under a channel-wide prefetch: the member's capacity is reused.
  std::vector<ConsumerPtr> cs;
  cs.swap(kick_scratch_);
  for (const auto& [tag, c] : consumers_) cs.push_back(c);
  for (auto& c : cs)
    if (!c->cancelled) c->queue->dispatch();
  cs.clear();
  kick_scratch_.swap(cs);
}

void Channel::on_basic_recover(bool requeue) {
  if (!requeue) {
    throw ConnectionError(ReplyCode::kNotImplemented, "requeue=false");
  }
  std::vector<Queue*> touched;
  for (auto& u : unacked_) {
    if (u.settled) continue;
    settle_one(u, SettleKind::kReject, true);
    touched.push_back(u.queue.get());
  }
  trim_unacked();
  dispatch_each(touched);
}

void Channel::on_tx_commit() {
  if (!tx_mode_) {
    throw ChannelError(ReplyCode::kPreconditionFailed, "channel is not transactional");
  }
  auto pubs = std::move(tx_publishes_);
  auto settles = std::move(tx_settles_);
  tx_publishes_.clear();
  tx_settles_.clear();
  for (auto& p : pubs) publish(p.exchange, p.routing_key, p.mandatory, p.message);
  for (auto& s : settles) {
    // Tags were checked when the client sent them; one may have been settled since by an
    // earlier multiple in the same transaction.
    if (!s.multiple && find_unacked(s.tag) == unacked_.end()) continue;
    settle(s.kind, s.tag, s.multiple, s.requeue, /*check=*/false);
  }
  reply(amqp::TxCommitOk{});
}

void Channel::on_tx_rollback() {
  if (!tx_mode_) {
    throw ChannelError(ReplyCode::kPreconditionFailed, "channel is not transactional");
  }
  tx_publishes_.clear();
  tx_settles_.clear();
  reply(amqp::TxRollbackOk{});
}

}  // namespace warren::broker
