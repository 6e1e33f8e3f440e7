// HttpServer: the management listener (Boost.Beast), RabbitMQ's /api/... on
// management.tcp.port (and HTTPS on management.ssl.port with a TLS context), and the
// console page (console_page.h) at "/" and "/index.html", as RabbitMQ serves its UI.
//
// Runs on the broker's io_context, so handlers touch broker state directly and never block:
// reads and writes are asynchronous, a request is bounded (headers 16 KiB, body kMaxBody;
// larger ones get 413 and RabbitMQ-style error JSON), idle keep-alive connections time out.
// A response to a request that changed durable state waits for the store's commit.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

namespace warren::broker {
class Broker;
}

namespace warren::management {

// What the server needs of a session, whatever its stream (plain or TLS).
class HttpSession {
 public:
  virtual ~HttpSession() = default;
  virtual void close() = 0;
};

class HttpServer {
 public:
  static constexpr size_t kMaxBody = 20'000'000;  // RabbitMQ's management.http.max_body_size

  // `tls`: null for HTTP; else the context of every session (it must outlive the server).
  // metrics_only: the Prometheus listener (prometheus.tcp.port), which serves /metrics alone.
  HttpServer(boost::asio::io_context& io, broker::Broker& broker,
             boost::asio::ssl::context* tls = nullptr, bool metrics_only = false);
  bool metrics_only() const { return metrics_only_; }
  ~HttpServer();
  // Binds and listens; throws boost::system::system_error on failure.
  void listen(const std::string& address, uint16_t port);
  uint16_t port() const;
  // Stops accepting and closes every HTTP connection.
  void stop();

  void forget(HttpSession* s) { sessions_.erase(s); }

  // Writes DATA_DIR/warrenctl.json (mode 0600): {"port": N, "token": T}. A request from
  // loopback with basic auth "warrenctl:T" acts as an administrator (the local operator).
  void write_local_credentials(const std::string& data_dir);
  const std::string& local_token() const { return local_token_; }

 private:
  void accept();
  boost::asio::ssl::context* tls_;
  boost::asio::io_context& io_;
  broker::Broker& broker_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::set<HttpSession*> sessions_;
  std::string local_token_;
  bool metrics_only_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace warren::management
