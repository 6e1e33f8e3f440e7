// /api/connections, /api/connections/{name} (GET, DELETE = close with 320
// CONNECTION_FORCED and the X-Reason header's text) and /api/connections/{name}/channels.
// Monitoring and administrator users see every connection, others their own.
#include <chrono>

#include "broker/broker.h"
#include "broker/channel.h"
#include "broker/connection.h"
#include "management/api.h"

namespace warren::management {

namespace {
std::pair<std::string, int> split_host_port(const std::string& s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return {s, 0};
  return {s.substr(0, colon), std::atoi(s.c_str() + colon + 1)};
}

bool visible(Context& c, broker::Connection& conn) {
  return conn.state() == broker::Connection::State::kOpen &&
         (is_monitor(c.user) || conn.user() == c.user.name);
}

broker::Connection* find_connection(Context& c, const std::string& name) {
  for (broker::Connection* conn : c.broker.connections())
    if (visible(c, *conn) && conn->name() == name) return conn;
  return nullptr;
}
}  // namespace

Json connection_json(broker::Connection& conn) {
  auto [peer_host, peer_port] = split_host_port(conn.peer());
  auto [host, port] = split_host_port(conn.local());
  Json j;
  j["name"] = conn.name();
  j["node"] = node_name();
  j["user"] = conn.user();
  j["vhost"] = conn.vhost() ? conn.vhost()->name() : "";
  j["host"] = host;
  j["port"] = port;
  j["peer_host"] = peer_host;
  j["peer_port"] = peer_port;
  j["channels"] = conn.channels().size();
  j["channel_max"] = conn.channel_max();
  j["frame_max"] = conn.frame_max();
  j["timeout"] = conn.heartbeat();
  j["state"] = conn.blocked() ? "blocked" : "running";
  j["protocol"] = "AMQP 0-9-1";
  j["auth_mechanism"] = conn.auth_mechanism();
  j["client_properties"] = table_to_json(conn.client_properties());
  j["connected_at"] = conn.connected_at();
  j["ssl"] = false;
  j["type"] = "network";
  add_with_rate(j, "recv_oct", conn.recv_oct().total, conn.recv_oct().rate);
  add_with_rate(j, "send_oct", conn.send_oct().total, conn.send_oct().rate);
  j["recv_cnt"] = conn.recv_cnt();
  j["send_cnt"] = conn.send_cnt();
  j["user_who_performed_action"] = conn.user();
  return j;
}

Json channel_details(broker::Channel& ch) {
  broker::Connection& conn = ch.connection();
  auto [peer_host, peer_port] = split_host_port(conn.peer());
  return Json{{"connection_name", conn.name()},
              {"name", conn.name() + " (" + std::to_string(ch.id()) + ")"},
              {"node", node_name()},
              {"number", ch.id()},
              {"peer_host", peer_host},
              {"peer_port", peer_port},
              {"user", conn.user()}};
}

Json channel_json(broker::Channel& ch) {
  broker::Connection& conn = ch.connection();
  auto [peer_host, peer_port] = split_host_port(conn.peer());
  Json j;
  j["name"] = conn.name() + " (" + std::to_string(ch.id()) + ")";
  j["node"] = node_name();
  j["number"] = ch.id();
  j["user"] = conn.user();
  j["vhost"] = conn.vhost() ? conn.vhost()->name() : "";
  j["connection_details"] = {{"name", conn.name()}, {"peer_host", peer_host}, {"peer_port", peer_port}};
  j["consumer_count"] = ch.consumers().size();
  j["messages_unacknowledged"] = ch.unacked_count();
  j["prefetch_count"] = ch.consumer_prefetch();
  j["global_prefetch_count"] = ch.channel_prefetch();
  j["confirm"] = ch.confirm_mode();
  j["transactional"] = ch.tx_mode();
  j["state"] = ch.state() == broker::Channel::State::kOpen ? "running" : "closing";
  j["message_stats"] = message_stats_json(ch.stats(), StatsOf::kChannel);
  j["user_who_performed_action"] = conn.user();
  return j;
}

Response handle_connections(Context& c, const Request& r) {
  if (r.path.size() == 1) {
    if (r.method != Method::kGet) return method_not_allowed();
    Json list = Json::array();
    for (broker::Connection* conn : c.broker.connections())
      if (visible(c, *conn)) list.push_back(connection_json(*conn));
    return list_response(r, std::move(list));
  }
  broker::Connection* conn = find_connection(c, r.path[1]);
  if (r.path.size() == 3 && r.path[2] == "channels") {
    if (r.method != Method::kGet) return method_not_allowed();
    if (!conn) return not_found();
    Json list = Json::array();
    for (const auto& [id, ch] : conn->channels()) list.push_back(channel_json(*ch));
    return list_response(r, std::move(list));
  }
  if (r.path.size() != 2) return not_found();
  switch (r.method) {
    case Method::kGet:
      if (!conn) return not_found();
      return json_response(connection_json(*conn));
    case Method::kDelete: {
      if (!conn) return not_found();
      const std::string reason =
          r.reason_header.empty() ? "Closed via management plugin" : r.reason_header;
      c.broker.close_connections_if([conn](broker::Connection& x) { return &x == conn; }, reason);
      return no_content();
    }
    default:
      return method_not_allowed();
  }
}

Response handle_channels(Context& c, const Request& r) {
  if (r.method != Method::kGet) return method_not_allowed();
  Json list = Json::array();
  for (broker::Connection* conn : c.broker.connections()) {
    if (!visible(c, *conn)) continue;
    for (const auto& [id, ch] : conn->channels()) {
      Json j = channel_json(*ch);
      if (r.path.size() == 1) {
        list.push_back(std::move(j));
      } else if (r.path.size() == 2 && j["name"] == r.path[1]) {
        return json_response(j);
      }
    }
  }
  if (r.path.size() != 1) return not_found();
  return list_response(r, std::move(list));
}

Response handle_consumers(Context& c, const Request& r) {
  if (r.method != Method::kGet) return method_not_allowed();
  if (r.path.size() > 2) return not_found();
  if (r.path.size() == 2 && !c.broker.find_vhost(r.path[1])) return not_found();
  Json list = Json::array();
  for (broker::Connection* conn : c.broker.connections()) {
    if (!visible(c, *conn) || !conn->vhost()) continue;
    const std::string& vhost = conn->vhost()->name();
    if (r.path.size() == 2 && vhost != r.path[1]) continue;
    for (const auto& [id, ch] : conn->channels()) {
      for (const auto& [tag, consumer] : ch->consumers()) {
        Json j;
        j["arguments"] = table_to_json(consumer->arguments);
        j["ack_required"] = !consumer->no_ack;
        j["active"] = true;
        j["activity_status"] = "up";
        j["channel_details"] = channel_details(*ch);
        j["consumer_tag"] = tag;
        j["exclusive"] = consumer->exclusive;
        j["prefetch_count"] = consumer->prefetch;
        j["queue"] = {{"name", consumer->queue->name()}, {"vhost", vhost}};
        list.push_back(std::move(j));
      }
    }
  }
  return list_response(r, std::move(list));
}

}  // namespace warren::management
