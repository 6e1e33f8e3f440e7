// GET /api/overview and GET /api/whoami.
#include "broker/broker.h"
#include "broker/channel.h"
#include "broker/connection.h"
#include "management/api.h"

namespace warren::management {

Response handle_overview(Context& c, const Request& r) {
  if (r.path.size() != 1) return not_found();
  if (r.method != Method::kGet) return method_not_allowed();
  size_t connections = 0, channels = 0, exchanges = 0, queues = 0, consumers = 0;
  uint64_t ready = 0, unacked = 0;
  double ready_rate = 0, unacked_rate = 0;
  broker::MessageStats own;  // a user who sees only some vhosts sees their queues' counts
  for (const auto& [name, v] : c.broker.vhosts()) {
    if (!can_access_vhost(c, name)) continue;
    exchanges += v->exchanges().size();
    queues += v->queues().size();
    for (const auto& [qn, q] : v->queues()) {
      consumers += q->consumer_count();
      ready += q->ready_count();
      unacked += q->unacked_count();
      ready_rate += q->ready_rate();
      unacked_rate += q->unacked_rate();
      if (!is_monitor(c.user)) own.merge(q->stats());
    }
  }
  for (broker::Connection* conn : c.broker.connections()) {
    if (conn->state() != broker::Connection::State::kOpen) continue;
    if (!is_monitor(c.user) && conn->user() != c.user.name) continue;
    ++connections;
    channels += conn->channels().size();
  }
  Json j;
  j["management_version"] = "3.13.7";
  j["rates_mode"] = "basic";
  j["exchange_types"] = Json::array();
  for (const char* t : {"direct", "fanout", "headers", "topic", "x-consistent-hash",
                        "x-delayed-message"}) {
    j["exchange_types"].push_back({{"name", t}, {"description", ""}, {"enabled", true}});
  }
  j["product_version"] = "3.13.7";
  j["product_name"] = "RabbitMQ";
  j["rabbitmq_version"] = "3.13.7";
  j["warren_version"] = "0.1.0";
  j["cluster_name"] = node_name();
  j["erlang_version"] = "none (Warren, C++20)";
  j["disable_stats"] = false;
  j["message_stats"] =
      message_stats_json(is_monitor(c.user) ? c.broker.stats() : own, StatsOf::kOverview);
  Json totals = Json::object();
  add_with_rate(totals, "messages", ready + unacked, ready_rate + unacked_rate);
  add_with_rate(totals, "messages_ready", ready, ready_rate);
  add_with_rate(totals, "messages_unacknowledged", unacked, unacked_rate);
  j["queue_totals"] = totals;
  j["object_totals"] = {{"channels", channels},
                        {"connections", connections},
                        {"consumers", consumers},
                        {"exchanges", exchanges},
                        {"queues", queues}};
  j["node"] = node_name();
  const auto& cfg = c.broker.config();
  j["listeners"] = Json::array({{{"node", node_name()},
                                 {"protocol", "amqp"},
                                 {"ip_address", cfg.bind_address},
                                 {"port", cfg.amqp_port}},
                                {{"node", node_name()},
                                 {"protocol", "http"},
                                 {"ip_address", cfg.bind_address},
                                 {"port", cfg.http_port}}});
  return json_response(j);
}

Response handle_whoami(Context& c, const Request& r) {
  if (r.path.size() != 1) return not_found();
  if (r.method != Method::kGet) return method_not_allowed();
  Json j;
  j["name"] = c.user.name;
  j["tags"] = c.user.tags;
  return json_response(j);
}

}  // namespace warren::management
