// Config: the broker's settings, read from RabbitMQ's rabbitmq.conf format and flags.
//
// Built once at start on the main thread, then read-only. Keys follow rabbitmq.conf
// (`listeners.tcp.default`, `heartbeat`, `frame_max`, ...). Unknown keys are warned about
// once; values that do not parse are refused with the key and line number.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace warren::common {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// TLS settings of one listener (rabbitmq.conf's ssl_options.* / management.ssl.*).
struct TlsOptions {
  std::string cacertfile;
  std::string certfile;
  std::string keyfile;
  bool verify_peer = false;           // ssl_options.verify = verify_peer | verify_none
  bool fail_if_no_peer_cert = false;  // with verify_peer: refuse clients without one
  std::vector<std::string> versions;  // 'tlsv1.2', 'tlsv1.3'; empty = both
  std::vector<std::string> ciphers;   // OpenSSL names; empty = OpenSSL's defaults
};

struct Config {
  std::string bind_address = "0.0.0.0";
  uint16_t amqp_port = 5672;
  uint16_t http_port = 15672;
  // AMQPS (listeners.ssl.default); 0 = off. Uses bind_address unless the key names a host.
  uint16_t amqps_port = 0;
  std::string amqps_bind_address;
  TlsOptions ssl;
  // HTTPS for the management listener (management.ssl.*); 0 = off.
  uint16_t https_port = 0;
  // prometheus.tcp.port: a listener serving only /metrics (RabbitMQ's 15692); 0 = off.
  uint16_t prometheus_port = 0;
  TlsOptions management_ssl;
  // SASL mechanisms offered, in order (auth_mechanisms.N); EXTERNAL only on TLS connections
  // with a client certificate.
  std::vector<std::string> auth_mechanisms = {"PLAIN", "AMQPLAIN"};
  // EXTERNAL's user name: the certificate subject's "distinguished_name" (RFC 4514, as
  // RabbitMQ prints it) or its "common_name".
  std::string ssl_cert_login_from = "distinguished_name";
  std::string data_dir;  // empty: default_data_dir()
  uint16_t heartbeat = 60;
  uint32_t frame_max = 131072;
  uint16_t channel_max = 2047;
  uint32_t handshake_timeout_ms = 10000;
  uint64_t max_message_size = 134217728;
  uint64_t consumer_timeout_ms = 1800000;
  // How often message rates are sampled (RabbitMQ's collect_statistics_interval, ms).
  uint64_t collect_statistics_interval_ms = 5000;
  std::string default_user = "guest";
  std::string default_pass = "guest";
  std::string default_vhost = "/";
  std::vector<std::string> loopback_users = {"guest"};
  std::string log_level = "info";
  // Logging destinations (RabbitMQ's log.console, log.console.level, log.file,
  // log.file.level, log.dir). A relative log.file is under log.dir (default: the data
  // directory); an empty log.file means no file. An empty level is log_level.
  bool log_console = true;
  std::string log_console_level;
  std::string log_file;
  std::string log_file_level;
  std::string log_dir;
  // Every AMQP listener (listeners.tcp.NAME, in file order); the first is also
  // bind_address:amqp_port. Empty: just bind_address:amqp_port.
  std::vector<std::pair<std::string, uint16_t>> amqp_listeners;
  std::vector<std::string> amqp_listener_names_;
  // Addresses of the management and Prometheus listeners (management.tcp.ip,
  // prometheus.tcp.ip); empty: bind_address.
  std::string management_ip;
  std::string prometheus_ip;
  // The tags and permissions of default_user when it is created (default_user_tags.TAG,
  // default_permissions.configure/write/read).
  std::vector<std::string> default_user_tags = {"administrator"};
  std::string default_permission_configure = ".*";
  std::string default_permission_write = ".*";
  std::string default_permission_read = ".*";
  // A definitions file (RabbitMQ's JSON) imported at every start; "" = none.
  // rabbitmq.conf's load_definitions (and the older management.load_definitions).
  std::string load_definitions;
  // Resource alarms (RabbitMQ's names). Memory: a fraction of RAM, or an absolute byte
  // count when set; disk: free bytes under the data directory below which publishers block.
  double vm_memory_high_watermark_relative = 0.6;
  uint64_t vm_memory_high_watermark_absolute = 0;  // 0 = use the relative value
  uint64_t disk_free_limit_absolute = 50'000'000;
  // Above this fraction of the memory watermark, queues page their messages out.
  double vm_memory_high_watermark_paging_ratio = 0.5;
  // Bytes of ready message bodies a queue keeps in memory before it pages the rest out to
  // the store (Warren's own key; x-queue-mode=lazy makes it 0 for one queue).
  uint64_t queue_memory_limit = 64ull << 20;
  // Bytes of messages waiting for the store's writer above which publishers are paused
  // (flow control; Warren's own key).
  uint64_t store_backlog_limit = 64ull << 20;
  std::vector<std::string> warnings;  // ignored keys, one line each
  bool auth_mechanisms_set_ = false;  // the first auth_mechanisms.N replaces the defaults
  bool loopback_users_set_ = false;   // the first loopback_users.NAME replaces the default
  bool loopback_users_none_ = false;  // loopback_users = none wins over any list
  bool default_user_tags_set_ = false;
  bool watermark_relative_set_ = false;  // as RabbitMQ, a relative watermark wins

  // Settles what depends on several keys (call after the last apply()).
  void finish();

  // Applies one `key = value` setting. Returns false for a key Warren does not know.
  // Throws ConfigError for a value that does not parse.
  bool apply(const std::string& key, const std::string& value);
};

// Reads a rabbitmq.conf file into `cfg`. Throws ConfigError("FILE:LINE: ...").
void load_config_file(const std::string& path, Config& cfg);
// Parses rabbitmq.conf text (for tests). `origin` names it in errors.
void load_config_text(const std::string& text, const std::string& origin, Config& cfg);

// /var/lib/warren for root, else $HOME/.local/share/warren (or ./warren-data).
std::string default_data_dir();

}  // namespace warren::common
