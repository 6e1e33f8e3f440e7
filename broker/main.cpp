// warren: the broker executable. Parses flags and rabbitmq.conf, starts the AMQP listener,
// and shuts down cleanly on SIGINT/SIGTERM (connections closed with 320 CONNECTION_FORCED).
#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>

#include "auth/tls_context.h"
#include "broker/broker.h"
#include "broker/server.h"
#include "common/config.h"
#include "common/log.h"
#include "management/api.h"
#include "management/http_server.h"
#include "persistence/store.h"

namespace po = boost::program_options;
using namespace warren;

namespace {
// Many idle connections are normal for a broker: lift the soft open-file limit to the hard one.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}
}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("Usage: warren [options]");
  desc.add_options()("help,h", "show this help")
      ("version", "print the version")
      ("config", po::value<std::string>(), "rabbitmq.conf-format configuration file")
      ("amqp-port", po::value<uint16_t>(), "AMQP port (default 5672)")
      ("http-port", po::value<uint16_t>(), "management HTTP port (default 15672, 0 = off)")
      ("bind", po::value<std::string>(), "address to listen on (default 0.0.0.0)")
      ("data-dir", po::value<std::string>(), "data directory")
      ("log-level", po::value<std::string>(), "debug|info|warning|error|critical|none");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "warren: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "warren 0.1.0\n";
    return 0;
  }

  common::Config cfg;
  try {
    if (vm.count("config")) common::load_config_file(vm["config"].as<std::string>(), cfg);
  } catch (const common::ConfigError& e) {
    std::cerr << "warren: " << e.what() << "\n";
    return 2;
  }
  // Flags override the file.
  if (vm.count("amqp-port")) cfg.amqp_port = vm["amqp-port"].as<uint16_t>();
  if (vm.count("http-port")) cfg.http_port = vm["http-port"].as<uint16_t>();
  if (vm.count("bind")) cfg.bind_address = vm["bind"].as<std::string>();
  // A flag names the one AMQP listener; otherwise every listeners.tcp.NAME is opened.
  if (vm.count("amqp-port") || vm.count("bind") || cfg.amqp_listeners.empty()) {
    cfg.amqp_listeners = {{cfg.bind_address, cfg.amqp_port}};
  }
  if (vm.count("data-dir")) cfg.data_dir = vm["data-dir"].as<std::string>();
  if (vm.count("log-level")) cfg.log_level = vm["log-level"].as<std::string>();
  if (cfg.data_dir.empty()) cfg.data_dir = common::default_data_dir();

  common::LogOptions log;
  log.level = cfg.log_level;
  log.console = cfg.log_console;
  log.console_level = cfg.log_console_level;
  log.file_level = cfg.log_file_level;
  if (!cfg.log_file.empty()) {
    const std::filesystem::path file(cfg.log_file);
    log.file = file.is_absolute() ? file.string()
                                  : (std::filesystem::path(cfg.log_dir.empty() ? cfg.data_dir
                                                                               : cfg.log_dir) /
                                     file).string();
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(log.file).parent_path(), ec);
  }
  std::string log_error;
  if (!common::init_logging(log, log_error)) {
    std::cerr << "warren: cannot open log file " << log.file << ": " << log_error << "\n";
    return 2;
  }
  for (const auto& w : cfg.warnings) WLOG_WARN("{}", w);
  std::error_code fs_ec;
  std::filesystem::create_directories(cfg.data_dir, fs_ec);
  if (fs_ec) {
    WLOG_ERROR("cannot create data directory {}: {}", cfg.data_dir, fs_ec.message());
    return 1;
  }
  raise_fd_limit();

  boost::asio::io_context io(1);
  broker::Broker broker(cfg, io.get_executor());
  std::unique_ptr<persistence::Store> store;
  try {
    store = persistence::Store::open(cfg.data_dir, [&io](std::function<void()> f) {
      boost::asio::post(io, std::move(f));
    });
    auto recovered = store->recover(cfg.queue_memory_limit);
    WLOG_INFO("recovered {} durable exchanges, {} durable queues, {} bindings and {} messages "
              "from {}/warren.db",
              recovered.exchanges.size(), recovered.queues.size(), recovered.bindings.size(),
              recovered.messages.size(), cfg.data_dir);
    broker.recover(std::move(recovered));
  } catch (const persistence::StoreError& e) {
    WLOG_ERROR("cannot use the data directory {}: {}", cfg.data_dir, e.what());
    return 1;
  }
  broker.set_store(store.get());
  if (!cfg.load_definitions.empty()) {
    std::string error;
    if (!management::load_definitions_file(broker, cfg.load_definitions, error)) {
      WLOG_ERROR("cannot load definitions from {}: {}", cfg.load_definitions, error);
      return 1;
    }
    WLOG_INFO("definitions imported from {}", cfg.load_definitions);
  }
  broker.start_tick();
  std::vector<std::unique_ptr<broker::Server>> servers;
  for (const auto& [address, port] : cfg.amqp_listeners) {
    servers.push_back(std::make_unique<broker::Server>(io, broker));
    try {
      servers.back()->listen(address, port);
    } catch (const std::exception& e) {
      WLOG_ERROR("cannot listen for AMQP on {}:{}: {}", address, port, e.what());
      return 1;
    }
    WLOG_INFO("Warren 0.1.0 listening for AMQP on {}:{} (data directory {})", address,
              servers.back()->port(), cfg.data_dir);
  }
  std::unique_ptr<boost::asio::ssl::context> amqps_tls;
  std::unique_ptr<broker::Server> amqps_server;
  if (cfg.amqps_port != 0) {
    const std::string addr = cfg.amqps_bind_address.empty() ? cfg.bind_address
                                                            : cfg.amqps_bind_address;
    try {
      amqps_tls = auth::make_server_context(cfg.ssl);
      amqps_server = std::make_unique<broker::Server>(io, broker, amqps_tls.get());
      amqps_server->listen(addr, cfg.amqps_port);
    } catch (const std::exception& e) {
      WLOG_ERROR("cannot listen for AMQPS on {}:{}: {}", addr, cfg.amqps_port, e.what());
      return 1;
    }
    WLOG_INFO("listening for AMQPS (TLS) on {}:{}", addr, amqps_server->port());
  }
  const std::string http_address = cfg.management_ip.empty() ? cfg.bind_address : cfg.management_ip;
  const std::string prometheus_address =
      cfg.prometheus_ip.empty() ? cfg.bind_address : cfg.prometheus_ip;
  management::HttpServer http(io, broker);
  // HTTPS for the same API (management.ssl.*), beside the plain listener.
  std::unique_ptr<boost::asio::ssl::context> https_tls;
  std::unique_ptr<management::HttpServer> https;
  if (cfg.https_port != 0) {
    try {
      https_tls = auth::make_server_context(cfg.management_ssl);
      https = std::make_unique<management::HttpServer>(io, broker, https_tls.get());
      https->listen(http_address, cfg.https_port);
    } catch (const std::exception& e) {
      WLOG_ERROR("cannot listen for HTTPS on {}:{}: {}", http_address, cfg.https_port,
                 e.what());
      return 1;
    }
    WLOG_INFO("management API listening on https://{}:{}/api/", http_address, https->port());
  }
  if (cfg.http_port != 0) {
    try {
      http.listen(http_address, cfg.http_port);
    } catch (const std::exception& e) {
      WLOG_ERROR("cannot listen for HTTP on {}:{}: {}", http_address, cfg.http_port, e.what());
      return 1;
    }
    // warrenctl on this machine reads the port and a one-time token from here (readable by
    // the broker's user only), as rabbitmqctl relies on the Erlang cookie.
    http.write_local_credentials(cfg.data_dir);
    WLOG_INFO("management API listening on http://{}:{}/api/", http_address, http.port());
  }
  management::HttpServer prometheus(io, broker, nullptr, true);
  if (cfg.prometheus_port != 0) {
    try {
      prometheus.listen(prometheus_address, cfg.prometheus_port);
    } catch (const std::exception& e) {
      WLOG_ERROR("cannot listen for Prometheus on {}:{}: {}", prometheus_address,
                 cfg.prometheus_port, e.what());
      return 1;
    }
    WLOG_INFO("Prometheus metrics on http://{}:{}/metrics", prometheus_address, prometheus.port());
  }

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer stop_timer(io);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    WLOG_INFO("signal {} received: closing connections and stopping", sig);
    for (auto& s : servers) s->stop();
    if (amqps_server) amqps_server->stop();
    http.stop();
    prometheus.stop();
    if (https) https->stop();
    broker.close_all_connections("broker forced connection closure with reason 'shutdown'");
    // Give clients a moment to answer close-ok, then stop regardless.
    stop_timer.expires_after(std::chrono::milliseconds(
        broker.connections().empty() ? 0 : 1000));
    stop_timer.async_wait([&](const boost::system::error_code&) { io.stop(); });
  });
  io.run();
  // Release everything that still waits on the executor while the broker is alive.
  signals.cancel();
  stop_timer.cancel();
  broker.shutdown();
  io.restart();
  io.run();
  // Commit what is queued, then run the last completions before the broker goes.
  broker.set_store(nullptr);
  store.reset();
  io.restart();
  io.run();
  WLOG_INFO("Warren stopped");
  return 0;
}
