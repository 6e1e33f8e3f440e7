// /api/aliveness-test/{vhost} and /api/health/checks/{alarms, local-alarms,
// port-listener/{port}, protocol-listener/{protocol}, virtual-hosts}: RabbitMQ's health
// checks — 200 {"status":"ok"}, or 503 {"status":"failed","reason":...} with RabbitMQ's
// extra fields. Open to every management user; the aliveness test needs access to the vhost.
#include <algorithm>
#include <charconv>

#include "broker/broker.h"
#include "management/api.h"

namespace warren::management {

namespace {
Response ok(Json extra = Json::object()) {
  Json j{{"status", "ok"}};
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return json_response(j);
}

Response failed(const std::string& reason, Json extra = Json::object()) {
  Json j{{"status", "failed"}, {"reason", reason}};
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return json_response(j, 503);
}

// RabbitMQ's aliveness test: declare the "aliveness-test" queue, put a message in it and
// take it back out.
Response aliveness(Context& c, const std::string& vname) {
  broker::VHost* v = c.broker.find_vhost(vname);
  if (!v) return not_found();
  if (!can_access_vhost(c, vname)) return not_authorised("Not_Authorized");
  broker::Queue* q = v->find_queue("aliveness-test");
  if (!q) q = &v->add_queue("aliveness-test", false, false, false, {}, nullptr);
  broker::MessagePtr m(new broker::Message);
  m->routing_key = "aliveness-test";
  m->properties = std::string(2, '\0');  // no properties
  m->body_storage = "test_message";
  if (!q->enqueue(m)) return failed("aliveness-test queue refused the message");
  auto got = q->get(false);
  if (!got || got->message->body() != "test_message") {
    return failed("aliveness-test message was not received");
  }
  return ok();
}

Json alarms_json(const broker::Broker& b) {
  Json list = Json::array();
  if (b.memory_alarm()) list.push_back(Json{{"node", node_name()}, {"resource", "memory"}});
  if (b.disk_alarm()) list.push_back(Json{{"node", node_name()}, {"resource", "disk"}});
  return list;
}
}  // namespace

Response handle_aliveness(Context& c, const Request& r) {
  if (r.path.size() != 2) return not_found();
  if (r.method != Method::kGet) return method_not_allowed();
  return aliveness(c, r.path[1]);
}

Response handle_health(Context& c, const Request& r) {
  if (r.path.size() < 3 || r.path[1] != "checks") return not_found();
  if (r.method != Method::kGet) return method_not_allowed();
  const std::string& check = r.path[2];
  const auto& cfg = c.broker.config();
  if (r.path.size() == 3 && (check == "alarms" || check == "local-alarms")) {
    // The broker's tick re-evaluates alarms every 200 ms; the answer is at most that old.
    Json alarms = alarms_json(c.broker);
    if (alarms.empty()) return ok();
    return failed(check == "alarms" ? "resource alarm(s) in effect in the cluster"
                                    : "resource alarm(s) in effect on the node",
                  Json{{"alarms", alarms}});
  }
  if (r.path.size() == 3 && check == "virtual-hosts") return ok();  // none is ever down
  if (r.path.size() == 4 && check == "port-listener") {
    const std::string& text = r.path[3];
    unsigned port = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc() || end != text.data() + text.size() || port > 65535) {
      return bad_request("Invalid port");
    }
    std::vector<unsigned> ports = {cfg.amqp_port};
    if (cfg.amqps_port) ports.push_back(cfg.amqps_port);
    if (cfg.http_port) ports.push_back(cfg.http_port);
    std::sort(ports.begin(), ports.end());
    if (std::find(ports.begin(), ports.end(), port) != ports.end()) {
      return ok(Json{{"port", port}});
    }
    return failed("No active listener", Json{{"missing", port}, {"ports", ports}});
  }
  if (r.path.size() == 4 && check == "protocol-listener") {
    std::string proto = r.path[3];
    if (proto == "amqp091" || proto == "amqp0-9-1" || proto == "amqp") proto = "amqp";
    std::vector<std::string> protocols = {"amqp", "http"};
    if (cfg.amqps_port) protocols.push_back("amqp/ssl");
    if (std::find(protocols.begin(), protocols.end(), proto) != protocols.end()) {
      return ok(Json{{"protocol", proto}});
    }
    return failed("No active listener", Json{{"missing", r.path[3]}, {"protocols", protocols}});
  }
  return not_found();
}

}  // namespace warren::management
