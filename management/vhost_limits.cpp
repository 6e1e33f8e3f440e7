// /api/vhost-limits, /api/vhost-limits/{vhost} (GET) and /api/vhost-limits/{vhost}/{name}
// (PUT {"value": N}, DELETE): max-connections and max-queues, as RabbitMQ.
#include "broker/broker.h"
#include "management/api.h"

namespace warren::management {

namespace {
Json limits_json(const std::string& vhost, const broker::Broker::VHostInfo& info) {
  Json value = Json::object();
  for (const auto& [k, v] : info.limits) value[k] = v;
  return Json{{"vhost", vhost}, {"value", value}};
}
}  // namespace

Response handle_vhost_limits(Context& c, const Request& r) {
  if (r.path.size() <= 2) {
    if (r.method != Method::kGet) return method_not_allowed();
    if (r.path.size() == 2 && !c.broker.find_vhost(r.path[1])) return not_found();
    Json list = Json::array();
    for (const auto& [name, v] : c.broker.vhosts()) {
      if (r.path.size() == 2 && name != r.path[1]) continue;
      if (!can_access_vhost(c, name)) continue;
      const auto* info = c.broker.vhost_info(name);
      if (info && !info->limits.empty()) list.push_back(limits_json(name, *info));
    }
    return list_response(r, std::move(list));
  }
  if (r.path.size() != 3) return not_found();
  if (!is_admin(c.user)) return not_authorised("Not administrator user");
  const std::string& vhost = r.path[1];
  const std::string& name = r.path[2];
  if (!c.broker.find_vhost(vhost)) return not_found();
  switch (r.method) {
    case Method::kPut: {
      Response err;
      auto body = parse_body(r, err);
      if (!body) return err;
      if (name != "max-connections" && name != "max-queues") {
        return bad_request("Validation failed\n\nUnrecognised terms [{<<\"" + name + "\">>," +
                           (body->contains("value") ? body->at("value").dump() : "undefined") +
                           "}] in limits\n");
      }
      auto it = body->find("value");
      if (it == body->end() || !it->is_number_integer()) {
        return bad_request("Validation failed\n\n" + name + " should be a number\n");
      }
      c.broker.set_vhost_limit(vhost, name, it->get<int64_t>());
      return no_content();
    }
    case Method::kDelete:
      c.broker.clear_vhost_limit(vhost, name);
      return no_content();
    default:
      return method_not_allowed();
  }
}

}  // namespace warren::management
