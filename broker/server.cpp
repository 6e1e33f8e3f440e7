#include "broker/server.h"

#include "broker/broker.h"
#include "broker/tcp_session.h"
#include "common/log.h"

namespace warren::broker {

namespace asio = boost::asio;

Server::Server(asio::io_context& io, Broker& broker, asio::ssl::context* tls)
    : io_(io), broker_(broker), acceptor_(io), tls_(tls) {}

void Server::listen(const std::string& address, uint16_t port) {
  asio::ip::tcp::endpoint ep(asio::ip::make_address(address), port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  accept();
}

uint16_t Server::port() const { return acceptor_.local_endpoint().port(); }

void Server::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void Server::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      std::make_shared<TcpSession>(std::move(socket), broker_, tls_)->start();
    } else {
      WLOG_WARN("accept failed: {}", ec.message());
    }
    if (acceptor_.is_open()) accept();
  });
}

}  // namespace warren::broker
