#include "broker/vhost.h"

#include <algorithm>

#include "amqp/properties.h"
#include "broker/broker.h"

namespace warren::broker {

VHost::VHost(Broker& broker, std::string name) : broker_(&broker), name_(std::move(name)) {
  // The predeclared exchanges of every vhost (AMQP 0-9-1 section 3.1.3 and RabbitMQ).
  add_exchange("", "direct", true, false, false, {});
  add_exchange("amq.direct", "direct", true, false, false, {});
  add_exchange("amq.fanout", "fanout", true, false, false, {});
  add_exchange("amq.topic", "topic", true, false, false, {});
  add_exchange("amq.headers", "headers", true, false, false, {});
  add_exchange("amq.match", "headers", true, false, false, {});
}

Exchange* VHost::find_exchange(std::string_view name) {
  auto it = exchanges_.find(name);
  return it == exchanges_.end() ? nullptr : it->second.get();
}

Exchange* VHost::exchange_by_id(uint32_t id) {
  auto it = exchange_ids_.find(id);
  return it == exchange_ids_.end() ? nullptr : it->second;
}

Queue* VHost::find_queue(std::string_view name) {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : it->second.get();
}

Queue* VHost::queue_by_id(uint32_t id) {
  auto it = queue_ids_.find(id);
  return it == queue_ids_.end() ? nullptr : it->second;
}

Exchange& VHost::add_exchange(std::string name, std::string type, bool durable,
                              bool auto_delete, bool internal, amqp::FieldTable arguments) {
  auto x = std::make_unique<Exchange>();
  x->id = next_id_++;
  x->name = name;
  x->type = type;
  x->durable = durable;
  x->auto_delete = auto_delete;
  x->internal = internal;
  if (const amqp::FieldValue* ae = arguments.find("alternate-exchange")) {
    if (auto s = ae->as_string()) x->alternate = std::string(*s);
  }
  x->arguments = std::move(arguments);
  x->impl = exchange::Registry::builtin().create(type);
  Exchange& ref = *x;
  exchange_ids_[ref.id] = &ref;
  exchanges_[std::move(name)] = std::move(x);
  return ref;
}

void VHost::remove_bindings_to(exchange::Destination dest) {
  std::vector<Exchange*> emptied;
  for (auto& [name, x] : exchanges_) {
    auto& bs = x->bindings;
    bool removed = false;
    for (auto it = bs.begin(); it != bs.end();) {
      if (it->destination == dest) {
        x->impl->unbind(*it);
        it = bs.erase(it);
        removed = true;
      } else {
        ++it;
      }
    }
    if (removed && bs.empty() && x->auto_delete) emptied.push_back(x.get());
  }
  for (Exchange* x : emptied) maybe_auto_delete(*x);
}

void VHost::maybe_auto_delete(Exchange& x) {
  // RabbitMQ deletes an auto-delete exchange when its last binding (as source) goes.
  if (x.auto_delete && x.bindings.empty() && !x.name.empty()) delete_exchange(x);
}

void VHost::delete_exchange(Exchange& x) {
  const exchange::Destination self{x.id, true};
  for (const auto& b : x.bindings) {
    if (b.destination.is_exchange) {
      if (Exchange* d = exchange_by_id(b.destination.id)) --d->bound_as_destination;
    }
  }
  x.bindings.clear();
  remove_bindings_to(self);
  exchange_ids_.erase(x.id);
  auto it = exchanges_.find(x.name);
  if (it != exchanges_.end()) exchanges_.erase(it);
}

Queue& VHost::add_queue(std::string name, bool durable, bool exclusive, bool auto_delete,
                        amqp::FieldTable arguments, Connection* owner) {
  QueuePtr q(new Queue(*this, next_id_++, name, durable, exclusive, auto_delete,
                       std::move(arguments), owner));
  Queue& ref = *q;
  queue_ids_[ref.id()] = &ref;
  queues_[std::move(name)] = std::move(q);
  return ref;
}

size_t VHost::delete_queue(Queue& q) {
  QueuePtr keep(&q);
  queue_ids_.erase(q.id());
  queues_.erase(q.name());
  remove_bindings_to(exchange::Destination{q.id(), false});
  return q.mark_deleted();
}

bool VHost::bind(Exchange& source, exchange::Destination dest, std::string routing_key,
                 amqp::FieldTable arguments) {
  exchange::Binding b{dest, std::move(routing_key), std::move(arguments)};
  for (const auto& existing : source.bindings)
    if (existing == b) return false;
  source.impl->bind(b);
  source.bindings.push_back(std::move(b));
  if (dest.is_exchange) {
    if (Exchange* d = exchange_by_id(dest.id)) ++d->bound_as_destination;
  }
  return true;
}

bool VHost::unbind(Exchange& source, exchange::Destination dest, std::string_view routing_key,
                   const amqp::FieldTable& arguments) {
  auto& bs = source.bindings;
  for (auto it = bs.begin(); it != bs.end(); ++it) {
    if (it->destination == dest && it->routing_key == routing_key && it->arguments == arguments) {
      source.impl->unbind(*it);
      bs.erase(it);
      if (dest.is_exchange) {
        if (Exchange* d = exchange_by_id(dest.id)) --d->bound_as_destination;
      }
      maybe_auto_delete(source);
      return true;
    }
  }
  return false;
}

bool VHost::has_bindings_to(exchange::Destination dest) const {
  for (const auto& [name, x] : exchanges_)
    for (const auto& b : x->bindings)
      if (b.destination == dest) return true;
  return false;
}

void VHost::route(Exchange* x, const Message& m, std::string_view routing_key,
                  std::vector<Queue*>& out) {
  out.clear();
  if (x == nullptr || x->name.empty()) {
    // The default exchange: every queue is bound by its name.
    if (Queue* q = find_queue(routing_key)) out.push_back(q);
    return;
  }
  // Headers are decoded at most once per publish, and only if an exchange asks.
  std::optional<amqp::BasicProperties> props;
  exchange::RoutingInput in;
  in.routing_key = routing_key;
  in.headers = [&props, &m]() -> const amqp::FieldTable* {
    if (!m.summary.has_headers) return nullptr;
    if (!props) {
      // Headers are passed through undecoded at publish time; a table that does not parse
      // matches nothing rather than failing the publish.
      try {
        props = amqp::BasicProperties::decode(m.properties, true);
      } catch (const amqp::DecodeError&) {
        props.emplace();
      }
    }
    return &props->headers;
  };
  std::vector<uint32_t> visited;
  route_into(*x, m, routing_key, in, out, visited);
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

void VHost::route_into(Exchange& x, const Message& m, std::string_view routing_key,
                       const exchange::RoutingInput& in, std::vector<Queue*>& out,
                       std::vector<uint32_t>& visited) {
  if (std::find(visited.begin(), visited.end(), x.id) != visited.end()) return;
  visited.push_back(x.id);
  std::vector<exchange::Destination> dests;
  x.impl->route(in, dests);
  for (const auto& d : dests) {
    if (d.is_exchange) {
      if (Exchange* next = exchange_by_id(d.id)) route_into(*next, m, routing_key, in, out, visited);
    } else if (Queue* q = queue_by_id(d.id)) {
      out.push_back(q);
    }
  }
  // Unroutable here: the alternate exchange gets it (RabbitMQ's alternate-exchange).
  if (dests.empty() && !x.alternate.empty()) {
    if (Exchange* ae = find_exchange(x.alternate)) route_into(*ae, m, routing_key, in, out, visited);
  }
}

}  // namespace warren::broker
