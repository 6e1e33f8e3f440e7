// Bindings, with RabbitMQ's fields and the default exchange's implicit ones included:
//   GET /api/bindings[/{vhost}]
//   GET, POST /api/bindings/{vhost}/e/{source}/q/{queue}   (and .../e/{destination})
//   GET, DELETE /api/bindings/{vhost}/e/{source}/q/{queue}/{properties_key}
//   GET /api/exchanges/{vhost}/{name}/bindings/{source|destination}
//   GET /api/queues/{vhost}/{name}/bindings
// Creating or deleting one takes the AMQP permissions queue.bind does: write on the
// destination, read on the source.
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

std::string destination_name(broker::VHost& v, const exchange::Destination& d) {
  if (d.is_exchange) {
    if (auto* x = v.exchange_by_id(d.id)) return x->name;
  } else if (auto* q = v.queue_by_id(d.id)) {
    return q->name();
  }
  return {};
}

void add_vhost_bindings(broker::VHost& v, Json& list) {
  for (const auto& [qname, q] : v.queues()) {
    list.push_back(binding_json(v.name(), "", qname, false, qname, {}));
  }
  for (const auto& [xname, x] : v.exchanges()) {
    if (xname.empty()) continue;
    for (const auto& b : x->bindings) {
      list.push_back(binding_json(v.name(), xname, destination_name(v, b.destination),
                                  b.destination.is_exchange, b.routing_key, b.arguments));
    }
  }
}

// The bindings from `source` (any when null) to `dest` (any when null), in RabbitMQ's order:
// the default exchange's implicit binding first.
Json bindings_between(broker::VHost& v, const broker::Exchange* source,
                      const exchange::Destination* dest) {
  Json list = Json::array();
  if (dest && !dest->is_exchange && (!source || source->name.empty())) {
    if (auto* q = v.queue_by_id(dest->id)) {
      list.push_back(binding_json(v.name(), "", q->name(), false, q->name(), {}));
    }
  }
  auto add_from = [&](const broker::Exchange& x) {
    if (x.name.empty()) return;
    for (const auto& b : x.bindings) {
      if (dest && !(b.destination.id == dest->id && b.destination.is_exchange == dest->is_exchange)) {
        continue;
      }
      list.push_back(binding_json(v.name(), x.name, destination_name(v, b.destination),
                                  b.destination.is_exchange, b.routing_key, b.arguments));
    }
  };
  if (source) {
    add_from(*source);
  } else {
    for (const auto& [xname, x] : v.exchanges()) add_from(*x);
  }
  return list;
}

// /api/bindings/{vhost}/e/{source}/{q|e}/{destination}[/{properties_key}]
Response binding_paths(Context& c, const Request& r) {
  const auto& p = r.path;
  if (p.size() < 6 || p.size() > 7 || p[2] != "e" || (p[4] != "q" && p[4] != "e")) {
    return not_found();
  }
  Response err;
  broker::VHost* v = accessible_vhost(c, p[1], err);
  if (!v) return err;
  const std::string source_name = p[3] == "amq.default" ? "" : p[3];
  const bool to_exchange = p[4] == "e";
  const std::string& dest_name = p[5];
  broker::Exchange* source = v->find_exchange(source_name);
  if (!source) {
    return error_response(404, "not_found",
                          "no exchange '" + source_name + "' in vhost '" + v->name() + "'");
  }
  exchange::Destination dest{};
  if (to_exchange) {
    broker::Exchange* d = v->find_exchange(dest_name == "amq.default" ? "" : dest_name);
    if (!d) {
      return error_response(404, "not_found",
                            "no exchange '" + dest_name + "' in vhost '" + v->name() + "'");
    }
    dest = exchange::Destination{d->id, true};
  } else {
    broker::Queue* q = v->find_queue(dest_name);
    if (!q) {
      return error_response(404, "not_found",
                            "no queue '" + dest_name + "' in vhost '" + v->name() + "'");
    }
    dest = exchange::Destination{q->id(), false};
  }
  // RabbitMQ answers every refusal of a binding change with this text.
  auto refused = [&]() -> std::optional<Response> {
    if (source_name.empty() ||
        refuse_unless(c, v->name(), auth::Access::kWrite, to_exchange ? "exchange" : "queue",
                      dest_name) ||
        refuse_unless(c, v->name(), auth::Access::kRead, "exchange", source_name)) {
      return not_authorised("Access refused.");
    }
    return std::nullopt;
  };
  if (p.size() == 6) {
    if (r.method == Method::kGet) return json_response(bindings_between(*v, source, &dest));
    if (r.method != Method::kPost) return method_not_allowed();
    auto body = parse_body(r, err);
    if (!body) return err;
    if (auto no = refused()) return *no;
    std::string key;
    if (auto it = body->find("routing_key"); it != body->end()) {
      if (!it->is_string()) return bad_request("routing_key must be a string");
      key = it->get<std::string>();
    }
    auto args = json_to_table(body->contains("arguments") ? body->at("arguments") : Json());
    if (!args) return bad_request("arguments must be an object");
    exchange::Binding b{dest, key, *args};
    if (std::string e = source->impl->validate_binding(b); !e.empty()) return bad_request(e);
    const std::string props = properties_key(key, *args);
    v->bind(*source, dest, key, std::move(*args));
    Response resp = created();
    // RabbitMQ's Location: the new binding's path relative to the collection.
    resp.location = dest_name + "/" + props;
    return resp;
  }
  // One binding, named by its properties key.
  const std::string& props = p[6];
  if (r.method != Method::kGet && r.method != Method::kDelete) return method_not_allowed();
  if (source_name.empty()) {  // the implicit binding of the default exchange
    if (to_exchange || props != properties_key(dest_name, {})) return not_found();
    if (r.method == Method::kGet) return json_response(binding_json(v->name(), "", dest_name, false, dest_name, {}));
    return not_authorised("Access refused.");
  }
  for (const auto& b : source->bindings) {
    if (b.destination.id != dest.id || b.destination.is_exchange != dest.is_exchange ||
        properties_key(b.routing_key, b.arguments) != props) {
      continue;
    }
    if (r.method == Method::kGet) {
      return json_response(binding_json(v->name(), source_name, dest_name, to_exchange,
                                        b.routing_key, b.arguments));
    }
    if (auto no = refused()) return *no;
    // The binding's own key and arguments (copied: unbinding destroys them), so that
    // argument types JSON cannot tell apart still match.
    const std::string key = b.routing_key;
    const amqp::FieldTable args = b.arguments;
    if (!v->unbind(*source, dest, key, args)) return not_found();
    return no_content();
  }
  return not_found();
}

Response exchange_bindings(Context& c, broker::VHost& v, broker::Exchange& x, bool as_source) {
  (void)c;
  if (as_source) return json_response(bindings_between(v, &x, nullptr));
  const exchange::Destination dest{x.id, true};
  return json_response(bindings_between(v, nullptr, &dest));
}

Response queue_bindings(Context& c, broker::VHost& v, broker::Queue& q) {
  (void)c;
  const exchange::Destination dest{q.id(), false};
  return json_response(bindings_between(v, nullptr, &dest));
}
}  // namespace

Response handle_bindings(Context& c, const Request& r) {
  if (r.path.size() > 2) return binding_paths(c, r);
  if (r.method != Method::kGet) return method_not_allowed();
  return list_per_vhost(c, r, [](broker::VHost& v, Json& list) { add_vhost_bindings(v, list); });
}

Response handle_exchange_bindings(Context& c, const Request& r, broker::VHost& v,
                                  broker::Exchange& x) {
  if (r.path.size() != 5 || (r.path[4] != "source" && r.path[4] != "destination")) {
    return not_found();
  }
  if (r.method != Method::kGet) return method_not_allowed();
  return exchange_bindings(c, v, x, r.path[4] == "source");
}

Response handle_queue_bindings(Context& c, const Request& r, broker::VHost& v, broker::Queue& q) {
  if (r.method != Method::kGet) return method_not_allowed();
  return queue_bindings(c, v, q);
}

}  // namespace warren::management
