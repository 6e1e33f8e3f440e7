// /api/vhosts and /api/vhosts/{vhost} (GET, PUT, DELETE): administrators create and delete;
// other management users see the vhosts they have permissions in.
#include "broker/broker.h"
#include "broker/connection.h"
#include "management/api.h"

namespace warren::management {

namespace {
Json vhost_json(Context& c, const std::string& name, broker::VHost& v) {
  const auto* info = c.broker.vhost_info(name);
  uint64_t ready = 0, unacked = 0;
  double ready_rate = 0, unacked_rate = 0;
  broker::MessageStats stats;  // its queues' counters
  for (const auto& [qn, q] : v.queues()) {
    ready += q->ready_count();
    unacked += q->unacked_count();
    ready_rate += q->ready_rate();
    unacked_rate += q->unacked_rate();
    stats.merge(q->stats());
  }
  broker::CounterRate recv, send;  // its connections' bytes
  for (broker::Connection* conn : c.broker.connections()) {
    if (conn->vhost() != &v) continue;
    recv.total += conn->recv_oct().total;
    recv.rate += conn->recv_oct().rate;
    send.total += conn->send_oct().total;
    send.rate += conn->send_oct().rate;
  }
  Json j;
  j["cluster_state"] = {{node_name(), "running"}};
  j["default_queue_type"] = "undefined";
  j["description"] = info ? info->description : "";
  j["metadata"] = {{"description", info ? info->description : ""},
                   {"tags", info ? info->tags : std::vector<std::string>{}}};
  j["name"] = name;
  j["tags"] = info ? info->tags : std::vector<std::string>{};
  j["tracing"] = false;
  add_with_rate(j, "messages", ready + unacked, ready_rate + unacked_rate);
  add_with_rate(j, "messages_ready", ready, ready_rate);
  add_with_rate(j, "messages_unacknowledged", unacked, unacked_rate);
  add_with_rate(j, "recv_oct", recv.total, recv.rate);
  add_with_rate(j, "send_oct", send.total, send.rate);
  j["message_stats"] = message_stats_json(stats, StatsOf::kQueue);
  return j;
}
}  // namespace

Response handle_vhosts(Context& c, const Request& r) {
  if (r.path.size() == 1) {
    if (r.method != Method::kGet) return method_not_allowed();
    Json list = Json::array();
    for (const auto& [name, v] : c.broker.vhosts()) {
      if (can_access_vhost(c, name)) list.push_back(vhost_json(c, name, *v));
    }
    return list_response(r, std::move(list));
  }
  if (r.path.size() != 2) return not_found();
  const std::string& name = r.path[1];
  broker::VHost* v = c.broker.find_vhost(name);
  switch (r.method) {
    case Method::kGet:
      if (!v || !can_access_vhost(c, name)) return not_found();
      return json_response(vhost_json(c, name, *v));
    case Method::kPut: {
      if (!is_admin(c.user)) return not_authorised("Not administrator user");
      Response err;
      auto body = parse_body(r, err);
      if (!body) return err;
      std::string description;
      if (auto it = body->find("description"); it != body->end() && it->is_string()) {
        description = it->get<std::string>();
      } else if (const auto* info = c.broker.vhost_info(name)) {
        description = info->description;
      }
      std::vector<std::string> tags;
      if (auto it = body->find("tags"); it != body->end()) {
        tags = parse_tags(*it);
      } else if (const auto* info = c.broker.vhost_info(name)) {
        tags = info->tags;
      }
      const bool was_new = c.broker.put_vhost(name, std::move(description), std::move(tags));
      if (was_new) {
        // RabbitMQ gives the creating user full permissions in the new vhost.
        if (c.broker.users().find(c.user.name) && !c.broker.users().permission(c.user.name, name)) {
          c.broker.set_permission(c.user.name, name, auth::Permission{});
        }
        return created();
      }
      return no_content();
    }
    case Method::kDelete:
      if (!is_admin(c.user)) return not_authorised("Not administrator user");
      if (!v) return not_found();
      c.broker.delete_vhost(name);
      return no_content();
    default:
      return method_not_allowed();
  }
}

}  // namespace warren::management
