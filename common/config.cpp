#include "common/config.h"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace warren::common {

namespace {
std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

template <typename T>
T parse_uint(const std::string& key, const std::string& v, uint64_t max) {
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out > max) {
    throw ConfigError("invalid value '" + v + "' for " + key);
  }
  return static_cast<T>(out);
}

// RabbitMQ's byte sizes: "1000000", "500KB", "50MB", "2GB" (decimal), "1MiB", "2GiB" ...
uint64_t parse_bytes(const std::string& key, const std::string& v) {
  size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  if (i == 0) throw ConfigError("invalid value '" + v + "' for " + key);
  const uint64_t n = parse_uint<uint64_t>(key, v.substr(0, i), UINT64_MAX);
  std::string unit = v.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"", 1}, {"B", 1}, {"K", 1000}, {"KB", 1000}, {"M", 1000000}, {"MB", 1000000},
      {"G", 1000000000}, {"GB", 1000000000}, {"KIB", 1ull << 10}, {"MIB", 1ull << 20},
      {"GIB", 1ull << 30}, {"T", 1000000000000}, {"TB", 1000000000000}, {"TIB", 1ull << 40}};
  for (const auto& [name, mult] : kUnits) {
    if (unit != name) continue;
    if (n > UINT64_MAX / mult) throw ConfigError("value '" + v + "' for " + key + " is too large");
    return n * mult;
  }
  throw ConfigError("invalid value '" + v + "' for " + key);
}

// "5672", "127.0.0.1:5672" or "[::1]:5672": the address (empty when not given) and port.
std::pair<std::string, uint16_t> parse_listener(const std::string& key, const std::string& v) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos) return {"", parse_uint<uint16_t>(key, v, 65535)};
  std::string host = v.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    return {host, parse_uint<uint16_t>(key, v.substr(colon + 1), 65535)};
  } catch (const ConfigError&) {
    throw ConfigError("invalid value '" + v + "' for " + key);
  }
}

double parse_fraction(const std::string& key, const std::string& value, bool zero_ok) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (end == value.c_str() || *end != '\0' || v < 0 || (v == 0 && !zero_ok) || v > 1) {
    throw ConfigError("invalid value '" + value + "' for " + key + " (a number between 0 and 1)");
  }
  return v;
}

const char* const kLevels[] = {"debug", "info", "warning", "error", "critical", "none"};
std::string parse_level(const std::string& key, const std::string& value) {
  for (const char* l : kLevels)
    if (value == l) return value;
  throw ConfigError("invalid value '" + value + "' for " + key);
}

bool parse_bool(const std::string& key, const std::string& v) {
  if (v == "true") return true;
  if (v == "false") return false;
  throw ConfigError("invalid value '" + v + "' for " + key);
}

// ssl_options.* and management.ssl.* share their sub-keys. Returns false for an unknown one.
bool apply_tls(TlsOptions& t, const std::string& key, const std::string& sub,
               const std::string& value) {
  if (sub == "cacertfile") {
    t.cacertfile = value;
  } else if (sub == "certfile") {
    t.certfile = value;
  } else if (sub == "keyfile") {
    t.keyfile = value;
  } else if (sub == "verify") {
    if (value != "verify_peer" && value != "verify_none") {
      throw ConfigError("invalid value '" + value + "' for " + key);
    }
    t.verify_peer = value == "verify_peer";
  } else if (sub == "fail_if_no_peer_cert") {
    t.fail_if_no_peer_cert = parse_bool(key, value);
  } else if (sub.rfind("versions.", 0) == 0) {
    if (value != "tlsv1.2" && value != "tlsv1.3" && value != "tlsv1.1" && value != "tlsv1") {
      throw ConfigError("invalid value '" + value + "' for " + key);
    }
    t.versions.push_back(value);
  } else if (sub.rfind("ciphers.", 0) == 0) {
    t.ciphers.push_back(value);
  } else {
    return false;
  }
  return true;
}
}  // namespace

bool Config::apply(const std::string& key, const std::string& value) {
  if (key.rfind("listeners.tcp.", 0) == 0) {
    auto [host, port] = parse_listener(key, value);
    if (host.empty()) host = "0.0.0.0";
    // The same name again replaces its listener, as a later setting of a key does.
    const std::string name = key.substr(14);
    auto it = std::find(amqp_listener_names_.begin(), amqp_listener_names_.end(), name);
    if (it == amqp_listener_names_.end()) {
      amqp_listener_names_.push_back(name);
      amqp_listeners.emplace_back(host, port);
    } else {
      amqp_listeners[static_cast<size_t>(it - amqp_listener_names_.begin())] = {host, port};
    }
    bind_address = amqp_listeners.front().first;
    amqp_port = amqp_listeners.front().second;
  } else if (key.rfind("listeners.ssl.", 0) == 0) {
    auto [host, port] = parse_listener(key, value);
    amqps_port = port;
    if (!host.empty()) amqps_bind_address = host;
  } else if (key.rfind("ssl_options.", 0) == 0) {
    if (!apply_tls(ssl, key, key.substr(12), value)) return false;
  } else if (key == "management.ssl.port") {
    https_port = parse_uint<uint16_t>(key, value, 65535);
  } else if (key.rfind("management.ssl.", 0) == 0) {
    if (!apply_tls(management_ssl, key, key.substr(15), value)) return false;
  } else if (key.rfind("auth_mechanisms.", 0) == 0) {
    static const char* kKnown[] = {"PLAIN", "AMQPLAIN", "EXTERNAL"};
    bool ok = false;
    for (const char* k : kKnown) ok = ok || value == k;
    if (!ok) throw ConfigError("unsupported authentication mechanism '" + value + "' for " + key);
    if (!auth_mechanisms_set_) auth_mechanisms.clear();
    auth_mechanisms_set_ = true;
    auth_mechanisms.push_back(value);
  } else if (key == "ssl_cert_login_from") {
    if (value != "distinguished_name" && value != "common_name") {
      throw ConfigError("invalid value '" + value + "' for " + key);
    }
    ssl_cert_login_from = value;
  } else if (key == "heartbeat") {
    heartbeat = parse_uint<uint16_t>(key, value, 65535);
  } else if (key == "frame_max") {
    frame_max = parse_uint<uint32_t>(key, value, 0xFFFFFFFFu);
    if (frame_max != 0 && frame_max < 4096) throw ConfigError("frame_max must be at least 4096");
  } else if (key == "channel_max") {
    channel_max = parse_uint<uint16_t>(key, value, 65535);
  } else if (key == "handshake_timeout") {
    handshake_timeout_ms = parse_uint<uint32_t>(key, value, 0xFFFFFFFFu);
  } else if (key == "max_message_size") {
    max_message_size = parse_uint<uint64_t>(key, value, 536870912);
    if (max_message_size == 0) {
      throw ConfigError("invalid value '" + value + "' for " + key + " (between 1 and 536870912)");
    }
  } else if (key == "consumer_timeout") {
    consumer_timeout_ms = parse_uint<uint64_t>(key, value, UINT64_MAX);
    if (consumer_timeout_ms == 0) {
      throw ConfigError("invalid value '" + value + "' for " + key + " (at least 1 ms)");
    }
  } else if (key == "default_user") {
    default_user = value;
  } else if (key == "default_pass") {
    default_pass = value;
  } else if (key == "default_vhost") {
    default_vhost = value;
  } else if (key == "load_definitions" || key == "management.load_definitions") {
    load_definitions = value;
  } else if (key == "loopback_users") {
    if (value != "none") throw ConfigError("invalid value '" + value + "' for loopback_users");
    loopback_users_none_ = true;
  } else if (key.rfind("loopback_users.", 0) == 0) {
    // As RabbitMQ: the list is exactly the users set to true (guest only by default).
    const bool on = parse_bool(key, value);
    if (!loopback_users_set_) loopback_users.clear();
    loopback_users_set_ = true;
    std::erase(loopback_users, key.substr(15));
    if (on) loopback_users.push_back(key.substr(15));
  } else if (key.rfind("default_user_tags.", 0) == 0) {
    const bool on = parse_bool(key, value);
    if (!default_user_tags_set_) default_user_tags.clear();
    default_user_tags_set_ = true;
    std::erase(default_user_tags, key.substr(18));
    if (on) default_user_tags.push_back(key.substr(18));
  } else if (key == "default_permissions.configure") {
    default_permission_configure = value;
  } else if (key == "default_permissions.write") {
    default_permission_write = value;
  } else if (key == "default_permissions.read") {
    default_permission_read = value;
  } else if (key == "vm_memory_high_watermark.relative") {
    vm_memory_high_watermark_relative = parse_fraction(key, value, false);
    watermark_relative_set_ = true;
  } else if (key == "vm_memory_high_watermark.absolute") {
    vm_memory_high_watermark_absolute = parse_bytes(key, value);
  } else if (key == "vm_memory_high_watermark_paging_ratio") {
    vm_memory_high_watermark_paging_ratio = parse_fraction(key, value, false);
  } else if (key == "queue_memory_limit") {
    queue_memory_limit = parse_bytes(key, value);
  } else if (key == "store_backlog_limit") {
    store_backlog_limit = parse_bytes(key, value);
  } else if (key == "disk_free_limit.absolute") {
    disk_free_limit_absolute = parse_bytes(key, value);
  } else if (key == "management.tcp.port") {
    http_port = parse_uint<uint16_t>(key, value, 65535);
  } else if (key == "management.tcp.ip") {
    management_ip = value;
  } else if (key == "prometheus.tcp.port") {
    prometheus_port = parse_uint<uint16_t>(key, value, 65535);
  } else if (key == "prometheus.tcp.ip") {
    prometheus_ip = value;
  } else if (key == "collect_statistics_interval") {
    collect_statistics_interval_ms = parse_uint<uint64_t>(key, value, 86'400'000);
    if (collect_statistics_interval_ms < 100) {
      throw ConfigError("invalid value '" + value + "' for " + key + " (at least 100 ms)");
    }
  } else if (key == "log.level") {
    log_level = parse_level(key, value);
  } else if (key == "log.console") {
    log_console = parse_bool(key, value);
  } else if (key == "log.console.level") {
    log_console_level = parse_level(key, value);
  } else if (key == "log.file") {
    log_file = value == "false" ? "" : value;
  } else if (key == "log.file.level") {
    log_file_level = parse_level(key, value);
  } else if (key == "log.dir") {
    log_dir = value;
  } else {
    return false;
  }
  return true;
}

void Config::finish() {
  if (loopback_users_none_) loopback_users.clear();
  if (watermark_relative_set_) vm_memory_high_watermark_absolute = 0;
}

void load_config_text(const std::string& text, const std::string& origin, Config& cfg) {
  std::set<std::string> warned;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) {
      throw ConfigError(origin + ":" + std::to_string(lineno) + ": expected 'key = value'");
    }
    std::string key = trim(t.substr(0, eq));
    std::string value = trim(t.substr(eq + 1));
    // Inline comments are not part of rabbitmq.conf values, but a trailing "# ..." after
    // whitespace is common in hand-written files.
    if (size_t hash = value.find(" #"); hash != std::string::npos) value = trim(value.substr(0, hash));
    try {
      if (!cfg.apply(key, value) && warned.insert(key).second) {
        cfg.warnings.push_back(origin + ":" + std::to_string(lineno) + ": setting '" + key +
                               "' is not supported by Warren and is ignored");
      }
    } catch (const ConfigError& e) {
      throw ConfigError(origin + ":" + std::to_string(lineno) + ": " + e.what());
    }
  }
  cfg.finish();
}

void load_config_file(const std::string& path, Config& cfg) {
  std::ifstream f(path);
  if (!f) throw ConfigError(path + ": cannot read config file");
  std::stringstream ss;
  ss << f.rdbuf();
  load_config_text(ss.str(), path, cfg);
}

std::string default_data_dir() {
  if (const char* d = std::getenv("WARREN_DATA_DIR")) return d;
  if (geteuid() == 0) return "/var/lib/warren";
  if (const char* home = std::getenv("HOME")) return std::string(home) + "/.local/share/warren";
  return "warren-data";
}

}  // namespace warren::common
