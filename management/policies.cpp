// /api/policies, /api/policies/{vhost}, /api/policies/{vhost}/{name} (GET, PUT, DELETE) and
// the same under /api/operator-policies. PUT takes RabbitMQ's {"pattern", "definition",
// "priority", "apply-to"}; a policy takes effect at once on the vhost's queues and
// exchanges. Policies: administrators, and policymakers in the vhosts they can access;
// operator policies: administrators only.
#include <map>
#include <set>

#include "auth/permission.h"
#include "broker/broker.h"
#include "management/api.h"

namespace warren::management {

Json policy_json(const std::string& vhost, const broker::Policy& p) {
  Json def = Json::parse(p.definition_json, nullptr, false);
  if (def.is_discarded()) def = Json::object();
  return Json{{"vhost", vhost},          {"name", p.name},     {"pattern", p.pattern},
              {"apply-to", p.apply_to}, {"definition", def}, {"priority", p.priority}};
}

// Builds a policy from RabbitMQ's PUT body (or a definitions file entry); nullopt with a
// 400 in `err` as RabbitMQ words it.
namespace {
// The definition keys RabbitMQ 3.10 accepts (with the federation plugin's): Warren gives
// meaning to those Policy::make knows and keeps the rest without effect. Operator policies
// take only the limits.
const std::set<std::string>& known_keys(bool operator_policy) {
  static const std::set<std::string> policy = {
      "alternate-exchange", "dead-letter-exchange", "dead-letter-routing-key",
      "dead-letter-strategy", "message-ttl", "expires", "max-length", "max-length-bytes",
      "max-in-memory-length", "max-in-memory-bytes", "delivery-limit", "overflow", "queue-mode",
      "queue-version", "queue-master-locator", "queue-leader-locator", "ha-mode", "ha-params",
      "ha-sync-mode", "ha-sync-batch-size", "ha-promote-on-shutdown", "ha-promote-on-failure",
      "max-age", "stream-max-segment-size-bytes", "federation-upstream",
      "federation-upstream-set"};
  static const std::set<std::string> op = {"expires", "message-ttl", "max-length",
                                           "max-length-bytes", "max-in-memory-length",
                                           "max-in-memory-bytes", "delivery-limit"};
  return operator_policy ? op : policy;
}

// RabbitMQ's "[{<<\"foo\">>,1}] are not recognised policy settings" (HTML-escaped for
// policies, as RabbitMQ sends it), or "" when every key is known.
std::string unknown_keys(const Json& def, bool operator_policy) {
  std::map<std::string, Json> unknown;
  for (const auto& [k, v] : def.items())
    if (!known_keys(operator_policy).count(k)) unknown.emplace(k, v);
  if (unknown.empty()) return "";
  const std::string lt = operator_policy ? "<<" : "&lt;&lt;";
  const std::string gt = operator_policy ? ">>" : "&gt;&gt;";
  std::string s = "[";
  for (const auto& [k, v] : unknown) {
    if (s.size() > 1) s += ",";
    s += "{" + lt + Json(k).dump() + gt + ",";
    s += v.is_string() ? lt + v.dump() + gt : v.dump();
    s += "}";
  }
  return s + "] are not recognised policy settings";
}
}  // namespace

std::optional<broker::Policy> policy_from_json(const std::string& name, const Json& body,
                                               Response& err, bool operator_policy) {
  for (const char* key : {"pattern", "definition"}) {
    if (!body.contains(key)) {
      err = bad_request(std::string("[{key_missing,") + key + "}]");
      return std::nullopt;
    }
  }
  auto invalid = [&](const std::string& why) {
    err = bad_request("Validation failed\n\n" + why + "\n");
    return std::nullopt;
  };
  const Json& pattern = body.at("pattern");
  if (!pattern.is_string()) return invalid("pattern must be a string");
  Json def = body.at("definition");
  // Older clients send the definition as a JSON string.
  if (def.is_string()) def = Json::parse(def.get<std::string>(), nullptr, false);
  if (!def.is_object()) return invalid("definition must be a JSON object");
  if (def.empty()) return invalid("no policy provided");
  if (std::string unknown = unknown_keys(def, operator_policy); !unknown.empty()) {
    return invalid(unknown);
  }
  std::string apply_to = "all";
  if (auto it = body.find("apply-to"); it != body.end() && !it->is_null()) {
    apply_to = it->is_string() ? it->get<std::string>() : it->dump();
    if (apply_to != "all" && apply_to != "queues" && apply_to != "exchanges") {
      return invalid("apply-to '" + apply_to +
                     "' unrecognised; should be 'queues', 'exchanges' or 'all'");
    }
  }
  int64_t priority = 0;
  if (auto it = body.find("priority"); it != body.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      priority = it->get<int64_t>();
    } else if (it->is_string() && !it->get<std::string>().empty() &&
               it->get<std::string>().find_first_not_of("-0123456789") == std::string::npos) {
      priority = std::strtoll(it->get<std::string>().c_str(), nullptr, 10);
    } else {
      return invalid("priority must be an integer");
    }
  }
  std::string error;
  auto p = broker::Policy::make(name, pattern.get<std::string>(), apply_to,
                                static_cast<int>(priority), def.dump(), error);
  if (!p) return invalid(error);
  return p;
}

namespace {
Response handle(Context& c, const Request& r, bool operator_policy) {
  const bool policymaker = auth::has_tag(c.user, "policymaker");
  if (!is_admin(c.user) && (operator_policy || !policymaker)) {
    return not_authorised("Not administrator user");
  }
  if (r.path.size() <= 2) {
    if (r.method != Method::kGet) return method_not_allowed();
    return list_per_vhost(c, r, [operator_policy](broker::VHost& v, Json& list) {
      for (const auto& [pname, p] : v.policies(operator_policy)) {
        list.push_back(policy_json(v.name(), p));
      }
    });
  }
  if (r.path.size() != 3) return not_found();
  const std::string& vname = r.path[1];
  const std::string& name = r.path[2];
  Response err;
  broker::VHost* v = accessible_vhost(c, vname, err);
  if (!v) return err;
  const auto& policies = v->policies(operator_policy);
  switch (r.method) {
    case Method::kGet: {
      auto it = policies.find(name);
      if (it == policies.end()) return not_found();
      return json_response(policy_json(vname, it->second));
    }
    case Method::kPut: {
      Response err;
      auto body = parse_body(r, err);
      if (!body) return err;
      auto p = policy_from_json(name, *body, err, operator_policy);
      if (!p) return err;
      return c.broker.set_policy(vname, std::move(*p), operator_policy) ? created()
                                                                          : no_content();
    }
    case Method::kDelete:
      if (!c.broker.clear_policy(vname, name, operator_policy)) return not_found();
      return no_content();
    default:
      return method_not_allowed();
  }
}
}  // namespace

Response handle_policies(Context& c, const Request& r) { return handle(c, r, false); }
Response handle_operator_policies(Context& c, const Request& r) { return handle(c, r, true); }

}  // namespace warren::management
