// /api/exchanges, /api/exchanges/{vhost}, /api/exchanges/{vhost}/{name} (GET, PUT, DELETE).
// The default exchange is "amq.default" in paths, "" in bodies, as in RabbitMQ.
#include "auth/permission.h"
#include "broker/broker.h"
#include "exchange/exchange.h"
#include "management/api.h"

namespace warren::management {

namespace {
Json exchange_json(const broker::VHost& v, const broker::Exchange& x) {
  Json j;
  j["name"] = x.name;
  j["vhost"] = v.name();
  j["type"] = x.type;
  j["durable"] = x.durable;
  j["auto_delete"] = x.auto_delete;
  j["internal"] = x.internal;
  j["arguments"] = table_to_json(x.arguments);
  // As RabbitMQ: only once messages have passed through it.
  if (x.stats.any()) j["message_stats"] = message_stats_json(x.stats, StatsOf::kExchange);
  if (!x.policy_name.empty()) j["policy"] = x.policy_name;  // as RabbitMQ: only when one applies
  j["user_who_performed_action"] = "";
  return j;
}
}  // namespace

Response handle_exchanges(Context& c, const Request& r) {
  if (r.path.size() <= 2) {
    if (r.method != Method::kGet) return method_not_allowed();
    return list_per_vhost(c, r, [](broker::VHost& v, Json& list) {
      for (const auto& [xname, x] : v.exchanges()) list.push_back(exchange_json(v, *x));
    });
  }
  const std::string& vname = r.path[1];
  const std::string xname = r.path[2] == "amq.default" ? "" : r.path[2];
  Response err;
  broker::VHost* v = accessible_vhost(c, vname, err);
  if (!v) return err;
  broker::Exchange* x = v->find_exchange(xname);
  if (r.path.size() == 4 && r.path[3] == "publish") return publish_message(c, r, *v, xname);
  if (r.path.size() >= 4 && r.path[3] == "bindings") {
    if (!x) return not_found();
    return handle_exchange_bindings(c, r, *v, *x);
  }
  if (r.path.size() != 3) return not_found();
  switch (r.method) {
    case Method::kGet:
      if (!x) return not_found();
      return json_response(exchange_json(*v, *x));
    case Method::kPut: {
      Response err;
      auto body = parse_body(r, err);
      if (!body) return err;
      if (auto refused = refuse_unless(c, vname, auth::Access::kConfigure, "exchange", xname)) {
        return *refused;
      }
      std::string type = "direct";
      if (auto it = body->find("type"); it != body->end() && it->is_string()) type = it->get<std::string>();
      const bool durable = json_bool(*body, "durable", true);
      const bool auto_delete = json_bool(*body, "auto_delete", false);
      const bool internal = json_bool(*body, "internal", false);
      auto args = json_to_table(body->contains("arguments") ? body->at("arguments") : Json());
      if (!args) return bad_request("arguments must be an object");
      const std::string where = "exchange '" + xname + "' in vhost '" + vname + "'";
      if (x) {
        if (x->type != type || x->durable != durable || x->auto_delete != auto_delete ||
            x->internal != internal) {
          return bad_request("inequivalent arg for " + where);
        }
        return no_content();
      }
      if (xname.empty() || xname.rfind("amq.", 0) == 0) {
        return error_response(403, "access_refused",
                              "exchange name '" + xname + "' contains reserved prefix 'amq.*'");
      }
      if (!exchange::Registry::builtin().has(type)) {
        return bad_request("unknown exchange type '" + type + "'");
      }
      std::string error;
      if (!v->add_exchange(xname, type, durable, auto_delete, internal, std::move(*args), &error)) {
        return bad_request(error);
      }
      return created();
    }
    case Method::kDelete: {
      if (!x) return not_found();
      if (xname.empty() || xname.rfind("amq.", 0) == 0) {
        return error_response(403, "access_refused",
                              "deletion of system exchange '" + xname + "' in vhost '" + vname +
                                  "' not allowed");
      }
      if (auto refused = refuse_unless(c, vname, auth::Access::kConfigure, "exchange", xname)) {
        return *refused;
      }
      if (r.query.count("if-unused") && r.query.at("if-unused") == "true" &&
          (!x->bindings.empty() || x->bound_as_destination > 0)) {
        return bad_request("exchange '" + xname + "' in vhost '" + vname + "' in use");
      }
      v->delete_exchange(*x);
      return no_content();
    }
    default:
      return method_not_allowed();
  }
}

}  // namespace warren::management
