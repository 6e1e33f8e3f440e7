// GET /api/overview and GET /api/whoami.
#include "broker/broker.h"
#include "broker/channel.h"
#include "broker/connection.h"
#include "management/api.h"

namespace warren::management {

Json listeners_json(const common::Config& cfg) {
  Json list = Json::array();
  auto add = [&](const char* protocol, const std::string& ip, uint16_t port) {
    list.push_back(
        {{"node", node_name()}, {"protocol", protocol}, {"ip_address", ip}, {"port", port}});
  };
  if (cfg.amqp_listeners.empty()) add("amqp", cfg.bind_address, cfg.amqp_port);
  for (const auto& [ip, port] : cfg.amqp_listeners) add("amqp", ip, port);
  if (cfg.amqps_port) {
    add("amqp/ssl", cfg.amqps_bind_address.empty() ? cfg.bind_address : cfg.amqps_bind_address,
        cfg.amqps_port);
  }
  const std::string& http_ip = cfg.management_ip.empty() ? cfg.bind_address : cfg.management_ip;
  if (cfg.http_port) add("http", http_ip, cfg.http_port);
  if (cfg.https_port) add("https", http_ip, cfg.https_port);
  if (cfg.prometheus_port) {
    add("http/prometheus", cfg.prometheus_ip.empty() ? cfg.bind_address : cfg.prometheus_ip,
        cfg.prometheus_port);
  }
  return list;
}

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
  j["listeners"] = listeners_json(cfg);
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
