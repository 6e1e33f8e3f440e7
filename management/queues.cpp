// /api/queues, /api/queues/{vhost}, /api/queues/{vhost}/{name} (GET, PUT, DELETE) and
// /api/queues/{vhost}/{name}/contents (DELETE = purge). Changes are made with the calling
// user's AMQP permissions: configure to declare or delete, read to purge.
#include "auth/permission.h"
#include "broker/broker.h"
#include "broker/channel.h"
#include "broker/connection.h"
#include "management/api.h"

namespace warren::management {

Json queue_json(broker::VHost& v, broker::Queue& q) {
  Json j;
  j["name"] = q.name();
  j["vhost"] = v.name();
  j["durable"] = q.durable();
  j["auto_delete"] = q.auto_delete();
  j["exclusive"] = q.exclusive();
  j["arguments"] = table_to_json(q.arguments());
  j["node"] = node_name();
  j["state"] = "running";
  j["type"] = "classic";
  j["consumers"] = q.consumer_count();
  add_with_rate(j, "messages", q.ready_count() + q.unacked_count(), q.messages_rate());
  add_with_rate(j, "messages_ready", q.ready_count(), q.ready_rate());
  add_with_rate(j, "messages_unacknowledged", q.unacked_count(), q.unacked_rate());
  j["messages_paged_out"] = q.paged_count();
  j["message_stats"] = message_stats_json(q.stats(), StatsOf::kQueue);
  j["message_bytes"] = q.ready_bytes();
  j["message_bytes_ready"] = q.ready_bytes();
  j["exclusive_consumer_tag"] = nullptr;
  // RabbitMQ's: the policy and operator policy names (null when none) and the definition
  // in effect, where the operator policy's limits cap the policy's.
  // VHost::apply_policies already picked them; look them up by name (no pattern matching).
  auto named = [&](const std::string& name, bool op) -> const broker::Policy* {
    if (name.empty()) return nullptr;
    auto it = v.policies(op).find(name);
    return it == v.policies(op).end() ? nullptr : &it->second;
  };
  const broker::Policy* pol = named(q.policy_name(), false);
  const broker::Policy* op = named(q.operator_policy_name(), true);
  j["policy"] = pol ? Json(pol->name) : Json();
  j["operator_policy"] = op ? Json(op->name) : Json();
  Json eff = pol ? Json::parse(pol->definition_json, nullptr, false) : Json::object();
  if (op) {
    const Json op_def = Json::parse(op->definition_json, nullptr, false);
    for (const auto& [k, val] : op_def.items()) {
      auto it = eff.find(k);
      if (it == eff.end()) {
        eff[k] = val;
      } else if (it->is_number() && val.is_number() && val < *it) {
        *it = val;
      }
    }
  }
  j["effective_policy_definition"] = eff;
  if (q.owner()) {
    j["owner_pid_details"] = {{"name", q.owner()->name()},
                              {"peer_host", q.owner()->peer().substr(0, q.owner()->peer().rfind(':'))}};
  }
  return j;
}

std::optional<Response> refuse_unless(Context& c, std::string_view vhost, auth::Access access,
                                      std::string_view kind, std::string_view name) {
  std::string_view checked = name;
  if (kind == "exchange" && name.empty()) checked = "amq.default";
  if (c.local_operator || c.broker.permitted(c.user.name, vhost, access, checked)) {
    return std::nullopt;
  }
  return not_authorised(auth::access_refused_text(kind, checked, vhost, c.user.name));
}

Response handle_queues(Context& c, const Request& r) {
  if (r.path.size() <= 2) {
    if (r.method != Method::kGet) return method_not_allowed();
    return list_per_vhost(c, r, [](broker::VHost& v, Json& list) {
      for (const auto& [qname, q] : v.queues()) list.push_back(queue_json(v, *q));
    });
  }
  const std::string& vname = r.path[1];
  const std::string& qname = r.path[2];
  Response err;
  broker::VHost* v = accessible_vhost(c, vname, err);
  if (!v) return err;
  broker::Queue* q = v->find_queue(qname);
  if (r.path.size() == 4 && r.path[3] == "get") return get_messages(c, r, vname, qname);
  if (r.path.size() == 4 && r.path[3] == "bindings") {
    if (!q) return not_found();
    return handle_queue_bindings(c, r, *v, *q);
  }
  if (r.path.size() == 4 && r.path[3] == "contents") {
    if (r.method != Method::kDelete) return method_not_allowed();
    if (!q) return not_found();
    if (auto refused = refuse_unless(c, vname, auth::Access::kRead, "queue", qname)) return *refused;
    q->purge();
    return no_content();
  }
  if (r.path.size() != 3) return not_found();
  switch (r.method) {
    case Method::kGet:
      if (!q) return not_found();
      return json_response(queue_json(*v, *q));
    case Method::kPut: {
      Response err;
      auto body = parse_body(r, err);
      if (!body) return err;
      if (qname.rfind("amq.", 0) == 0) {
        return error_response(403, "access_refused",
                              "queue name '" + qname + "' contains reserved prefix 'amq.*'");
      }
      if (auto refused = refuse_unless(c, vname, auth::Access::kConfigure, "queue", qname)) {
        return *refused;
      }
      const bool durable = json_bool(*body, "durable", true);
      const bool auto_delete = json_bool(*body, "auto_delete", false);
      auto args = json_to_table(body->contains("arguments") ? body->at("arguments") : Json());
      if (!args) return bad_request("arguments must be an object");
      const std::string where = "queue '" + qname + "' in vhost '" + vname + "'";
      // The same argument checks and texts as queue.declare (RabbitMQ answers 400 with them).
      if (std::string e = broker::queue_arguments_error(*args, where); !e.empty()) {
        return bad_request(e);
      }
      if (q) {
        auto quote = [](bool b) { return std::string(b ? "'true'" : "'false'"); };
        if (q->durable() != durable) {
          return bad_request("inequivalent arg 'durable' for " + where + ": received " +
                             quote(durable) + " but current is " + quote(q->durable()));
        }
        if (q->auto_delete() != auto_delete) {
          return bad_request("inequivalent arg 'auto_delete' for " + where + ": received " +
                             quote(auto_delete) + " but current is " + quote(q->auto_delete()));
        }
        try {
          broker::check_equivalent_args(q->arguments(), *args, where);
        } catch (const amqp::ChannelError& e) {
          return bad_request(e.what());
        }
        return no_content();
      }
      if (auto limit = c.broker.vhost_limit(vname, "max-queues")) {
        if (static_cast<int64_t>(v->queues().size()) >= *limit) {
          return bad_request("cannot declare queue '" + qname + "': queue limit in vhost '" +
                             vname + "' (" + std::to_string(*limit) + ") is reached");
        }
      }
      if (const amqp::FieldValue* dlx = args->find("x-dead-letter-exchange")) {
        // As queue.declare: read on the queue, write on its dead-letter exchange.
        if (auto refused = refuse_unless(c, vname, auth::Access::kRead, "queue", qname)) {
          return *refused;
        }
        if (auto refused = refuse_unless(c, vname, auth::Access::kWrite, "exchange",
                                         *dlx->as_string())) {
          return *refused;
        }
      }
      v->add_queue(qname, durable, false, auto_delete, std::move(*args), nullptr);
      return created();
    }
    case Method::kDelete: {
      if (!q) return not_found();
      if (auto refused = refuse_unless(c, vname, auth::Access::kConfigure, "queue", qname)) {
        return *refused;
      }
      const std::string where = "queue '" + qname + "' in vhost '" + vname + "'";
      if (r.query.count("if-unused") && r.query.at("if-unused") == "true" && q->consumer_count() > 0) {
        return bad_request(where + " in use");
      }
      if (r.query.count("if-empty") && r.query.at("if-empty") == "true" &&
          q->ready_count() + q->unacked_count() > 0) {
        return bad_request(where + " not empty");
      }
      v->delete_queue(*q);
      return no_content();
    }
    default:
      return method_not_allowed();
  }
}

}  // namespace warren::management
