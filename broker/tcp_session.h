// TcpSession: one accepted socket, the Asio side of a Connection.
//
// Lives on the shard's io_context thread; kept alive by its pending async operations
// (shared_from_this). Reads into a buffer that grows to frame_max, hands bytes to the
// Connection, and writes the Connection's OutBuffer with one gathered async_write at a time
// (double-buffered: the connection fills one buffer while the other is on the wire). On a
// TLS listener the same socket is wrapped in an SSL stream and the TLS handshake comes first.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "broker/connection.h"
#include "broker/transport.h"

namespace warren::broker {

class Broker;

class TcpSession : public std::enable_shared_from_this<TcpSession>, public Transport {
 public:
  // `tls`: the listener's TLS context (null for plain AMQP); it outlives the session.
  TcpSession(boost::asio::ip::tcp::socket socket, Broker& broker,
             boost::asio::ssl::context* tls = nullptr);
  ~TcpSession() override;
  void start();

  // Transport
  void request_flush() override;
  void close_after_flush() override;
  void abort() override;
  void start_heartbeat(uint16_t seconds) override;
  void pause_reading(bool paused) override;
  void hold_input(bool held) override;
  void handshake_complete() override;
  void start_close_timer(uint32_t ms) override;
  void close_silently(uint32_t ms) override;
  void linger(uint32_t ms) override;

 private:
  void begin();
  void do_read();
  void do_write();
  void on_heartbeat_tick();
  void finish();

  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
  std::unique_ptr<Connection> conn_;
  std::vector<uint8_t> rbuf_;
  size_t rlen_ = 0;
  OutBuffer in_flight_;

 public:
  void release_idle_buffers() override {
    if (writing_ || !in_flight_.empty()) return;
    in_flight_.release();
    std::vector<boost::asio::const_buffer>().swap(gather_);
  }

 private:
  std::vector<boost::asio::const_buffer> gather_;
  bool writing_ = false;
  bool flush_posted_ = false;
  bool close_after_flush_ = false;
  bool closed_ = false;
  bool ignore_input_ = false;
  bool read_paused_ = false;
  bool input_held_ = false;
  // While reading is paused or input held, no read is pending to keep the session alive:
  // this does (dropped on resume, or after finish()).
  std::shared_ptr<TcpSession> keep_alive_;
  void update_keep_alive();
  // Hands buffered bytes to the connection (after a read, or when input is released).
  void process_input();
  bool read_pending_ = false;
  bool was_blocked_ = false;
  uint16_t heartbeat_ = 0;
  bool read_since_tick_ = false;
  bool wrote_since_tick_ = false;
  int missed_ticks_ = 0;
  int tick_ = 0;
  uint32_t handshake_timeout_ms_ = 10000;
  std::string address_;         // the peer's address without its port
  int64_t login_delay_ms_ = 0;  // auth::LoginThrottle's pause before the handshake is read
  boost::asio::steady_timer handshake_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer close_timer_;
};

}  // namespace warren::broker
