// GET /api/bindings and /api/bindings/{vhost}: every binding, the default exchange's
// implicit ones included, with RabbitMQ's fields.
#include <functional>

#include "broker/broker.h"
#include "management/api.h"

namespace warren::management {

namespace {
// RabbitMQ's properties_key: the routing key, or "key~hash" when there are arguments.
std::string properties_key(const std::string& key, const amqp::FieldTable& args) {
  if (args.empty()) return key.empty() ? "~" : key;
  std::string bytes;
  amqp::Writer w(bytes);
  amqp::encode_table(w, args);
  return key + "~" + std::to_string(std::hash<std::string>{}(bytes) % 100000000);
}

Json binding_json(const std::string& vhost, const std::string& source, const std::string& dest,
                  bool dest_is_exchange, const std::string& key, const amqp::FieldTable& args) {
  return Json{{"source", source},
              {"vhost", vhost},
              {"destination", dest},
              {"destination_type", dest_is_exchange ? "exchange" : "queue"},
              {"routing_key", key},
              {"arguments", table_to_json(args)},
              {"properties_key", properties_key(key, args)}};
}

void add_vhost_bindings(broker::VHost& v, Json& list) {
  for (const auto& [qname, q] : v.queues()) {
    list.push_back(binding_json(v.name(), "", qname, false, qname, {}));
  }
  for (const auto& [xname, x] : v.exchanges()) {
    if (xname.empty()) continue;
    for (const auto& b : x->bindings) {
      std::string dest;
      if (b.destination.is_exchange) {
        if (auto* d = v.exchange_by_id(b.destination.id)) dest = d->name;
      } else if (auto* q = v.queue_by_id(b.destination.id)) {
        dest = q->name();
      }
      list.push_back(binding_json(v.name(), xname, dest, b.destination.is_exchange,
                                  b.routing_key, b.arguments));
    }
  }
}
}  // namespace

Response handle_bindings(Context& c, const Request& r) {
  if (r.method != Method::kGet) return method_not_allowed();
  if (r.path.size() > 2) return not_found();
  return list_per_vhost(c, r, [](broker::VHost& v, Json& list) { add_vhost_bindings(v, list); });
}

}  // namespace warren::management
