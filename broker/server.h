// Server: an AMQP listener (plain, or AMQPS with a TLS context). Accepts sockets and starts a
// TcpSession for each.
//
// Runs on the shard's io_context (N=1 for now).
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>
#include <string>

namespace warren::broker {

class Broker;

class Server {
 public:
  // `tls`: null for plain AMQP; else the context every session of this listener uses (it
  // must outlive the Server).
  Server(boost::asio::io_context& io, Broker& broker, boost::asio::ssl::context* tls = nullptr);
  // Binds and listens; throws boost::system::system_error on failure.
  void listen(const std::string& address, uint16_t port);
  uint16_t port() const;
  void stop();

 private:
  void accept();
  boost::asio::io_context& io_;
  Broker& broker_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ssl::context* tls_;
};

}  // namespace warren::broker
