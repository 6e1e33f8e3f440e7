// /api/definitions (GET export, POST import) and /api/definitions/{vhost}: RabbitMQ's
// definitions JSON — users with their password hashes, vhosts, permissions, topic
// permissions, parameters (vhost limits), policies, queues, exchanges and bindings. A file
// exported by RabbitMQ 3.x imports unchanged; keys of features Warren lacks are ignored.
// Import goes through the same handlers as the API's PUTs, so it validates alike, and stops
// at the first entry that fails (400 with its reason), as RabbitMQ does. Administrators only.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "broker/broker.h"
#include "common/log.h"
#include "management/api.h"

namespace warren::management {

namespace {
constexpr const char* kRabbitVersion = "3.13.7";

bool exported_exchange(const std::string& name) {
  return !name.empty() && name.rfind("amq.", 0) != 0;
}

// The vhost's durable topology; `with_vhost` adds the "vhost" field (full export).
void export_vhost(broker::VHost& v, bool with_vhost, Json& out) {
  auto tag = [&](Json j) {
    if (with_vhost) {
      Json o;
      o["name"] = j["name"];
      o["vhost"] = v.name();
      for (const auto& [k, val] : j.items())
        if (k != "name") o[k] = val;
      return o;
    }
    return j;
  };
  for (const auto& [name, p] : v.policies()) {
    out["policies"].push_back(policy_json(v.name(), p));
  }
  for (const auto& [name, q] : v.queues()) {
    if (q->exclusive()) continue;
    out["queues"].push_back(tag(Json{{"name", name},
                                     {"durable", q->durable()},
                                     {"auto_delete", q->auto_delete()},
                                     {"arguments", table_to_json(q->arguments())}}));
  }
  for (const auto& [name, x] : v.exchanges()) {
    if (!exported_exchange(name)) continue;
    out["exchanges"].push_back(tag(Json{{"name", name},
                                        {"type", x->type},
                                        {"durable", x->durable},
                                        {"auto_delete", x->auto_delete},
                                        {"internal", x->internal},
                                        {"arguments", table_to_json(x->arguments)}}));
  }
  for (const auto& [name, x] : v.exchanges()) {
    if (name.empty()) continue;
    for (const auto& b : x->bindings) {
      std::string dest;
      if (b.destination.is_exchange) {
        if (auto* d = v.exchange_by_id(b.destination.id)) dest = d->name;
      } else if (auto* q = v.queue_by_id(b.destination.id)) {
        if (q->exclusive()) continue;
        dest = q->name();
      }
      Json j{{"source", name}};
      if (with_vhost) j["vhost"] = v.name();
      j["destination"] = dest;
      j["destination_type"] = b.destination.is_exchange ? "exchange" : "queue";
      j["routing_key"] = b.routing_key;
      j["arguments"] = table_to_json(b.arguments);
      out["bindings"].push_back(j);
    }
  }
}

Json limits_parameter(const std::string& vhost, const broker::Broker::VHostInfo& info) {
  Json value = Json::object();
  for (const auto& [k, val] : info.limits) value[k] = val;
  return Json{{"value", value}, {"vhost", vhost}, {"component", "vhost-limits"}, {"name", "limits"}};
}

Json export_all(broker::Broker& b) {
  Json out;
  out["rabbit_version"] = kRabbitVersion;
  out["rabbitmq_version"] = kRabbitVersion;
  out["product_name"] = "Warren";
  out["product_version"] = kRabbitVersion;
  out["users"] = Json::array();
  for (const auto& [name, u] : b.users().users()) out["users"].push_back(user_json(u));
  out["vhosts"] = Json::array();
  for (const auto& [name, v] : b.vhosts()) {
    Json j{{"name", name}};
    if (const auto* info = b.vhost_info(name)) {
      if (!info->description.empty()) j["description"] = info->description;
      if (!info->tags.empty()) j["tags"] = info->tags;
    }
    out["vhosts"].push_back(j);
  }
  out["permissions"] = Json::array();
  for (const auto& [key, p] : b.users().permissions()) {
    out["permissions"].push_back(permission_json(key.first, key.second, p));
  }
  out["topic_permissions"] = Json::array();
  for (const auto& [key, p] : b.users().topic_permissions()) {
    const auto& [user, vhost, exchange] = key;
    out["topic_permissions"].push_back(topic_permission_json(user, vhost, exchange, p));
  }
  out["parameters"] = Json::array();
  for (const auto& [name, v] : b.vhosts()) {
    const auto* info = b.vhost_info(name);
    if (info && !info->limits.empty()) out["parameters"].push_back(limits_parameter(name, *info));
  }
  out["global_parameters"] = Json::array();
  out["policies"] = Json::array();
  out["queues"] = Json::array();
  out["exchanges"] = Json::array();
  out["bindings"] = Json::array();
  for (const auto& [name, v] : b.vhosts()) export_vhost(*v, true, out);
  return out;
}

Json export_one(broker::Broker& b, broker::VHost& v) {
  Json out;
  out["rabbit_version"] = kRabbitVersion;
  out["parameters"] = Json::array();
  if (const auto* info = b.vhost_info(v.name()); info && !info->limits.empty()) {
    out["parameters"].push_back(limits_parameter(v.name(), *info));
  }
  out["policies"] = Json::array();
  out["queues"] = Json::array();
  out["exchanges"] = Json::array();
  out["bindings"] = Json::array();
  export_vhost(v, false, out);
  return out;
}

// Runs one internal request as the calling administrator; false (and `err`) on failure.
bool step(Context& c, Response (*handler)(Context&, const Request&), Method m,
          std::vector<std::string> path, const Json& body, Response& err) {
  Request r;
  r.method = m;
  r.path = std::move(path);
  r.body = body.dump();
  Response resp = handler(c, r);
  if (resp.status >= 300) {
    // RabbitMQ answers any entry that fails with 400 and its reason.
    Json j = Json::parse(resp.body, nullptr, false);
    err = bad_request(j.is_object() && j.contains("reason") && j["reason"].is_string()
                          ? j["reason"].get<std::string>()
                          : "cannot import " + r.path[0] + " entry");
    return false;
  }
  return true;
}

std::string str(const Json& j, const char* key, const std::string& fallback = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

Json list(const Json& defs, const char* key) {
  auto it = defs.find(key);
  return it != defs.end() && it->is_array() ? *it : Json::array();
}

Response no_such_vhost(const std::string& name) {
  return json_response(Json{{"error", "bad_request"}, {"reason", {"no_such_vhost", name}}}, 400);
}

// Imports `defs`; `only_vhost` set: every object goes into that vhost (the per-vhost form).
Response import(Context& c, const Json& defs, const std::string* only_vhost) {
  Response err;
  auto vhost_of = [&](const Json& j) {
    return only_vhost ? *only_vhost : str(j, "vhost", "/");
  };
  if (!only_vhost) {
    for (const auto& u : list(defs, "users")) {
      if (!u.contains("tags")) return bad_request("tags_not_present");
      Json body{{"tags", u["tags"]}};
      if (u.contains("password_hash")) {
        body["password_hash"] = u["password_hash"];
        body["hashing_algorithm"] = str(u, "hashing_algorithm", "rabbit_password_hashing_sha256");
      } else if (u.contains("password")) {
        body["password"] = u["password"];
      }
      if (!step(c, handle_users, Method::kPut, {"users", str(u, "name")}, body, err)) return err;
    }
    for (const auto& v : list(defs, "vhosts")) {
      Json body = Json::object();
      if (v.contains("description")) body["description"] = v["description"];
      if (v.contains("tags")) body["tags"] = v["tags"];
      if (!step(c, handle_vhosts, Method::kPut, {"vhosts", str(v, "name")}, body, err)) return err;
    }
    for (const auto& p : list(defs, "permissions")) {
      if (!step(c, handle_permissions, Method::kPut,
                {"permissions", str(p, "vhost"), str(p, "user")}, p, err))
        return err;
    }
    for (const auto& p : list(defs, "topic_permissions")) {
      if (!step(c, handle_topic_permissions, Method::kPut,
                {"topic-permissions", str(p, "vhost"), str(p, "user")}, p, err))
        return err;
    }
  }
  for (const auto& p : list(defs, "parameters")) {
    if (str(p, "component") != "vhost-limits" || !p.contains("value") || !p["value"].is_object())
      continue;  // federation upstreams, shovels, ...: features Warren does not have
    if (!c.broker.find_vhost(vhost_of(p))) return no_such_vhost(vhost_of(p));
    for (const auto& [k, val] : p["value"].items()) {
      if (!step(c, handle_vhost_limits, Method::kPut, {"vhost-limits", vhost_of(p), k},
                Json{{"value", val}}, err))
        return err;
    }
  }
  for (const auto& p : list(defs, "policies")) {
    if (!c.broker.find_vhost(vhost_of(p))) return no_such_vhost(vhost_of(p));
    if (!step(c, handle_policies, Method::kPut, {"policies", vhost_of(p), str(p, "name")}, p, err))
      return err;
  }
  for (const auto& x : list(defs, "exchanges")) {
    const std::string name = str(x, "name");
    if (!exported_exchange(name)) continue;
    if (!c.broker.find_vhost(vhost_of(x))) return no_such_vhost(vhost_of(x));
    if (!step(c, handle_exchanges, Method::kPut, {"exchanges", vhost_of(x), name}, x, err))
      return err;
  }
  for (const auto& q : list(defs, "queues")) {
    if (!c.broker.find_vhost(vhost_of(q))) return no_such_vhost(vhost_of(q));
    if (!step(c, handle_queues, Method::kPut, {"queues", vhost_of(q), str(q, "name")}, q, err))
      return err;
  }
  for (const auto& b : list(defs, "bindings")) {
    broker::VHost* v = c.broker.find_vhost(vhost_of(b));
    broker::Exchange* src = v ? v->find_exchange(str(b, "source")) : nullptr;
    const bool to_exchange = str(b, "destination_type", "queue") == "exchange";
    exchange::Destination dest;
    if (src && to_exchange) {
      if (auto* d = v->find_exchange(str(b, "destination"))) dest = {d->id, true};
      else src = nullptr;
    } else if (src) {
      if (auto* q = v->find_queue(str(b, "destination"))) dest = {q->id(), false};
      else src = nullptr;
    }
    if (!v) return no_such_vhost(vhost_of(b));
    if (!src) continue;  // RabbitMQ, too, skips a binding whose ends are missing
    auto args = json_to_table(b.contains("arguments") ? b["arguments"] : Json());
    if (!args) return bad_request("binding arguments must be an object");
    // The check queue.bind and exchange.bind make (headers x-match, ...). RabbitMQ 3.10.8's
    // import answers 204 and leaves such a binding out; so does Warren, and says why.
    exchange::Binding nb{dest, str(b, "routing_key"), *args};
    if (std::string e = src->impl->validate_binding(nb); !e.empty()) {
      WLOG_WARN("definitions import: binding from '{}' in vhost '{}' left out: {}", src->name,
                v->name(), e);
      continue;
    }
    v->bind(*src, dest, std::move(nb.routing_key), std::move(nb.arguments));
  }
  return no_content();
}
}  // namespace

Response handle_definitions(Context& c, const Request& r) {
  if (!is_admin(c.user)) return not_authorised("Not administrator user");
  if (r.path.size() > 2) return not_found();
  broker::VHost* v = nullptr;
  if (r.path.size() == 2) {
    v = c.broker.find_vhost(r.path[1]);
    if (!v) return not_found();
  }
  switch (r.method) {
    case Method::kGet:
      return json_response(v ? export_one(c.broker, *v) : export_all(c.broker));
    case Method::kPost:
    case Method::kPut: {
      Json defs = Json::parse(r.body, nullptr, false);
      if (defs.is_discarded() || !defs.is_object()) return bad_request("failed_to_parse_json");
      // As in RabbitMQ, an administrator's import is not bound by their AMQP permissions in
      // the vhosts it fills.
      Context admin{c.broker, c.user, true};
      return import(admin, defs, v ? &r.path[1] : nullptr);
    }
    default:
      return method_not_allowed();
  }
}

bool load_definitions_file(broker::Broker& broker, const std::string& path, std::string& error) {
  // A directory: each of its .json files, in name order, as RabbitMQ does.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
      if (e.path().extension() == ".json") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files)
      if (!load_definitions_file(broker, f, error)) return false;
    return true;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path;
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  Json defs = Json::parse(text.str(), nullptr, false);
  if (defs.is_discarded() || !defs.is_object()) {
    error = path + " is not a JSON object";
    return false;
  }
  auth::User boot;
  boot.name = "rmq-internal";
  boot.tags = {"administrator"};
  Context c{broker, boot, true};
  Response r = import(c, defs, nullptr);
  if (r.status >= 300) {
    Json j = Json::parse(r.body, nullptr, false);
    error = path + ": " + (j.is_object() && j.contains("reason") ? j["reason"].dump() : r.body);
    return false;
  }
  return true;
}

}  // namespace warren::management
