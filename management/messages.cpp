// POST /api/exchanges/{vhost}/{name}/publish and POST /api/queues/{vhost}/{name}/get:
// RabbitMQ's "publish a message" and "get messages" for people and scripts, with its request
// and answer shapes and error bodies (checked against RabbitMQ 3.10.8).
#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>

#include "amqp/properties.h"
#include "auth/permission.h"
#include "broker/broker.h"
#include "broker/channel.h"
#include "common/base64.h"
#include "management/api.h"

namespace warren::management {

namespace {
// Strings the properties' string_views point into while they are encoded.
struct PropertyStrings {
  std::vector<std::string> held;
  std::string_view keep(std::string s) {
    held.push_back(std::move(s));
    return held.back();
  }
  PropertyStrings() { held.reserve(16); }
};

// RabbitMQ's 400 reason for a bad property value: ["not_int","delivery_mode"] and the like.
Response bad_property(const char* what, const std::string& key) {
  return json_response(Json{{"error", "bad_request"}, {"reason", Json::array({what, key})}}, 400);
}

// Builds the raw property bytes from the "properties" object of a publish request. Keys
// RabbitMQ does not know are ignored, as it does.
std::optional<std::string> encode_properties(const Json& in, Response& err) {
  amqp::BasicProperties p;
  PropertyStrings strings;
  using F = amqp::BasicProperties;
  struct Str {
    const char* key;
    std::string_view F::*field;
    F::Flag flag;
  };
  static const Str kStrings[] = {
      {"content_type", &F::content_type, F::kContentType},
      {"content_encoding", &F::content_encoding, F::kContentEncoding},
      {"correlation_id", &F::correlation_id, F::kCorrelationId},
      {"reply_to", &F::reply_to, F::kReplyTo},
      {"expiration", &F::expiration, F::kExpiration},
      {"message_id", &F::message_id, F::kMessageId},
      {"type", &F::type, F::kType},
      {"user_id", &F::user_id, F::kUserId},
      {"app_id", &F::app_id, F::kAppId},
      {"cluster_id", &F::cluster_id, F::kClusterId},
  };
  for (const auto& s : kStrings) {
    auto it = in.find(s.key);
    if (it == in.end()) continue;
    if (!it->is_string()) {
      err = bad_property("not_string", s.key);
      return std::nullopt;
    }
    p.*s.field = strings.keep(it->get<std::string>());
    p.flags |= s.flag;
  }
  auto integer = [&](const char* key, int64_t max, int64_t& out) {
    auto it = in.find(key);
    if (it == in.end()) return true;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > max) {
      err = bad_property("not_int", key);
      return false;
    }
    out = it->get<int64_t>();
    return true;
  };
  int64_t mode = -1, priority = -1, timestamp = -1;
  if (!integer("delivery_mode", 255, mode) || !integer("priority", 255, priority) ||
      !integer("timestamp", INT64_MAX, timestamp)) {
    return std::nullopt;
  }
  if (mode >= 0) {
    p.delivery_mode = static_cast<uint8_t>(mode);
    p.flags |= F::kDeliveryMode;
  }
  if (priority >= 0) {
    p.priority = static_cast<uint8_t>(priority);
    p.flags |= F::kPriority;
  }
  if (timestamp >= 0) {
    p.timestamp = static_cast<uint64_t>(timestamp);
    p.flags |= F::kTimestamp;
  }
  if (auto it = in.find("headers"); it != in.end()) {
    auto table = it->is_object() ? json_to_table(*it) : std::nullopt;
    if (!table) {
      err = bad_property("not_table", "headers");
      return std::nullopt;
    }
    p.headers = std::move(*table);
    p.flags |= F::kHeaders;
  }
  std::string raw;
  amqp::Writer w(raw);
  p.encode(w);
  return raw;
}

// The properties of a message as RabbitMQ shows them: an object, or [] when there are none.
Json properties_json(std::string_view raw) {
  amqp::BasicProperties p;
  try {
    p = amqp::BasicProperties::decode(raw, true);
  } catch (const amqp::DecodeError&) {
    return Json::array();
  }
  using F = amqp::BasicProperties;
  Json j = Json::object();
  auto str = [&](F::Flag f, const char* key, std::string_view v) {
    if (p.has(f)) j[key] = std::string(v);
  };
  str(F::kContentType, "content_type", p.content_type);
  str(F::kContentEncoding, "content_encoding", p.content_encoding);
  if (p.has(F::kHeaders)) j["headers"] = table_to_json(p.headers);
  if (p.has(F::kDeliveryMode)) j["delivery_mode"] = p.delivery_mode;
  if (p.has(F::kPriority)) j["priority"] = p.priority;
  str(F::kCorrelationId, "correlation_id", p.correlation_id);
  str(F::kReplyTo, "reply_to", p.reply_to);
  str(F::kExpiration, "expiration", p.expiration);
  str(F::kMessageId, "message_id", p.message_id);
  if (p.has(F::kTimestamp)) j["timestamp"] = p.timestamp;
  str(F::kType, "type", p.type);
  str(F::kUserId, "user_id", p.user_id);
  str(F::kAppId, "app_id", p.app_id);
  str(F::kClusterId, "cluster_id", p.cluster_id);
  if (j.empty()) return Json::array();
  return j;
}

// RabbitMQ's "auto" encoding shows a payload as a string when it is valid UTF-8 (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i - 1 < n) return false;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return false;
    for (size_t k = 2; k <= n; ++k) {
      if ((byte(i + k) >> 6) != 0x2) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string missing_keys(const Json& body, std::initializer_list<const char*> keys) {
  std::string out;
  for (const char* k : keys) {
    if (body.contains(k)) continue;
    out += out.empty() ? "[" : ",";
    out += std::string("{key_missing,") + k + "}";
  }
  return out.empty() ? out : out + "]";
}

// One get request in progress: it may wait for a paged-out head to be read back.
struct GetRequest {
  broker::Broker* broker;
  std::string vhost, queue;
  size_t count = 1;
  bool no_ack = false;   // ack_requeue_false: taken for good, counted as get_no_ack
  bool requeue = true;
  bool base64 = false;
  std::optional<size_t> truncate;
  Json out = Json::array();
  std::vector<broker::QueueEntry> taken;  // held until the end, then requeued or rejected
  std::function<void(Response)> reply;
};

Json message_json(const GetRequest& g, const broker::QueueEntry& e, size_t remaining) {
  const broker::Message& m = *e.message;
  std::string_view body = m.body();
  if (g.truncate && body.size() > *g.truncate) body = body.substr(0, *g.truncate);
  Json j;
  j["payload_bytes"] = m.body_size();
  j["redelivered"] = e.redelivered;
  j["exchange"] = m.exchange;
  j["routing_key"] = m.routing_key;
  j["message_count"] = remaining;
  j["properties"] = properties_json(m.properties);
  if (!g.base64 && valid_utf8(body)) {
    j["payload"] = std::string(body);
    j["payload_encoding"] = "string";
  } else {
    j["payload"] = common::b64encode(body);
    j["payload_encoding"] = "base64";
  }
  return j;
}

std::optional<Response> run_get(const std::shared_ptr<GetRequest>& g);

// Goes on with a get from a posted handler or a load completion: nothing may escape it.
void continue_get(const std::shared_ptr<GetRequest>& g) {
  std::optional<Response> resp;
  try {
    resp = run_get(g);
  } catch (const std::exception& e) {
    resp = error_response(500, "internal_server_error", e.what());
  }
  if (resp) g->reply(std::move(*resp));
}

// Takes messages until `count` are out, the queue is empty, or its head must first be read
// back from the store (then continues once it is). Returns the answer, or nullopt when it
// will come through g->reply.
std::optional<Response> run_get(const std::shared_ptr<GetRequest>& g) {
  broker::VHost* v = g->broker->find_vhost(g->vhost);
  broker::Queue* q = v ? v->find_queue(g->queue) : nullptr;
  if (!q) {
    return error_response(404, "not_found", "NOT_FOUND - no queue '" + g->queue +
                                                "' in vhost '" + g->vhost + "'");
  }
  using S = broker::MessageStats;
  auto count = [&](S::Field f) {
    q->stats().add(f);
    g->broker->stats().add(f);
  };
  size_t this_turn = 0;
  while (g->out.size() < g->count) {
    if (++this_turn > 1000) {
      // A large count is served in turns, so that message flow goes on meanwhile.
      boost::asio::post(g->broker->executor(), [g] { continue_get(g); });
      return std::nullopt;
    }
    auto e = q->get(!g->no_ack);
    if (!e) {
      if (!q->head_paged_out()) {
        count(S::kGetEmpty);
        break;
      }
      q->when_loaded([g] { continue_get(g); });
      return std::nullopt;
    }
    count(g->no_ack ? S::kGetNoAck : S::kGet);
    if (e->redelivered) count(S::kRedeliver);
    g->out.push_back(message_json(*g, *e, q->ready_count()));
    // Requeued or rejected at the end, so each message is taken once even when its
    // dead-letter exchange routes it back here.
    if (!g->no_ack) g->taken.push_back(std::move(*e));
  }
  for (auto& e : g->taken) {
    if (g->requeue) {
      q->requeue(std::move(e));
    } else {
      q->reject(std::move(e));  // reject_requeue_false: dead-lettered when configured
    }
  }
  g->taken.clear();
  q->dispatch();
  return json_response(g->out);
}
}  // namespace

Response publish_message(Context& c, const Request& r, broker::VHost& v, const std::string& xname) {
  if (r.method != Method::kPost) return method_not_allowed();
  Response err;
  auto body = parse_body(r, err);
  if (!body) return err;
  if (std::string missing = missing_keys(*body, {"routing_key", "properties", "payload",
                                                 "payload_encoding"});
      !missing.empty()) {
    return bad_request(missing);
  }
  broker::Exchange* x = xname.empty() ? nullptr : v.find_exchange(xname);
  if (!xname.empty() && !x) {
    return bad_request("404 NOT_FOUND - no exchange '" + xname + "' in vhost '" + v.name() + "'");
  }
  // RabbitMQ answers refusals of a publish as 400 with the AMQP code in the text.
  const std::string& who = c.user.name;
  if (!c.local_operator &&
      !c.broker.permitted(who, v.name(), auth::Access::kWrite, xname.empty() ? "amq.default" : xname)) {
    return bad_request("403 ACCESS_REFUSED - " +
                       auth::access_refused_text("exchange", xname.empty() ? "amq.default" : xname,
                                                 v.name(), who));
  }
  const Json& rk = body->at("routing_key");
  const Json& payload = body->at("payload");
  const Json& encoding = body->at("payload_encoding");
  if (!rk.is_string() || !payload.is_string() || !encoding.is_string()) {
    return bad_request("routing_key, payload and payload_encoding must be strings");
  }
  if (!body->at("properties").is_object()) return bad_property("not_object", "properties");
  auto props = encode_properties(body->at("properties"), err);
  if (!props) return err;
  std::string bytes;
  if (encoding == "string") {
    bytes = payload.get<std::string>();
  } else if (encoding == "base64") {
    auto decoded = common::b64decode(payload.get<std::string>());
    if (!decoded) return bad_request("payload is not valid base64");
    bytes = std::move(*decoded);
  } else {
    return json_response(
        Json{{"error", "bad_request"},
             {"reason", Json::array({"unsupported_encoding", encoding.get<std::string>()})}},
        400);
  }
  if (bytes.size() > c.broker.config().max_message_size) {
    return bad_request("406 PRECONDITION_FAILED - message size " + std::to_string(bytes.size()) +
                       " is larger than configured max size " +
                       std::to_string(c.broker.config().max_message_size));
  }
  const std::string key = rk.get<std::string>();
  if (x && x->type == "topic" && !c.local_operator) {
    if (const auth::TopicPermission* tp = c.broker.users().topic_permission(who, v.name(), xname)) {
      if (!auth::pattern_matches(auth::expand_topic_pattern(tp->write, who, v.name()), key)) {
        return bad_request("403 ACCESS_REFUSED - " +
                           auth::topic_refused_text(key, xname, v.name(), who));
      }
    }
  }
  broker::MessagePtr m = broker::Message::rebuild(xname, key, std::move(*props), std::move(bytes));
  if (m->summary.has_user_id) {
    auto p = amqp::BasicProperties::decode(m->properties, false);
    if (p.user_id != c.user.name) {
      return bad_request("406 PRECONDITION_FAILED - user_id property set to '" +
                         std::string(p.user_id) + "' but authenticated user was '" +
                         c.user.name + "'");
    }
  }
  if (m->summary.has_expiration) {
    auto p = amqp::BasicProperties::decode(m->properties, false);
    try {
      m->ttl_ms = broker::parse_expiration(p.expiration);
    } catch (const amqp::ChannelError& e) {
      return bad_request(e.what());
    }
  }
  if (x && x->internal) {
    return bad_request("403 ACCESS_REFUSED - cannot publish to internal exchange '" + xname +
                       "' in vhost '" + v.name() + "'");
  }
  using S = broker::MessageStats;
  c.broker.stats().add(S::kPublish);
  if (x) x->stats.add(S::kPublish);
  bool routed = true;
  if (!v.route_delayed(x, m, m->routing_key)) {
    // Sender-selected distribution, as a channel does it: CC and BCC add routing keys.
    std::vector<std::string> keys{m->routing_key};
    try {
      broker::sender_selected_keys(*m, keys);
    } catch (const amqp::ChannelError& e) {
      return bad_request(std::string("406 PRECONDITION_FAILED - ") + e.what());
    }
    std::vector<broker::Queue*> targets, more;
    for (const auto& k : keys) {
      v.route(x, *m, k, more);
      targets.insert(targets.end(), more.begin(), more.end());
    }
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    // RabbitMQ publishes mandatory: an unroutable message is "returned".
    routed = !targets.empty();
    if (!routed) c.broker.stats().add(S::kReturnUnroutable);
    if (x && routed) x->stats.add(S::kPublishOut);
    bool accepted = true;
    for (broker::Queue* q : targets) accepted = q->enqueue(m) && accepted;  // dispatches too
    if (!accepted) return bad_request("rejected Unable to publish message. Check queue limits.");
  }
  return json_response(Json{{"routed", routed}});
}

Response get_messages(Context& c, const Request& r, const std::string& vname,
                      const std::string& qname) {
  if (r.method != Method::kPost) return method_not_allowed();
  Response err;
  auto body = parse_body(r, err);
  if (!body) return err;
  if (std::string missing = missing_keys(*body, {"count", "ackmode", "encoding"});
      !missing.empty()) {
    return bad_request(missing);
  }
  auto g = std::make_shared<GetRequest>();
  g->broker = &c.broker;
  g->vhost = vname;
  g->queue = qname;
  const Json& count = body->at("count");
  int64_t n = 0;
  if (count.is_number_integer()) {
    n = count.get<int64_t>();
  } else if (count.is_string()) {
    const std::string s = count.get<std::string>();
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size()) n = -1;
  } else {
    n = -1;
  }
  if (n < 0) {
    return json_response(
        Json{{"error", "bad_request"}, {"reason", Json::array({"not_integer", count.dump()})}},
        400);
  }
  g->count = static_cast<size_t>(n);
  const std::string mode = body->at("ackmode").is_string() ? body->at("ackmode").get<std::string>() : "";
  if (mode == "ack_requeue_false") {
    g->no_ack = true, g->requeue = false;
  } else if (mode == "reject_requeue_false") {
    g->requeue = false;
  } else if (mode != "ack_requeue_true" && mode != "reject_requeue_true") {
    return bad_request("Unsupported ackmode. Please use ack_requeue_true, ack_requeue_false, "
                       "reject_requeue_true or reject_requeue_false.");
  }
  const std::string enc = body->at("encoding").is_string() ? body->at("encoding").get<std::string>() : "";
  if (enc != "auto" && enc != "base64") {
    return bad_request("Unsupported encoding. Please use auto or base64.");
  }
  g->base64 = enc == "base64";
  if (auto it = body->find("truncate"); it != body->end() && !it->is_null()) {
    if (it->is_number_unsigned()) {
      g->truncate = it->get<size_t>();
    } else if (it->is_string()) {
      size_t t = 0;
      const std::string s = it->get<std::string>();
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), t);
      if (ec != std::errc() || end != s.data() + s.size()) {
        return json_response(
            Json{{"error", "bad_request"}, {"reason", Json::array({"not_integer", s})}}, 400);
      }
      g->truncate = t;
    }
  }
  broker::VHost* v = accessible_vhost(c, vname, err);
  if (!v) return err;
  if (broker::Queue* q = v->find_queue(qname); q && q->exclusive()) {
    // The API is never the owning connection, as in RabbitMQ.
    return bad_request("405 RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" +
                       qname + "' in vhost '" + vname +
                       "'. It could be originally declared on another connection or the "
                       "exclusive property value does not match that of the original "
                       "declaration.");
  }
  if (!v->find_queue(qname)) {
    return error_response(404, "not_found",
                          "NOT_FOUND - no queue '" + qname + "' in vhost '" + vname + "'");
  }
  if (auto refused = refuse_unless(c, vname, auth::Access::kRead, "queue", qname)) return *refused;
  if (!c.reply_later) return error_response(500, "internal_server_error", "no session");
  g->reply = c.reply_later;
  if (auto resp = run_get(g)) return *resp;
  return deferred();
}

}  // namespace warren::management
