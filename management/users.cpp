// /api/users, /api/users/{name} (GET, PUT, DELETE) and /api/users/{name}/permissions and
// /topic-permissions: administrators only, as in RabbitMQ.
#include "broker/broker.h"
#include "management/api.h"

namespace warren::management {

Json user_json(const auth::User& u) {
  Json j;
  j["name"] = u.name;
  j["password_hash"] = u.password_hash;
  j["hashing_algorithm"] = auth::algorithm_name(u.algorithm);
  j["tags"] = u.tags;
  j["limits"] = Json::object();
  return j;
}

Response handle_users(Context& c, const Request& r) {
  if (!is_admin(c.user)) return not_authorised("Not administrator user");
  auth::UserStore& users = c.broker.users();
  if (r.path.size() == 1) {
    if (r.method != Method::kGet) return method_not_allowed();
    Json list = Json::array();
    for (const auto& [name, u] : users.users()) list.push_back(user_json(u));
    return list_response(r, std::move(list));
  }
  const std::string& name = r.path[1];
  if (r.path.size() == 3 && (r.path[2] == "permissions" || r.path[2] == "topic-permissions")) {
    if (r.method != Method::kGet) return method_not_allowed();
    if (!users.find(name)) return not_found();
    Json list = Json::array();
    if (r.path[2] == "permissions") {
      for (const auto& [key, p] : users.permissions())
        if (key.first == name) list.push_back(permission_json(key.first, key.second, p));
    } else {
      for (const auto& [key, p] : users.topic_permissions()) {
        const auto& [u, v, x] = key;
        if (u == name) list.push_back(topic_permission_json(u, v, x, p));
      }
    }
    return list_response(r, std::move(list));
  }
  if (r.path.size() != 2) return not_found();
  const auth::User* existing = users.find(name);
  switch (r.method) {
    case Method::kGet:
      if (!existing) return not_found();
      return json_response(user_json(*existing));
    case Method::kPut: {
      Response err;
      auto body = parse_body(r, err);
      if (!body) return err;
      auth::User u;
      u.name = name;
      if (existing) u = *existing;
      if (auto it = body->find("password"); it != body->end() && it->is_string()) {
        u.algorithm = auth::HashAlgorithm::kSha256;
        u.password_hash = auth::UserStore::hash_password(it->get<std::string>(), u.algorithm);
      } else if (auto h = body->find("password_hash"); h != body->end() && h->is_string()) {
        std::string algo = "rabbit_password_hashing_sha256";
        if (auto a = body->find("hashing_algorithm"); a != body->end() && a->is_string()) {
          algo = a->get<std::string>();
        }
        auto parsed = auth::parse_algorithm(algo);
        if (!parsed) return bad_request("Unknown password hashing algorithm: " + algo);
        u.algorithm = *parsed;
        u.password_hash = h->get<std::string>();
      } else if (!existing) {
        // RabbitMQ creates a user that cannot log in with a password.
        u.password_hash.clear();
      }
      if (auto it = body->find("tags"); it != body->end()) {
        u.tags = parse_tags(*it);
      } else if (!existing) {
        u.tags.clear();
      }
      c.broker.put_user(std::move(u));
      return existing ? no_content() : created();
    }
    case Method::kDelete:
      if (!existing) return not_found();
      c.broker.delete_user(name);
      return no_content();
    default:
      return method_not_allowed();
  }
}

}  // namespace warren::management
