// Configuration in rabbitmq.conf format (common/config.h).
// Concerns covered:
//  - defaults match RabbitMQ's (port 5672, heartbeat 60, frame_max 131072, channel_max
//    2047, max_message_size 128 MiB, guest/guest on "/", guest loopback-only);
//  - every supported key: listeners.tcp.* (port, host:port, [v6]:port), heartbeat,
//    frame_max, channel_max, handshake_timeout, max_message_size, consumer_timeout,
//    default_user/pass/vhost, loopback_users (none, per-user true/false),
//    management.tcp.port, log.level / log.console.level;
//  - comments, blank lines, whitespace, inline " # ..." comments;
//  - values that do not parse throw ConfigError naming FILE:LINE and the key;
//  - unknown keys are kept as warnings with FILE:LINE, and loading goes on;
//  - load_config_file reads a file and reports a missing one.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/config.h"

using namespace warren::common;

namespace {

Config load(const std::string& text) {
  Config c;
  load_config_text(text, "test.conf", c);
  return c;
}

std::string error_of(const std::string& text) {
  try {
    load(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("defaults follow RabbitMQ") {
  Config c;
  CHECK(c.amqp_port == 5672);
  CHECK(c.http_port == 15672);
  CHECK(c.heartbeat == 60);
  CHECK(c.frame_max == 131072);
  CHECK(c.channel_max == 2047);
  CHECK(c.max_message_size == 134217728);
  CHECK(c.default_user == "guest");
  CHECK(c.default_pass == "guest");
  CHECK(c.default_vhost == "/");
  CHECK(c.loopback_users == std::vector<std::string>{"guest"});
  CHECK(c.warnings.empty());
}

TEST_CASE("every supported key") {
  const Config c = load(R"(# Warren test configuration
listeners.tcp.default = 5673
heartbeat = 30
frame_max = 8192
channel_max = 100
handshake_timeout = 5000
max_message_size = 1048576
consumer_timeout = 900000
default_user = admin
default_pass = p4ss word
default_vhost = /prod
management.tcp.port = 15673
log.level = debug
)");
  CHECK(c.amqp_port == 5673);
  CHECK(c.heartbeat == 30);
  CHECK(c.frame_max == 8192);
  CHECK(c.channel_max == 100);
  CHECK(c.handshake_timeout_ms == 5000);
  CHECK(c.max_message_size == 1048576);
  CHECK(c.consumer_timeout_ms == 900000);
  CHECK(c.default_user == "admin");
  CHECK(c.default_pass == "p4ss word");
  CHECK(c.default_vhost == "/prod");
  CHECK(c.http_port == 15673);
  CHECK(c.log_level == "debug");
  CHECK(c.warnings.empty());
}

TEST_CASE("listeners: port, host:port and bracketed IPv6") {
  Config a = load("listeners.tcp.default = 127.0.0.1:5680\n");
  CHECK(a.bind_address == "127.0.0.1");
  CHECK(a.amqp_port == 5680);
  Config b = load("listeners.tcp.1 = [::1]:5681\n");
  CHECK(b.bind_address == "::1");
  CHECK(b.amqp_port == 5681);
  Config c = load("listeners.tcp.local = 5682\n");
  CHECK(c.bind_address == "0.0.0.0");
  CHECK(c.amqp_port == 5682);
  CHECK(error_of("listeners.tcp.default = 70000\n").find("test.conf:1:") == 0);
  CHECK_FALSE(error_of("listeners.tcp.default = 127.0.0.1:\n").empty());
  // Every listeners.tcp.NAME is a listener; the first is also bind_address:amqp_port.
  Config two = load("listeners.tcp.a = 127.0.0.1:5690\nlisteners.tcp.b = 5691\n");
  CHECK(two.amqp_listeners ==
        std::vector<std::pair<std::string, uint16_t>>{{"127.0.0.1", 5690}, {"0.0.0.0", 5691}});
  CHECK(two.amqp_port == 5690);
  CHECK(error_of("listeners.ssl.default = 127.0.0.1:x\n").find("listeners.ssl.default") !=
        std::string::npos);
}

TEST_CASE("loopback_users") {
  CHECK(load("loopback_users = none\n").loopback_users.empty());
  Config c = load("loopback_users.guest = false\nloopback_users.alice = true\n");
  CHECK(c.loopback_users == std::vector<std::string>{"alice"});
  // As RabbitMQ: the list is exactly the users set to true; none wins.
  CHECK(load("loopback_users.bob = true\n").loopback_users == std::vector<std::string>{"bob"});
  CHECK(load("loopback_users.bob = true\nloopback_users = none\n").loopback_users.empty());
  CHECK_FALSE(error_of("loopback_users = guest\n").empty());
  CHECK_FALSE(error_of("loopback_users.bob = yes\n").empty());
}

TEST_CASE("log levels") {
  for (const char* l : {"debug", "info", "warning", "error", "critical", "none"}) {
    CHECK(load(std::string("log.level = ") + l + "\n").log_level == l);
    CHECK(load(std::string("log.console.level = ") + l + "\n").log_console_level == l);
    CHECK(load(std::string("log.file.level = ") + l + "\n").log_file_level == l);
  }
  const Config c = load("log.file = warren.log\nlog.dir = /var/log/warren\nlog.console = false\n");
  CHECK(c.log_file == "warren.log");
  CHECK(c.log_dir == "/var/log/warren");
  CHECK_FALSE(c.log_console);
  CHECK(load("log.file = false\n").log_file.empty());
  CHECK_FALSE(error_of("log.console = maybe\n").empty());
  CHECK(error_of("log.level = verbose\n").find("test.conf:1: ") == 0);
}

TEST_CASE("comments, blank lines, whitespace and inline comments") {
  const Config c = load("\n   # indented comment\n\t\nheartbeat=15\n  channel_max   =   9   \r\n"
                        "frame_max = 4096 # the minimum\n");
  CHECK(c.heartbeat == 15);
  CHECK(c.channel_max == 9);
  CHECK(c.frame_max == 4096);
  CHECK(c.warnings.empty());
}

TEST_CASE("bad values name the file, line and key") {
  SUBCASE("not a number") {
    const std::string e = error_of("heartbeat = 10\n\nheartbeat = ten\n");
    CHECK(e.find("test.conf:3: ") == 0);
    CHECK(e.find("heartbeat") != std::string::npos);
    CHECK(e.find("'ten'") != std::string::npos);
  }
  SUBCASE("out of range") {
    CHECK(error_of("heartbeat = 65536\n").find("test.conf:1: ") == 0);
    CHECK(error_of("channel_max = -1\n").find("test.conf:1: ") == 0);
    CHECK(error_of("max_message_size = 536870913\n").find("test.conf:1: ") == 0);
    CHECK(error_of("max_message_size = 536870912\n").empty());
  }
  SUBCASE("frame_max below the 4096 minimum (0 means unlimited)") {
    CHECK(error_of("frame_max = 4095\n").find("test.conf:1: ") == 0);
    CHECK(load("frame_max = 0\n").frame_max == 0);
  }
  SUBCASE("trailing garbage") {
    CHECK_FALSE(error_of("heartbeat = 10s\n").empty());
    CHECK_FALSE(error_of("heartbeat = 1 0\n").empty());
  }
  SUBCASE("a line without '='") {
    const std::string e = error_of("heartbeat = 10\nthis is not a setting\n");
    CHECK(e.find("test.conf:2: ") == 0);
    CHECK(e.find("key = value") != std::string::npos);
  }
}

TEST_CASE("unknown keys become warnings and loading goes on") {
  const Config c = load("cluster_formation.peer_discovery_backend = classic_config\n"
                        "heartbeat = 20\n"
                        "cluster_name = prod\n"
                        "cluster_formation.peer_discovery_backend = other\n");
  CHECK(c.heartbeat == 20);
  // Once per key, at its first line.
  REQUIRE(c.warnings.size() == 2);
  CHECK(c.warnings[0].find("test.conf:1: ") == 0);
  CHECK(c.warnings[0].find("cluster_formation.peer_discovery_backend") != std::string::npos);
  CHECK(c.warnings[1].find("test.conf:3: ") == 0);
  CHECK(c.warnings[1].find("cluster_name") != std::string::npos);
}

TEST_CASE("resource alarm keys with RabbitMQ's size units") {
  const Config c = load("vm_memory_high_watermark.absolute = 2GiB\n"
                        "disk_free_limit.absolute = 500MB\n");
  CHECK(c.vm_memory_high_watermark_absolute == (2ull << 30));
  // As in RabbitMQ, a relative watermark wins over an absolute one.
  const Config both = load("vm_memory_high_watermark.relative = 0.4\n"
                           "vm_memory_high_watermark.absolute = 2GiB\n");
  CHECK(both.vm_memory_high_watermark_relative == doctest::Approx(0.4));
  CHECK(both.vm_memory_high_watermark_absolute == 0);
  CHECK(c.disk_free_limit_absolute == 500'000'000ull);
  CHECK(load("disk_free_limit.absolute = 1000\n").disk_free_limit_absolute == 1000);
  CHECK(load("disk_free_limit.absolute = 3kb\n").disk_free_limit_absolute == 3000);
  CHECK(c.warnings.empty());
  CHECK_FALSE(error_of("vm_memory_high_watermark.relative = 1.5\n").empty());
  CHECK_FALSE(error_of("vm_memory_high_watermark.relative = lots\n").empty());
  CHECK_FALSE(error_of("disk_free_limit.absolute = 5XB\n").empty());
  CHECK_FALSE(error_of("disk_free_limit.absolute = 99999999999999999999GB\n").empty());
}

TEST_CASE("paging and flow control keys") {
  Config d;
  CHECK(d.vm_memory_high_watermark_paging_ratio == doctest::Approx(0.5));
  CHECK(d.queue_memory_limit == (64ull << 20));
  CHECK(d.store_backlog_limit == (64ull << 20));
  Config c = load("vm_memory_high_watermark_paging_ratio = 0.75\n"
                  "queue_memory_limit = 8MiB\n"
                  "store_backlog_limit = 1MB\n");
  CHECK(c.vm_memory_high_watermark_paging_ratio == doctest::Approx(0.75));
  CHECK(c.queue_memory_limit == (8ull << 20));
  CHECK(c.store_backlog_limit == 1'000'000ull);
  CHECK(c.warnings.empty());
  CHECK_FALSE(error_of("vm_memory_high_watermark_paging_ratio = lots\n").empty());
  CHECK_FALSE(error_of("queue_memory_limit = -1\n").empty());
}

TEST_CASE("TLS listener, ssl_options, management.ssl and SASL mechanism keys") {
  Config d;
  CHECK(d.amqps_port == 0);
  CHECK(d.auth_mechanisms == std::vector<std::string>{"PLAIN", "AMQPLAIN"});
  CHECK(d.ssl_cert_login_from == "distinguished_name");
  Config c = load("listeners.ssl.default = 127.0.0.1:5671\n"
                  "ssl_options.cacertfile = /etc/ca.pem\n"
                  "ssl_options.certfile = /etc/server.pem\n"
                  "ssl_options.keyfile = /etc/server.key\n"
                  "ssl_options.verify = verify_peer\n"
                  "ssl_options.fail_if_no_peer_cert = true\n"
                  "ssl_options.versions.1 = tlsv1.3\n"
                  "ssl_options.ciphers.1 = TLS_AES_256_GCM_SHA384\n"
                  "management.ssl.port = 15671\n"
                  "management.ssl.certfile = /etc/m.pem\n"
                  "auth_mechanisms.1 = EXTERNAL\n"
                  "auth_mechanisms.2 = PLAIN\n"
                  "ssl_cert_login_from = common_name\n");
  CHECK(c.warnings.empty());
  CHECK(c.amqps_port == 5671);
  CHECK(c.amqps_bind_address == "127.0.0.1");
  CHECK(c.ssl.cacertfile == "/etc/ca.pem");
  CHECK(c.ssl.certfile == "/etc/server.pem");
  CHECK(c.ssl.keyfile == "/etc/server.key");
  CHECK(c.ssl.verify_peer);
  CHECK(c.ssl.fail_if_no_peer_cert);
  CHECK(c.ssl.versions == std::vector<std::string>{"tlsv1.3"});
  CHECK(c.ssl.ciphers == std::vector<std::string>{"TLS_AES_256_GCM_SHA384"});
  CHECK(c.https_port == 15671);
  CHECK(c.management_ssl.certfile == "/etc/m.pem");
  CHECK(c.auth_mechanisms == std::vector<std::string>{"EXTERNAL", "PLAIN"});
  CHECK(c.ssl_cert_login_from == "common_name");
  CHECK(load("listeners.ssl.default = 5671\n").amqps_bind_address.empty());
  CHECK_FALSE(error_of("ssl_options.verify = maybe\n").empty());
  CHECK_FALSE(error_of("ssl_options.versions.1 = sslv3\n").empty());
  CHECK_FALSE(error_of("auth_mechanisms.1 = KERBEROS\n").empty());
  CHECK_FALSE(error_of("ssl_cert_login_from = email\n").empty());
  CHECK_FALSE(load("ssl_options.unknown_thing = 1\n").warnings.empty());
}

TEST_CASE("load_config_file") {
  const std::string path = "/tmp/warren-config-test-" + std::to_string(::getpid()) + ".conf";
  {
    std::ofstream f(path);
    f << "heartbeat = 7\nnot_a_key = 1\n";
  }
  Config c;
  load_config_file(path, c);
  CHECK(c.heartbeat == 7);
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].find(path + ":2: ") == 0);
  {
    std::ofstream f(path);
    f << "heartbeat = 7\nframe_max = tiny\n";
  }
  Config d;
  try {
    load_config_file(path, d);
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find(path + ":2: ") == 0);
  }
  std::remove(path.c_str());

  Config e;
  try {
    load_config_file("/nonexistent/warren.conf", e);
    FAIL("expected ConfigError");
  } catch (const ConfigError& err) {
    CHECK(std::string(err.what()).find("/nonexistent/warren.conf") == 0);
  }
}
