// GET /metrics and /metrics/per-object: the Prometheus text exposition format (0.0.4) with
// RabbitMQ's prometheus plugin's metric names. /metrics aggregates the queue metrics over
// all queues, as RabbitMQ does by default; /metrics/per-object labels them with vhost and
// queue. No authentication, as RabbitMQ's endpoint.
#include <string>

#include "broker/broker.h"
#include "broker/channel.h"
#include "broker/connection.h"
#include "management/api.h"

namespace warren::management {

namespace {
std::string escape_label(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '\\') out += "\\\\";
    else if (ch == '"') out += "\\\"";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

class Writer {
 public:
  // One metric family: its TYPE and HELP lines, then `samples` (label text, value).
  void family(const char* name, const char* type, const char* help,
              const std::vector<std::pair<std::string, uint64_t>>& samples) {
    out_ += std::string("# TYPE ") + name + " " + type + "\n";
    out_ += std::string("# HELP ") + name + " " + help + "\n";
    for (const auto& [labels, value] : samples) {
      out_ += name;
      if (!labels.empty()) out_ += "{" + labels + "}";
      out_ += " " + std::to_string(value) + "\n";
    }
  }
  void gauge(const char* name, const char* help, uint64_t value) {
    family(name, "gauge", help, {{"", value}});
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

struct QueueMetric {
  const char* name;
  const char* help;
  uint64_t (*value)(const broker::Queue&);
};

const QueueMetric kQueueMetrics[] = {
    {"rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers",
     [](const broker::Queue& q) -> uint64_t { return q.ready_count(); }},
    {"rabbitmq_queue_messages_unacked",
     "Messages delivered to consumers but not yet acknowledged",
     [](const broker::Queue& q) -> uint64_t { return q.unacked_count(); }},
    {"rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth",
     [](const broker::Queue& q) -> uint64_t { return q.ready_count() + q.unacked_count(); }},
    {"rabbitmq_queue_consumers", "Consumers on a queue",
     [](const broker::Queue& q) -> uint64_t { return q.consumer_count(); }},
    {"rabbitmq_queue_messages_ready_bytes", "Size in bytes of ready messages",
     [](const broker::Queue& q) -> uint64_t { return q.ready_bytes(); }},
    {"rabbitmq_queue_messages_paged_out", "Messages paged out to disk",
     [](const broker::Queue& q) -> uint64_t { return q.paged_count(); }},
};
}  // namespace

Response handle_metrics(broker::Broker& b, bool per_object) {
  size_t connections = 0, channels = 0, queues = 0, consumers = 0;
  for (broker::Connection* conn : b.connections()) {
    if (conn->state() != broker::Connection::State::kOpen) continue;
    ++connections;
    channels += conn->channels().size();
  }
  for (const auto& [name, v] : b.vhosts()) {
    queues += v->queues().size();
    for (const auto& [qn, q] : v->queues()) consumers += q->consumer_count();
  }
  Writer w;
  w.family("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info",
           {{"rabbitmq_version=\"3.13.7\",product=\"Warren\"", 1}});
  w.family("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info",
           {{"rabbitmq_node=\"" + escape_label(node_name()) + "\",rabbitmq_cluster=\"" +
                 escape_label(node_name()) + "\"",
             1}});
  w.gauge("rabbitmq_connections", "Connections currently open", connections);
  w.gauge("rabbitmq_channels", "Channels currently open", channels);
  w.gauge("rabbitmq_consumers", "Consumers currently connected", consumers);
  w.gauge("rabbitmq_queues", "Queues available", queues);
  w.family("rabbitmq_alarms_memory_used_watermark", "untyped",
           "is 1 if VM memory watermark alarm is in effect", {{"", b.memory_alarm() ? 1 : 0}});
  w.family("rabbitmq_alarms_free_disk_space_watermark", "untyped",
           "is 1 if free disk space watermark alarm is in effect", {{"", b.disk_alarm() ? 1 : 0}});
  // Counters since start (RabbitMQ's rabbitmq_global_* and churn families).
  using S = broker::MessageStats;
  const S& st = b.stats();
  auto counter = [&](const char* name, const char* help, uint64_t value) {
    w.family(name, "counter", help, {{"", value}});
  };
  const auto& churn = b.churn();
  counter("rabbitmq_connections_opened_total", "Total number of connections opened",
          churn.connections_opened);
  counter("rabbitmq_connections_closed_total", "Total number of connections closed or terminated",
          churn.connections_closed);
  counter("rabbitmq_channels_opened_total", "Total number of channels opened",
          churn.channels_opened);
  counter("rabbitmq_channels_closed_total", "Total number of channels closed",
          churn.channels_closed);
  counter("rabbitmq_queues_created_total", "Total number of queues created", churn.queues_created);
  counter("rabbitmq_queues_deleted_total", "Total number of queues deleted", churn.queues_deleted);
  counter("rabbitmq_global_messages_received_total",
          "Total number of messages received from publishers", st.total(S::kPublish));
  counter("rabbitmq_global_messages_confirmed_total",
          "Total number of messages confirmed to publishers", st.total(S::kConfirm));
  counter("rabbitmq_global_messages_routed_total",
          "Total number of messages routed to queues or streams",
          st.total(S::kPublish) - st.total(S::kDropUnroutable) - st.total(S::kReturnUnroutable));
  counter("rabbitmq_global_messages_unroutable_dropped_total",
          "Total number of messages published as non-mandatory into an exchange and dropped as "
          "unroutable",
          st.total(S::kDropUnroutable));
  counter("rabbitmq_global_messages_unroutable_returned_total",
          "Total number of messages published as mandatory into an exchange and returned to the "
          "publisher as unroutable",
          st.total(S::kReturnUnroutable));
  counter("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers",
          st.deliver_get());
  counter("rabbitmq_global_messages_delivered_consume_manual_ack_total",
          "Total number of messages delivered to consumers using basic.consume with manual "
          "acknowledgment",
          st.total(S::kDeliver));
  counter("rabbitmq_global_messages_delivered_consume_auto_ack_total",
          "Total number of messages delivered to consumers using basic.consume with automatic "
          "acknowledgment",
          st.total(S::kDeliverNoAck));
  counter("rabbitmq_global_messages_delivered_get_manual_ack_total",
          "Total number of messages delivered to consumers using basic.get with manual "
          "acknowledgment",
          st.total(S::kGet));
  counter("rabbitmq_global_messages_delivered_get_auto_ack_total",
          "Total number of messages delivered to consumers using basic.get with automatic "
          "acknowledgment",
          st.total(S::kGetNoAck));
  counter("rabbitmq_global_messages_get_empty_total",
          "Total number of times basic.get operations fetched no message", st.total(S::kGetEmpty));
  counter("rabbitmq_global_messages_redelivered_total",
          "Total number of messages redelivered to consumers", st.total(S::kRedeliver));
  counter("rabbitmq_global_messages_acknowledged_total",
          "Total number of messages acknowledged by consumers", st.total(S::kAck));
  for (const QueueMetric& m : kQueueMetrics) {
    std::vector<std::pair<std::string, uint64_t>> samples;
    uint64_t total = 0;
    for (const auto& [vname, v] : b.vhosts()) {
      for (const auto& [qn, q] : v->queues()) {
        const uint64_t value = m.value(*q);
        total += value;
        if (per_object) {
          samples.emplace_back("vhost=\"" + escape_label(vname) + "\",queue=\"" +
                                   escape_label(qn) + "\"",
                               value);
        }
      }
    }
    if (!per_object) samples.emplace_back("", total);
    w.family(m.name, "gauge", m.help, samples);
  }
  Response r;
  r.body = w.take();
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return r;
}

}  // namespace warren::management
