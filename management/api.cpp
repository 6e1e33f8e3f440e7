#include "management/api.h"

#include <cmath>

#include "broker/broker.h"

namespace warren::management {

Response json_response(const Json& j, unsigned status) { return Response{status, j.dump()}; }

Response error_response(unsigned status, std::string_view error, std::string_view reason) {
  Json j;
  j["error"] = error;
  j["reason"] = reason;
  return json_response(j, status);
}

Response not_found() { return error_response(404, "Object Not Found", "Not Found"); }
Response method_not_allowed() {
  return error_response(405, "Method Not Allowed", "Method Not Allowed");
}
Response no_content() { return Response{204, ""}; }
Response deferred() { return Response{0, ""}; }
Response created() { return Response{201, ""}; }
Response bad_request(std::string_view reason) { return error_response(400, "bad_request", reason); }
Response not_authorised(std::string_view reason) {
  return error_response(401, "not_authorised", reason);
}

void add_with_rate(Json& j, const char* name, uint64_t value, double rate) {
  j[name] = value;
  // Rounded as RabbitMQ shows rates (one decimal).
  j[std::string(name) + "_details"] = Json{{"rate", std::round(rate * 10.0) / 10.0}};
}

Json message_stats_json(const broker::MessageStats& s, StatsOf of) {
  using S = broker::MessageStats;
  Json j = Json::object();
  auto add = [&](S::Field f) { add_with_rate(j, S::kNames[f], s.total(f), s.rate(f)); };
  if (of == StatsOf::kExchange) {
    add_with_rate(j, "publish_in", s.total(S::kPublish), s.rate(S::kPublish));
    add_with_rate(j, "publish_out", s.total(S::kPublishOut), s.rate(S::kPublishOut));
    return j;
  }
  add(S::kAck);
  if (of != StatsOf::kQueue) add(S::kConfirm);
  add(S::kDeliver);
  add_with_rate(j, "deliver_get", s.deliver_get(), s.deliver_get_rate());
  add(S::kDeliverNoAck);
  if (of != StatsOf::kQueue) add(S::kDropUnroutable);
  add(S::kGet);
  add(S::kGetEmpty);
  add(S::kGetNoAck);
  add(S::kPublish);
  add(S::kRedeliver);
  if (of != StatsOf::kQueue) add(S::kReturnUnroutable);
  return j;
}

std::optional<Json> parse_body(const Request& r, Response& err) {
  if (r.body.empty()) return Json::object();
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    err = bad_request("not_json");
    return std::nullopt;
  }
  return j;
}

bool is_admin(const auth::User& u) { return auth::has_tag(u, "administrator"); }
bool is_monitor(const auth::User& u) { return is_admin(u) || auth::has_tag(u, "monitoring"); }

bool can_access_vhost(const Context& c, std::string_view vhost) {
  return is_monitor(c.user) || c.broker.users().permission(c.user.name, vhost) != nullptr;
}

namespace {
Json value_to_json(const amqp::FieldValue& v) {
  return std::visit(
      [](const auto& x) -> Json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return x;
        } else if constexpr (std::is_integral_v<T>) {
          return static_cast<int64_t>(x);
        } else if constexpr (std::is_floating_point_v<T>) {
          return static_cast<double>(x);
        } else if constexpr (std::is_same_v<T, amqp::Decimal>) {
          return static_cast<double>(x.value) / std::pow(10.0, x.scale);
        } else if constexpr (std::is_same_v<T, amqp::LongString> ||
                             std::is_same_v<T, amqp::ByteArray>) {
          return x.value;
        } else if constexpr (std::is_same_v<T, amqp::FieldArray>) {
          Json a = Json::array();
          for (const auto& e : x) a.push_back(value_to_json(e));
          return a;
        } else if constexpr (std::is_same_v<T, amqp::Timestamp>) {
          return x.value;
        } else if constexpr (std::is_same_v<T, amqp::FieldTable>) {
          return table_to_json(x);
        } else if constexpr (std::is_same_v<T, amqp::LongLongInt>) {
          return x.value;
        } else {
          return nullptr;
        }
      },
      v.v);
}

std::optional<amqp::FieldValue> json_to_value(const Json& j) {
  if (j.is_boolean()) return amqp::FieldValue(j.get<bool>());
  if (j.is_number_integer()) return amqp::FieldValue(j.get<int64_t>());
  if (j.is_number_float()) return amqp::FieldValue(j.get<double>());
  if (j.is_string()) return amqp::FieldValue(j.get<std::string>());
  if (j.is_array()) {
    amqp::FieldArray a;
    for (const auto& e : j) {
      auto v = json_to_value(e);
      if (!v) return std::nullopt;
      a.push_back(std::move(*v));
    }
    return amqp::FieldValue(std::move(a));
  }
  if (j.is_object()) {
    auto t = json_to_table(j);
    if (!t) return std::nullopt;
    return amqp::FieldValue(std::move(*t));
  }
  return std::nullopt;
}
}  // namespace

Json table_to_json(const amqp::FieldTable& t) {
  Json j = Json::object();
  for (const auto& [k, v] : t.entries) j[k] = value_to_json(v);
  return j;
}

std::optional<amqp::FieldTable> json_to_table(const Json& j) {
  amqp::FieldTable t;
  if (j.is_null()) return t;
  if (!j.is_object()) return std::nullopt;
  for (const auto& [k, v] : j.items()) {
    auto fv = json_to_value(v);
    if (!fv) return std::nullopt;
    t.set(k, std::move(*fv));
  }
  return t;
}

std::vector<std::string> parse_tags(const Json& j) {
  std::vector<std::string> out;
  auto add = [&](std::string t) {
    // Trim spaces: "administrator, management" is common.
    const auto b = t.find_first_not_of(' ');
    if (b == std::string::npos) return;
    t = t.substr(b, t.find_last_not_of(' ') - b + 1);
    if (!t.empty()) out.push_back(std::move(t));
  };
  if (j.is_array()) {
    for (const auto& e : j)
      if (e.is_string()) add(e.get<std::string>());
  } else if (j.is_string()) {
    const std::string s = j.get<std::string>();
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(',', start);
      if (end == std::string::npos) end = s.size();
      add(s.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

std::string node_name() { return "warren@localhost"; }

bool json_bool(const Json& body, const char* key, bool fallback) {
  auto it = body.find(key);
  if (it == body.end()) return fallback;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) return it->get<std::string>() == "true";
  return fallback;
}

broker::VHost* accessible_vhost(Context& c, const std::string& name, Response& err) {
  broker::VHost* v = c.broker.find_vhost(name);
  if (!v) {
    err = not_found();
  } else if (!can_access_vhost(c, name)) {
    err = not_authorised("Not_Authorized");
    v = nullptr;
  }
  return v;
}

Response list_per_vhost(Context& c, const Request& r,
                        const std::function<void(broker::VHost&, Json&)>& add) {
  Json list = Json::array();
  if (r.path.size() == 2) {
    Response err;
    broker::VHost* v = accessible_vhost(c, r.path[1], err);
    if (!v) return err;
    add(*v, list);
    return json_response(list);
  }
  for (const auto& [vname, v] : c.broker.vhosts()) {
    if (can_access_vhost(c, vname)) add(*v, list);
  }
  return json_response(list);
}

}  // namespace warren::management
