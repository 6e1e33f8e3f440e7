// /api/permissions, /api/permissions/{vhost}/{user} and the same under
// /api/topic-permissions (GET, PUT, DELETE): administrators only.
#include "auth/permission.h"
#include "broker/broker.h"
#include "management/api.h"

namespace warren::management {

Json permission_json(const std::string& user, const std::string& vhost, const auth::Permission& p) {
  return Json{{"user", user}, {"vhost", vhost}, {"configure", p.configure},
              {"write", p.write}, {"read", p.read}};
}

Json topic_permission_json(const std::string& user, const std::string& vhost,
                           const std::string& exchange, const auth::TopicPermission& p) {
  return Json{{"user", user}, {"vhost", vhost}, {"exchange", exchange},
              {"write", p.write}, {"read", p.read}};
}

namespace {
// A pattern field: a string that compiles ("" allowed).
// Topic patterns are checked with their variables expanded ("{username}" is not a regex).
std::optional<std::string> pattern_field(const Json& body, const char* key, Response& err,
                                         bool topic = false) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string()) {
    err = bad_request(std::string("[{error,missing_key,") + key + "}]");
    return std::nullopt;
  }
  std::string p = it->get<std::string>();
  if (!auth::valid_pattern(topic ? auth::expand_topic_pattern(p, "user", "vhost") : p)) {
    err = bad_request("cannot compile regular expression '" + p + "'");
    return std::nullopt;
  }
  return p;
}

// Vhost and user of /api/(topic-)permissions/{vhost}/{user}, checked to exist.
bool vhost_and_user(Context& c, const Request& r, Response& err) {
  if (!c.broker.find_vhost(r.path[1]) || !c.broker.users().find(r.path[2])) {
    err = not_found();
    return false;
  }
  return true;
}
}  // namespace

Response handle_permissions(Context& c, const Request& r) {
  if (!is_admin(c.user)) return not_authorised("Not administrator user");
  auth::UserStore& users = c.broker.users();
  if (r.path.size() == 1) {
    if (r.method != Method::kGet) return method_not_allowed();
    Json list = Json::array();
    for (const auto& [key, p] : users.permissions())
      list.push_back(permission_json(key.first, key.second, p));
    return list_response(r, std::move(list));
  }
  if (r.path.size() != 3) return not_found();
  const std::string& vhost = r.path[1];
  const std::string& user = r.path[2];
  Response err;
  switch (r.method) {
    case Method::kGet: {
      const auth::Permission* p = users.permission(user, vhost);
      if (!p) return not_found();
      return json_response(permission_json(user, vhost, *p));
    }
    case Method::kPut: {
      if (!vhost_and_user(c, r, err)) return err;
      auto body = parse_body(r, err);
      if (!body) return err;
      auto conf = pattern_field(*body, "configure", err);
      if (!conf) return err;
      auto write = pattern_field(*body, "write", err);
      if (!write) return err;
      auto read = pattern_field(*body, "read", err);
      if (!read) return err;
      const bool existed = users.permission(user, vhost) != nullptr;
      c.broker.set_permission(user, vhost, auth::Permission{*conf, *write, *read});
      return existed ? no_content() : created();
    }
    case Method::kDelete:
      if (!c.broker.clear_permission(user, vhost)) return not_found();
      return no_content();
    default:
      return method_not_allowed();
  }
}

Response handle_topic_permissions(Context& c, const Request& r) {
  if (!is_admin(c.user)) return not_authorised("Not administrator user");
  auth::UserStore& users = c.broker.users();
  auto list_where = [&](auto pred) {
    Json list = Json::array();
    for (const auto& [key, p] : users.topic_permissions()) {
      const auto& [u, v, x] = key;
      if (pred(u, v)) list.push_back(topic_permission_json(u, v, x, p));
    }
    return list;
  };
  if (r.path.size() == 1) {
    if (r.method != Method::kGet) return method_not_allowed();
    return json_response(list_where([](const auto&, const auto&) { return true; }));
  }
  if (r.path.size() == 2) {
    // GET /api/topic-permissions/{vhost}: RabbitMQ's per-vhost list.
    if (r.method != Method::kGet) return method_not_allowed();
    if (!c.broker.find_vhost(r.path[1])) return not_found();
    return json_response(list_where([&](const auto&, const auto& v) { return v == r.path[1]; }));
  }
  if (r.path.size() != 3) return not_found();
  const std::string& vhost = r.path[1];
  const std::string& user = r.path[2];
  Response err;
  switch (r.method) {
    case Method::kGet: {
      Json list = list_where([&](const auto& u, const auto& v) { return u == user && v == vhost; });
      if (list.empty()) return not_found();
      return list_response(r, std::move(list));
    }
    case Method::kPut: {
      if (!vhost_and_user(c, r, err)) return err;
      auto body = parse_body(r, err);
      if (!body) return err;
      auto x = body->find("exchange");
      if (x == body->end() || !x->is_string()) return bad_request("[{error,missing_key,exchange}]");
      auto write = pattern_field(*body, "write", err, true);
      if (!write) return err;
      auto read = pattern_field(*body, "read", err, true);
      if (!read) return err;
      const std::string exchange = x->get<std::string>();
      const bool existed = users.topic_permission(user, vhost, exchange) != nullptr;
      c.broker.set_topic_permission(user, vhost, exchange, auth::TopicPermission{*write, *read});
      return existed ? no_content() : created();
    }
    case Method::kDelete: {
      // ?exchange=X clears one; without it, all of the user's in the vhost.
      std::string exchange;
      if (auto it = r.query.find("exchange"); it != r.query.end()) exchange = it->second;
      if (c.broker.clear_topic_permissions(user, vhost, exchange) == 0) return not_found();
      return no_content();
    }
    default:
      return method_not_allowed();
  }
}

}  // namespace warren::management
