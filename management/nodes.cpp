// GET /api/nodes and /api/nodes/{name}: this node (Warren does not cluster) with RabbitMQ's
// fields for memory, disk, file descriptors, uptime and alarms. Monitoring and administrator
// users only, as in RabbitMQ.
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>

#include "broker/broker.h"
#include "management/api.h"

namespace warren::management {

namespace {
size_t open_fds() {
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

Json node_json(broker::Broker& b) {
  const auto& cfg = b.config();
  rlimit fd_limit{};
  getrlimit(RLIMIT_NOFILE, &fd_limit);
  Json j;
  j["name"] = node_name();
  j["type"] = "disc";
  j["running"] = true;
  j["being_drained"] = false;
  j["os_pid"] = std::to_string(getpid());
  j["processors"] = sysconf(_SC_NPROCESSORS_ONLN);
  j["uptime"] = now_ms_since(b.started_at_ms());
  j["rates_mode"] = "basic";
  j["mem_used"] = b.mem_used();
  j["mem_limit"] = b.mem_limit();
  j["mem_alarm"] = b.memory_alarm();
  j["mem_calculation_strategy"] = "rss";
  j["disk_free"] = b.disk_free();
  j["disk_free_limit"] = cfg.disk_free_limit_absolute;
  j["disk_free_alarm"] = b.disk_alarm();
  j["fd_used"] = open_fds();
  j["fd_total"] = fd_limit.rlim_cur;
  j["sockets_used"] = b.connections().size();
  j["sockets_total"] = fd_limit.rlim_cur;
  j["proc_used"] = 1;
  j["proc_total"] = 1;
  j["run_queue"] = 0;
  j["partitions"] = Json::array();
  j["net_ticktime"] = 60;
  j["enabled_plugins"] = Json::array({"rabbitmq_management", "rabbitmq_prometheus"});
  j["applications"] = Json::array(
      {{{"name", "warren"}, {"description", "Warren AMQP 0-9-1 broker"}, {"version", "0.1.0"}}});
  j["listeners"] = listeners_json(cfg);
  j["config_files"] = Json::array();
  j["log_files"] = Json::array();
  j["db_dir"] = cfg.data_dir;
  j["cluster_links"] = Json::array();
  return j;
}
}  // namespace

int64_t now_ms_since(int64_t start_ms) { return broker::now_ms() - start_ms; }

Response handle_nodes(Context& c, const Request& r) {
  if (r.method != Method::kGet) return method_not_allowed();
  if (!is_monitor(c.user)) return not_authorised("Not monitor user");
  if (r.path.size() == 1) return list_response(r, Json::array({node_json(c.broker)}));
  if (r.path.size() == 2) {
    if (r.path[1] != node_name()) return not_found();
    return json_response(node_json(c.broker));
  }
  return not_found();
}

}  // namespace warren::management
