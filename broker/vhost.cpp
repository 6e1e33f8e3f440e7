#include "broker/vhost.h"

#include <algorithm>
#include <chrono>

#include "amqp/properties.h"
#include "broker/broker.h"

namespace warren::broker {

namespace {
std::string table_bytes(const amqp::FieldTable& t) {
  std::string out;
  amqp::Writer w(out);
  amqp::encode_table(w, t);
  return out;
}

// The predeclared exchanges are made by every start and never stored.
bool predeclared(const std::string& name) { return name.empty() || name.rfind("amq.", 0) == 0; }
}  // namespace

persistence::StoredBinding VHost::stored_binding(const Exchange& source,
                                                 const exchange::Binding& b) {
  persistence::StoredBinding sb;
  sb.vhost = name_;
  sb.source = source.name;
  sb.destination_is_exchange = b.destination.is_exchange;
  if (b.destination.is_exchange) {
    if (Exchange* d = exchange_by_id(b.destination.id)) sb.destination = d->name;
  } else if (Queue* q = queue_by_id(b.destination.id)) {
    sb.destination = q->name();
  }
  sb.routing_key = b.routing_key;
  sb.arguments = table_bytes(b.arguments);
  return sb;
}

bool VHost::durable_binding(const Exchange& source, const exchange::Binding& b) {
  // RabbitMQ keeps a binding when both of its ends are durable.
  if (!source.durable) return false;
  if (b.destination.is_exchange) {
    Exchange* d = exchange_by_id(b.destination.id);
    return d && d->durable;
  }
  Queue* q = queue_by_id(b.destination.id);
  return q && q->durable() && !q->auto_delete();
}

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

VHost::~VHost() { cancel_timers(); }

void VHost::cancel_timers() {
  if (delayed_timer_) delayed_timer_->cancel();
  for (auto& [name, q] : queues_) q->cancel_timers();
}

Exchange* VHost::add_exchange(std::string name, std::string type, bool durable,
                              bool auto_delete, bool internal, amqp::FieldTable arguments,
                              std::string* error) {
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
  if (std::string err = x->impl->configure(x->arguments); !err.empty()) {
    if (error) *error = err;
    return nullptr;
  }
  Exchange& ref = *x;
  exchange_ids_[ref.id] = &ref;
  exchanges_[std::move(name)] = std::move(x);
  if (!policies_.empty()) apply_policies(ref);
  if (ref.durable && !predeclared(ref.name)) {
    broker_->persist([&](persistence::Store& s) {
      s.put_exchange(persistence::StoredExchange{name_, ref.name, ref.type, ref.auto_delete,
                                                 ref.internal, table_bytes(ref.arguments)});
    });
  }
  return &ref;
}

void VHost::remove_bindings_to(exchange::Destination dest) {
  std::vector<Exchange*> emptied;
  for (auto& [name, x] : exchanges_) {
    auto& bs = x->bindings;
    bool removed = false;
    for (auto it = bs.begin(); it != bs.end();) {
      if (it->destination == dest) {
        if (durable_binding(*x, *it)) {
          auto sb = stored_binding(*x, *it);
          broker_->persist([&](persistence::Store& s) { s.delete_binding(sb); });
        }
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
    if (durable_binding(x, b)) {
      auto sb = stored_binding(x, b);
      broker_->persist([&](persistence::Store& s) { s.delete_binding(sb); });
    }
    if (b.destination.is_exchange) {
      if (Exchange* d = exchange_by_id(b.destination.id)) --d->bound_as_destination;
    }
  }
  x.bindings.clear();
  remove_bindings_to(self);
  if (x.durable && !predeclared(x.name)) {
    broker_->persist([&](persistence::Store& s) { s.delete_exchange(name_, x.name); });
  }
  exchange_ids_.erase(x.id);
  auto it = exchanges_.find(x.name);
  if (it != exchanges_.end()) exchanges_.erase(it);
}

Queue& VHost::add_queue(std::string name, bool durable, bool exclusive, bool auto_delete,
                        amqp::FieldTable arguments, Connection* owner) {
  QueuePtr q(new Queue(*this, next_id_++, name, durable, exclusive, auto_delete,
                       std::move(arguments), owner));
  Queue& ref = *q;
  ++broker_->churn().queues_created;
  queue_ids_[ref.id()] = &ref;
  queues_[std::move(name)] = std::move(q);
  if (!policies_.empty() || !operator_policies_.empty()) apply_policies(ref);
  // Exclusive and auto-delete queues do not survive a restart; durable ones are stored.
  if (ref.durable() && !ref.exclusive() && !ref.auto_delete()) {
    broker_->persist([&](persistence::Store& s) {
      s.put_queue(persistence::StoredQueue{name_, ref.name(), ref.auto_delete(),
                                           table_bytes(ref.arguments())});
    });
  }
  return ref;
}

const Policy* VHost::effective_policy(const std::string& name, bool is_queue,
                                      bool operator_policy) const {
  const Policy* best = nullptr;
  for (const auto& [pname, p] : policies(operator_policy)) {
    if (p.matches(name, is_queue) && (!best || p.priority > best->priority)) best = &p;
  }
  return best;
}

void VHost::apply_policies(Queue& q) {
  q.apply_policies(effective_policy(q.name(), true), effective_policy(q.name(), true, true));
}

void VHost::apply_policies(Exchange& x) {
  const Policy* p = effective_policy(x.name, false);
  x.policy_name = p ? p->name : "";
  x.policy_alternate = p && p->alternate_exchange ? *p->alternate_exchange : "";
}

void VHost::set_policy(Policy p, bool operator_policy) {
  auto& map = operator_policy ? operator_policies_ : policies_;
  std::string key = p.name;
  map.insert_or_assign(std::move(key), std::move(p));
  std::vector<QueuePtr> all;
  for (auto& [n, q] : queues_) all.push_back(q);
  for (auto& q : all) apply_policies(*q);
  for (auto& [n, x] : exchanges_) apply_policies(*x);
}

bool VHost::clear_policy(const std::string& name, bool operator_policy) {
  auto& map = operator_policy ? operator_policies_ : policies_;
  if (map.erase(name) == 0) return false;
  std::vector<QueuePtr> all;
  for (auto& [n, q] : queues_) all.push_back(q);
  for (auto& q : all) apply_policies(*q);
  for (auto& [n, x] : exchanges_) apply_policies(*x);
  return true;
}

size_t VHost::delete_queue(Queue& q) {
  QueuePtr keep(&q);
  ++broker_->churn().queues_deleted;
  remove_bindings_to(exchange::Destination{q.id(), false});
  queue_ids_.erase(q.id());
  queues_.erase(q.name());
  if (q.durable() && !q.exclusive() && !q.auto_delete()) {
    broker_->persist([&](persistence::Store& s) { s.delete_queue(name_, q.name()); });
  }
  return q.mark_deleted();
}

bool VHost::bind(Exchange& source, exchange::Destination dest, std::string routing_key,
                 amqp::FieldTable arguments) {
  exchange::Binding b{dest, std::move(routing_key), std::move(arguments)};
  for (const auto& existing : source.bindings)
    if (existing == b) return false;
  source.impl->bind(b);
  if (durable_binding(source, b)) {
    auto sb = stored_binding(source, b);
    broker_->persist([&](persistence::Store& s) { s.put_binding(sb); });
  }
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
      if (durable_binding(source, *it)) {
        auto sb = stored_binding(source, *it);
        broker_->persist([&](persistence::Store& s) { s.delete_binding(sb); });
      }
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
  in.raw_properties = m.properties;
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
  visited_.clear();
  scratch_.clear();
  route_into(*x, m, routing_key, in, out);
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

void VHost::route_into(Exchange& x, const Message& m, std::string_view routing_key,
                       const exchange::RoutingInput& in, std::vector<Queue*>& out) {
  if (std::find(visited_.begin(), visited_.end(), x.id) != visited_.end()) return;
  visited_.push_back(x.id);
  // This exchange's destinations go at the end of scratch_; nested exchanges append after
  // them, so the range is walked by index (the vector may grow) and dropped at the end.
  const size_t begin = scratch_.size();
  x.impl->route(in, scratch_);
  const size_t end = scratch_.size();
  for (size_t i = begin; i < end; ++i) {
    const exchange::Destination d = scratch_[i];
    if (d.is_exchange) {
      if (Exchange* next = exchange_by_id(d.id)) route_into(*next, m, routing_key, in, out);
    } else if (Queue* q = queue_by_id(d.id)) {
      out.push_back(q);
    }
  }
  scratch_.resize(begin);
  // Unroutable here: the alternate exchange gets it (RabbitMQ's alternate-exchange).
  const std::string& alternate = x.alternate.empty() ? x.policy_alternate : x.alternate;
  if (begin == end && !alternate.empty()) {
    if (Exchange* ae = find_exchange(alternate)) route_into(*ae, m, routing_key, in, out);
  }
}

}  // namespace warren::broker

namespace warren::broker {

namespace {
int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view table_str(const amqp::FieldTable& t, std::string_view key) {
  if (const amqp::FieldValue* v = t.find(key)) {
    if (auto s = v->as_string()) return *s;
  }
  return {};
}

// RabbitMQ's rabbit_dead_letter:is_cycle: the message came back to `queue` and no death
// since (inclusive) was a rejection.
bool is_cycle(const std::string& queue, const amqp::FieldArray& deaths) {
  for (const auto& d : deaths) {
    const amqp::FieldTable* t = d.as_table();
    if (!t) continue;
    if (table_str(*t, "reason") == "rejected") return false;
    if (table_str(*t, "queue") == queue) return true;
  }
  return false;
}
}  // namespace

bool VHost::route_delayed(Exchange* x, const MessagePtr& m, const std::string& routing_key) {
  if (!x || x->type != "x-delayed-message" || !m->summary.has_headers) return false;
  int64_t delay = 0;
  try {
    auto props = amqp::BasicProperties::decode(m->properties, true);
    if (const amqp::FieldValue* v = props.headers.find("x-delay")) delay = v->as_int().value_or(0);
  } catch (const amqp::DecodeError&) {
    return false;
  }
  if (delay <= 0) return false;
  Delayed d{x->name, routing_key, m, 0};
  if (x->durable && broker_->store()) {
    // Kept across restarts, with a wall-clock due time so the delay runs while down.
    d.store_id = broker_->next_message_id();
    const int64_t due_unix = unix_ms() + delay;
    broker_->persist([&](persistence::Store& s) {
      s.put_delayed(d.store_id, name_, x->name, routing_key, due_unix, m->properties, m->body());
    });
    broker_->hold_until_committed(m);
    // Marks the message as stored so the publisher's confirm waits for the commit.
    m->store_id = d.store_id;
  }
  hold_delayed(now_ms() + delay, std::move(d));
  return true;
}

void VHost::restore_delayed(const persistence::StoredDelayed& sd) {
  MessagePtr m = Message::rebuild(sd.exchange, sd.routing_key, sd.properties, sd.body);
  const int64_t wait = std::max<int64_t>(0, sd.due_unix_ms - unix_ms());
  hold_delayed(now_ms() + wait, Delayed{sd.exchange, sd.routing_key, std::move(m), sd.id});
}

void VHost::hold_delayed(int64_t due, Delayed d) {
  const bool earliest = delayed_.empty() || due < delayed_.begin()->first;
  delayed_.emplace(due, std::move(d));
  if (earliest) {
    if (!delayed_timer_) delayed_timer_ = std::make_unique<boost::asio::steady_timer>(broker_->executor());
    delayed_timer_->expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(due)));
    delayed_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) fire_delayed();
    });
  }
}

void VHost::fire_delayed() {
  const int64_t now = now_ms();
  std::vector<Queue*> targets;
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    Delayed d = std::move(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    if (d.store_id) {
      broker_->persist([&](persistence::Store& s) { s.delete_delayed(d.store_id); });
      // From here on it is an ordinary message: durable queues store it afresh.
      d.message->store_id = 0;
    }
    Exchange* x = find_exchange(d.exchange);
    if (!x) continue;  // the exchange was deleted meanwhile
    route(x, *d.message, d.routing_key, targets);
    for (Queue* q : targets) q->enqueue(d.message);
  }
  if (!delayed_.empty()) {
    delayed_timer_->expires_at(std::chrono::steady_clock::time_point(
        std::chrono::milliseconds(delayed_.begin()->first)));
    delayed_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) fire_delayed();
    });
  }
}

void VHost::dead_letter(Queue& q, const MessagePtr& m, DeathReason reason) {
  const QueueSettings& s = q.settings();
  if (!s.dead_letter_exchange) return;
  Exchange* dlx = find_exchange(*s.dead_letter_exchange);
  if (!dlx) return;  // RabbitMQ drops the message when its DLX does not exist

  amqp::BasicProperties props;
  try {
    props = amqp::BasicProperties::decode(m->properties, true);
  } catch (const amqp::DecodeError&) {
    return;
  }
  // The routing keys the message was published with: its key plus any CC (BCC is gone).
  amqp::FieldArray keys;
  keys.push_back(amqp::LongString{m->routing_key});
  if (const amqp::FieldValue* cc = props.headers.find("CC")) {
    if (const amqp::FieldArray* a = cc->as_array()) {
      for (const auto& v : *a)
        if (auto str = v.as_string()) keys.push_back(amqp::LongString{std::string(*str)});
    }
  }
  const std::string reason_name(death_reason_name(reason));

  amqp::FieldArray deaths;
  if (const amqp::FieldValue* xd = props.headers.find("x-death")) {
    if (const amqp::FieldArray* a = xd->as_array()) deaths = *a;
  }
  // One entry per (queue, reason), most recent first; a repeat increments its count.
  auto same = std::find_if(deaths.begin(), deaths.end(), [&](const amqp::FieldValue& v) {
    const amqp::FieldTable* t = v.as_table();
    return t && table_str(*t, "queue") == q.name() && table_str(*t, "reason") == reason_name;
  });
  if (same != deaths.end()) {
    amqp::FieldValue entry = std::move(*same);
    deaths.erase(same);
    auto& t = std::get<amqp::FieldTable>(entry.v);
    int64_t count = 0;
    if (const amqp::FieldValue* c = t.find("count")) count = c->as_int().value_or(0);
    t.set("count", amqp::FieldValue(static_cast<int64_t>(count + 1)));
    deaths.insert(deaths.begin(), std::move(entry));
  } else {
    amqp::FieldTable t;
    t.set("count", amqp::FieldValue(static_cast<int64_t>(1)));
    t.set("reason", reason_name);
    t.set("queue", q.name());
    t.set("time", amqp::FieldValue(amqp::Timestamp{static_cast<uint64_t>(unix_seconds())}));
    t.set("exchange", m->exchange);
    t.set("routing-keys", keys);
    if (props.has(amqp::BasicProperties::kExpiration)) {
      t.set("original-expiration", std::string(props.expiration));
    }
    deaths.insert(deaths.begin(), amqp::FieldValue(std::move(t)));
  }
  auto& h = props.headers;
  h.set("x-death", deaths);
  if (!h.find("x-first-death-reason")) {
    h.set("x-first-death-reason", reason_name);
    h.set("x-first-death-queue", q.name());
    h.set("x-first-death-exchange", m->exchange);
  }
  h.set("x-last-death-reason", reason_name);
  h.set("x-last-death-queue", q.name());
  h.set("x-last-death-exchange", m->exchange);
  if (s.dead_letter_routing_key) {
    // With its own routing key the message no longer carries sender-selected keys.
    h.erase("CC");
    h.erase("BCC");
  }
  props.flags |= amqp::BasicProperties::kHeaders;
  // The per-message TTL does not follow the message (it is kept as original-expiration).
  props.flags &= static_cast<uint16_t>(~amqp::BasicProperties::kExpiration);

  MessagePtr dm(new Message);
  dm->exchange = dlx->name;
  dm->routing_key = s.dead_letter_routing_key ? *s.dead_letter_routing_key : m->routing_key;
  amqp::Writer w(dm->properties);
  props.encode(w);
  dm->summary = amqp::summarize_properties(dm->properties);
  dm->body_owner = m->body_owner ? m->body_owner : m;

  std::vector<Queue*> targets;
  std::vector<Queue*> all;
  if (s.dead_letter_routing_key) {
    route(dlx, *dm, dm->routing_key, all);
  } else {
    for (const auto& k : keys) {
      route(dlx, *dm, *k.as_string(), targets);
      all.insert(all.end(), targets.begin(), targets.end());
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
  }
  for (Queue* t : all) {
    if (reason != DeathReason::kRejected && is_cycle(t->name(), deaths)) continue;
    t->enqueue(dm);
  }
}

}  // namespace warren::broker
