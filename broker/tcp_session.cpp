#include "broker/tcp_session.h"

#include <cstring>

#include "auth/tls_context.h"
#include "broker/broker.h"
#include "common/log.h"

namespace warren::broker {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
// Small to start with (the handshake's frames fit), so that idle connections cost little; a read that fills the buffer
// doubles it (up to kBusyReadBuffer, or whatever one frame needs) for busy publishers.
constexpr size_t kInitialReadBuffer = 512;
constexpr size_t kBusyReadBuffer = 256 * 1024;

std::string describe(const asio::ip::tcp::socket& s, bool& loopback) {
  error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) {
    loopback = false;
    return "unknown";
  }
  loopback = ep.address().is_loopback() ||
             (ep.address().is_v6() && ep.address().to_v6().is_v4_mapped() &&
              asio::ip::make_address_v4(asio::ip::v4_mapped, ep.address().to_v6()).is_loopback());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}
}  // namespace

TcpSession::TcpSession(asio::ip::tcp::socket socket, Broker& broker, asio::ssl::context* tls)
    : socket_(std::move(socket)),
      rbuf_(kInitialReadBuffer),
      handshake_timer_(socket_.get_executor()),
      heartbeat_timer_(socket_.get_executor()),
      close_timer_(socket_.get_executor()) {
  bool loopback = false;
  std::string peer = describe(socket_, loopback);
  address_ = peer.substr(0, peer.rfind(':'));
  conn_ = std::make_unique<Connection>(broker, *this, std::move(peer), loopback);
  if (tls) tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls);
  {
    error_code lec;
    auto local = socket_.local_endpoint(lec);
    if (!lec) conn_->set_local(local.address().to_string() + ":" + std::to_string(local.port()));
  }
  login_delay_ms_ = broker.login_throttle().delay_ms(address_, now_ms());
  error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  handshake_timeout_ms_ = broker.config().handshake_timeout_ms;
}

TcpSession::~TcpSession() = default;

void TcpSession::start() {
  handshake_timer_.expires_after(std::chrono::milliseconds(handshake_timeout_ms_));
  handshake_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec && !self->closed_) self->conn_->on_handshake_timeout();
  });
  if (!tls_) {
    begin();
    return;
  }
  tls_->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](error_code ec) {
    if (self->closed_) return;
    if (ec) {
      // A plain-text client on the TLS port, a bad certificate or no common version: the
      // socket just closes, as RabbitMQ's does.
      WLOG_INFO("TLS handshake with {} failed: {}", self->conn_->peer(), ec.message());
      self->finish();
      return;
    }
    self->conn_->set_peer_identity(auth::peer_identity(self->tls_->native_handle()));
    self->begin();
  });
}

// Repeated failed logins from this address: its handshake is read only after a pause
// (auth::LoginThrottle). The close timer is idle until the handshake is done.
void TcpSession::begin() {
  if (login_delay_ms_ > 0) {
    close_timer_.expires_after(std::chrono::milliseconds(login_delay_ms_));
    close_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec && !self->closed_) self->do_read();
    });
    return;
  }
  do_read();
}

void TcpSession::update_keep_alive() {
  if ((read_paused_ || input_held_) && !closed_) {
    if (!keep_alive_) keep_alive_ = shared_from_this();
  } else if (keep_alive_) {
    // Released from a handler, never while a member function of this session still runs.
    asio::post(socket_.get_executor(), [keep = std::move(keep_alive_)] {});
  }
}

void TcpSession::pause_reading(bool paused) {
  read_paused_ = paused;
  update_keep_alive();
  if (!paused && !read_pending_) do_read();
}

void TcpSession::hold_input(bool held) {
  input_held_ = held;
  update_keep_alive();
  if (held) return;
  // Not inline: the release comes from inside the connection's own processing.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->closed_ || self->input_held_ || self->ignore_input_) return;
    if (self->rlen_ > 0) self->process_input();
    self->do_read();
  });
}

void TcpSession::process_input() {
  // Everything this read batch queues for the store reaches the writer in one hand-off.
  struct Group {
    persistence::Store* store;
    explicit Group(persistence::Store* s) : store(s) {
      if (store) store->begin_group();
    }
    ~Group() {
      if (store) store->end_group();
    }
  } group(conn_->broker().store());
  size_t used = conn_->on_bytes(rbuf_.data(), rlen_);
  if (used > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + used, rlen_ - used);
    rlen_ -= used;
  }
  conn_->end_of_input_batch();
  if (conn_->state() == Connection::State::kClosed && !close_after_flush_ && !closed_ &&
      !ignore_input_) {
    close_after_flush();
  }
}

void TcpSession::do_read() {
  if (closed_ || read_paused_ || input_held_ || read_pending_) return;
  read_pending_ = true;
  if (rlen_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
  const size_t space = rbuf_.size() - rlen_;
  auto on_read = [self = shared_from_this(), space](error_code ec, size_t n) {
        self->read_pending_ = false;
        if (self->closed_) return;
        if (ec) {
          if (ec != asio::error::eof) {
            WLOG_DEBUG("connection {}: read failed: {}", self->conn_->peer(), ec.message());
          }
          self->finish();
          return;
        }
        self->read_since_tick_ = true;
        self->conn_->count_received(n);
        if (self->ignore_input_) {
          self->do_read();
          return;
        }
        self->rlen_ += n;
        self->process_input();
        if (n == space && self->rbuf_.size() < kBusyReadBuffer) {
          self->rbuf_.resize(self->rbuf_.size() * 2);
        }
        self->do_read();
  };
  auto buf = asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_);
  if (tls_) {
    tls_->async_read_some(buf, std::move(on_read));
  } else {
    socket_.async_read_some(buf, std::move(on_read));
  }
}

void TcpSession::request_flush() {
  if (writing_ || flush_posted_ || closed_) return;
  flush_posted_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->do_write();
  });
}

void TcpSession::do_write() {
  if (writing_ || closed_) return;
  OutBuffer& out = conn_->out();
  if (out.empty()) {
    if (close_after_flush_) {
      error_code ec;
      socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
      finish();
    }
    return;
  }
  was_blocked_ = was_blocked_ || conn_->write_blocked();
  std::swap(in_flight_, out);
  gather_.clear();
  in_flight_.gather(gather_);
  writing_ = true;
  wrote_since_tick_ = true;
  auto on_written = [self = shared_from_this()](error_code ec, size_t n) {
    self->writing_ = false;
    self->conn_->count_sent(n);
    self->in_flight_.clear();
    if (ec) {
      self->finish();
      return;
    }
    if (self->was_blocked_ && !self->conn_->write_blocked()) {
      self->was_blocked_ = false;
      self->conn_->on_output_drained();
    }
    self->do_write();
  };
  if (tls_) {
    asio::async_write(*tls_, gather_, std::move(on_written));
  } else {
    asio::async_write(socket_, gather_, std::move(on_written));
  }
}

void TcpSession::close_after_flush() {
  close_after_flush_ = true;
  if (!writing_) request_flush();
  // A peer that never reads must not keep the socket forever.
  start_close_timer(30000);
}

void TcpSession::abort() { finish(); }

void TcpSession::close_silently(uint32_t ms) {
  ignore_input_ = true;
  conn_->out().clear();
  heartbeat_timer_.cancel();
  close_timer_.expires_after(std::chrono::milliseconds(ms));
  close_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->finish();
  });
}

void TcpSession::linger(uint32_t ms) {
  ignore_input_ = true;
  heartbeat_timer_.cancel();
  request_flush();
  close_timer_.expires_after(std::chrono::milliseconds(ms));
  close_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->finish();
  });
}

void TcpSession::start_close_timer(uint32_t ms) {
  close_timer_.expires_after(std::chrono::milliseconds(ms));
  close_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->finish();
  });
}

void TcpSession::handshake_complete() { handshake_timer_.cancel(); }

void TcpSession::start_heartbeat(uint16_t seconds) {
  heartbeat_ = seconds;
  if (seconds == 0) return;
  on_heartbeat_tick();
}

// Ticks every half interval: send a heartbeat when nothing else was sent in the last half
// interval; the peer is dead after two whole intervals without a byte (RabbitMQ's rule).
void TcpSession::on_heartbeat_tick() {
  if (closed_) return;
  if (tick_ > 0) {
    if (!wrote_since_tick_ && conn_->state() == Connection::State::kOpen) conn_->send_heartbeat();
    wrote_since_tick_ = false;
    if (read_since_tick_) {
      missed_ticks_ = 0;
    } else if (++missed_ticks_ >= 4) {
      conn_->on_heartbeat_timeout();
      return;
    }
    read_since_tick_ = false;
  }
  ++tick_;
  heartbeat_timer_.expires_after(std::chrono::milliseconds(heartbeat_ * 500));
  heartbeat_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->on_heartbeat_tick();
  });
}

void TcpSession::finish() {
  if (closed_) return;
  closed_ = true;
  error_code ec;
  handshake_timer_.cancel();
  heartbeat_timer_.cancel();
  close_timer_.cancel();
  socket_.close(ec);
  conn_->on_transport_closed();
  update_keep_alive();
}

}  // namespace warren::broker
