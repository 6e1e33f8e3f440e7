// Server: the AMQP listener. Accepts sockets and starts a TcpSession for each.
//
// Runs on the shard's io_context (N=1 for now).
#pragma once

#include <boost/asio.hpp>
#include <string>

namespace warren::broker {

class Broker;

class Server {
 public:
  Server(boost::asio::io_context& io, Broker& broker);
  // Binds and listens; throws boost::system::system_error on failure.
  void listen(const std::string& address, uint16_t port);
  uint16_t port() const;
  void stop();

 private:
  void accept();
  boost::asio::io_context& io_;
  Broker& broker_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

}  // namespace warren::broker
