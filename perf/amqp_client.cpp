#include "perf/amqp_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <variant>

#include "amqp/command_assembler.h"
#include "amqp/errors.h"
#include "amqp/field_table.h"

namespace warren::perf {

namespace {

using Clock = std::chrono::steady_clock;

// Large enough for several frames at the usual frame_max (131072), so one recv brings in
// many small deliveries at once.
constexpr size_t kMinInputBuffer = 1 << 20;
// For idle connections: read_some() doubles it when a frame does not fit.
constexpr size_t kSmallInputBuffer = 8192;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) throw std::invalid_argument("bad percent escape in URI");
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) throw std::invalid_argument("bad percent escape in URI");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string close_text(const amqp::ConnectionClose& c) {
  return std::to_string(c.reply_code) + " " + std::string(c.reply_text);
}

}  // namespace

Uri parse_uri(std::string_view text) {
  Uri u;
  constexpr std::string_view kScheme = "amqp://";
  if (text.substr(0, kScheme.size()) != kScheme) {
    throw std::invalid_argument("URI must start with amqp:// (amqps is not supported)");
  }
  std::string_view rest = text.substr(kScheme.size());
  std::string_view authority = rest;
  std::string_view path;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash);
  }
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    u.user = percent_decode(userinfo.substr(0, colon));
    u.password = colon == std::string_view::npos ? "" : percent_decode(userinfo.substr(colon + 1));
  }
  if (!authority.empty() && authority.front() == '[') {  // [::1]:5672
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("bad IPv6 host in URI");
    u.host = std::string(authority.substr(1, close - 1));
    authority = authority.substr(close + 1);
    if (!authority.empty() && authority.front() == ':') u.port = std::string(authority.substr(1));
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      u.port = std::string(authority.substr(colon + 1));
      authority = authority.substr(0, colon);
    }
    if (!authority.empty()) u.host = std::string(authority);
  }
  if (path.size() > 1) u.vhost = percent_decode(path.substr(1));
  return u;
}

AmqpClient::~AmqpClient() {
  if (fd_ >= 0) ::close(fd_);
}

void AmqpClient::fail(const std::string& what) { throw PerfError(what); }

void AmqpClient::connect(const Uri& uri, std::string_view connection_name,
                         std::chrono::milliseconds timeout, bool small_buffers) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(uri.host.c_str(), uri.port.c_str(), &hints, &res); rc != 0) {
    fail("cannot resolve " + uri.host + ": " + gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) fail("cannot connect to " + uri.host + ":" + uri.port + ": " + last_error);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  in_.resize(small_buffers ? kSmallInputBuffer : kMinInputBuffer);

  out_.append("AMQP\x00\x00\x09\x01", 8);
  flush_blocking(timeout);
  {
    amqp::Reader r(
        expect(0, amqp::ConnectionStart::kClassId, amqp::ConnectionStart::kMethodId, timeout));
    r.u32();
    amqp::ConnectionStart start;
    try {
      start.decode(r);
    } catch (const std::exception& e) {
      fail(std::string("cannot decode connection.start: ") + e.what());
    }
    if (const amqp::FieldValue* v = start.server_properties.find("product")) {
      if (auto s = v->as_string()) server_product_ = std::string(*s);
    }
  }

  amqp::ConnectionStartOk start_ok;
  amqp::FieldTable caps;
  caps.set("publisher_confirms", true);
  caps.set("basic.nack", true);
  caps.set("consumer_cancel_notify", true);
  caps.set("exchange_exchange_bindings", true);
  start_ok.client_properties.set("product", "warren-perf");
  start_ok.client_properties.set("platform", "C++");
  start_ok.client_properties.set("capabilities", caps);
  start_ok.client_properties.set("connection_name", std::string(connection_name));
  const std::string response = std::string(1, '\0') + uri.user + '\0' + uri.password;
  start_ok.mechanism = "PLAIN";
  start_ok.response = response;
  start_ok.locale = "en_US";
  amqp::write_method_frame(out_, 0, start_ok);
  flush_blocking(timeout);

  amqp::ConnectionTune tune;
  {
    amqp::Reader r(expect(0, amqp::ConnectionTune::kClassId, amqp::ConnectionTune::kMethodId,
                          timeout));
    r.u32();  // class and method ids
    tune.decode(r);
  }
  frame_max_ = tune.frame_max == 0 ? 131072 : tune.frame_max;
  parser_.set_max_frame(frame_max_);
  if (!small_buffers && in_.size() < 4 * size_t{frame_max_}) in_.resize(4 * size_t{frame_max_});

  amqp::ConnectionTuneOk tune_ok;
  tune_ok.channel_max = tune.channel_max;
  tune_ok.frame_max = frame_max_;
  tune_ok.heartbeat = 0;  // the load generator never idles long; the broker may not either
  amqp::write_method_frame(out_, 0, tune_ok);
  amqp::ConnectionOpen open;
  open.virtual_host = uri.vhost;
  call<amqp::ConnectionOpenOk>(0, open, timeout);
}

void AmqpClient::open_channel(uint16_t channel) {
  call<amqp::ChannelOpenOk>(channel, amqp::ChannelOpen{});
}

void AmqpClient::close(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return;
  try {
    amqp::ConnectionClose c;
    c.reply_code = 200;
    c.reply_text = "Goodbye";
    call<amqp::ConnectionCloseOk>(0, c, timeout);
  } catch (const std::exception&) {
    // Closing anyway: the run's results are already counted.
  }
  ::close(fd_);
  fd_ = -1;
}

bool AmqpClient::flush() {
  while (out_off_ < out_.size()) {
    const ssize_t n =
        ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      fail(std::string("write failed: ") + std::strerror(errno));
    }
    out_off_ += static_cast<size_t>(n);
  }
  out_.clear();  // keeps its capacity: the next batch reuses the buffer
  out_off_ = 0;
  return true;
}

void AmqpClient::flush_blocking(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!flush()) {
    if (Clock::now() > deadline) fail("timeout writing to the broker");
    wait(std::chrono::milliseconds(100), true);
  }
}

size_t AmqpClient::read_some() {
  if (in_begin_ > 0) {
    // Move the partial frame (if any) to the front; it is small compared with a read.
    std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  if (in_end_ == in_.size()) in_.resize(in_.size() * 2);
  for (;;) {
    const ssize_t n = ::recv(fd_, in_.data() + in_end_, in_.size() - in_end_, 0);
    if (n > 0) {
      in_end_ += static_cast<size_t>(n);
      return static_cast<size_t>(n);
    }
    if (n == 0) fail("connection closed by the broker (EOF)");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    fail(std::string("read failed: ") + std::strerror(errno));
  }
}

short AmqpClient::wait(std::chrono::nanoseconds timeout, bool want_write) {
  pollfd p{fd_, static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0};
  if (timeout.count() < 0) timeout = std::chrono::nanoseconds(0);
  timespec ts{static_cast<time_t>(timeout.count() / 1000000000),
              static_cast<long>(timeout.count() % 1000000000)};
  const int rc = ::ppoll(&p, 1, &ts, nullptr);
  if (rc < 0) {
    if (errno == EINTR) return 0;
    fail(std::string("poll failed: ") + std::strerror(errno));
  }
  // Errors and hang-ups show as readable so that read_some() reports them.
  if (p.revents & (POLLERR | POLLHUP)) p.revents |= POLLIN;
  return p.revents;
}

bool AmqpClient::next_frame(amqp::Frame& f) {
  size_t used = 0;
  try {
    used = parser_.parse(reinterpret_cast<const uint8_t*>(in_.data() + in_begin_),
                         in_end_ - in_begin_, f);
  } catch (const amqp::AmqpError& e) {
    fail(std::string("bad frame from the broker: ") + e.what());
  }
  if (used == 0) return false;
  in_begin_ += used;
  return true;
}

void AmqpClient::on_channel0(const amqp::Frame& f) {
  if (f.type == amqp::kFrameHeartbeat) return;
  if (f.type != amqp::kFrameMethod) fail("unexpected content frame on channel 0");
  amqp::Method m;
  try {
    m = amqp::decode_method_exact(f.payload, 0, 0);
  } catch (const std::exception& e) {
    fail(std::string("cannot decode a method on channel 0: ") + e.what());
  }
  if (const auto* c = std::get_if<amqp::ConnectionClose>(&m)) {
    const std::string text = close_text(*c);
    amqp::write_method_frame(out_, 0, amqp::ConnectionCloseOk{});
    try {
      flush();
    } catch (const PerfError&) {
    }
    fail("connection closed by the broker: " + text);
  }
  // connection.blocked/unblocked and anything else: nothing to do (the broker pauses reads
  // while blocked, which shows as a lower publish rate).
}

void AmqpClient::on_channel_frame(const amqp::Frame& f, Handler* h) {
  switch (f.type) {
    case amqp::kFrameMethod: {
      if (content_ != Content::kNone) fail("method frame in the middle of content");
      amqp::Reader r(f.payload);
      const uint16_t cls = r.u16();
      const uint16_t mid = r.u16();
      try {
        if (cls == amqp::kClassBasic) {
          // The hot methods are decoded straight from the frame, without the Method variant.
          switch (mid) {
            case amqp::BasicDeliver::kMethodId: {
              amqp::BasicDeliver d;
              d.decode(r);
              content_ = Content::kDeliver;
              deliver_tag_ = d.delivery_tag;
              deliver_redelivered_ = d.redelivered;
              header_seen_ = false;
              return;
            }
            case amqp::BasicAck::kMethodId: {
              amqp::BasicAck a;
              a.decode(r);
              if (h) h->on_ack(a.delivery_tag, a.multiple);
              return;
            }
            case amqp::BasicNack::kMethodId: {
              amqp::BasicNack a;
              a.decode(r);
              if (h) h->on_nack(a.delivery_tag, a.multiple);
              return;
            }
            case amqp::BasicReturn::kMethodId:
              content_ = Content::kReturn;
              header_seen_ = false;
              return;
            default:
              break;
          }
        }
        if (amqp::method_known(cls, mid) && amqp::method_has_content(cls, mid)) {
          content_ = Content::kOther;
          header_seen_ = false;
          return;
        }
        const amqp::Method m = amqp::decode_method_exact(f.payload, cls, mid);
        if (const auto* c = std::get_if<amqp::ChannelClose>(&m)) {
          const std::string text = std::to_string(c->reply_code) + " " + std::string(c->reply_text);
          amqp::write_method_frame(out_, f.channel, amqp::ChannelCloseOk{});
          fail("channel " + std::to_string(f.channel) + " closed by the broker: " + text);
        }
        if (h) h->on_other(f.channel, m);
      } catch (const PerfError&) {
        throw;
      } catch (const std::exception& e) {
        fail(std::string("cannot decode a method from the broker: ") + e.what());
      }
      return;
    }
    case amqp::kFrameHeader: {
      if (content_ == Content::kNone || header_seen_) fail("unexpected content header");
      amqp::Reader r(f.payload);
      r.u16();
      r.u16();
      content_size_ = r.u64();
      content_seen_ = 0;
      head_len_ = 0;
      header_seen_ = true;
      break;
    }
    case amqp::kFrameBody: {
      if (content_ == Content::kNone || !header_seen_) fail("unexpected body frame");
      if (head_len_ < kHeadSize) {
        const size_t n = std::min(kHeadSize - head_len_, f.payload.size());
        std::memcpy(head_ + head_len_, f.payload.data(), n);
        head_len_ += n;
      }
      content_seen_ += f.payload.size();
      if (content_seen_ > content_size_) fail("body longer than announced");
      break;
    }
    default:
      fail("unexpected frame type " + std::to_string(f.type));
  }
  if (content_seen_ < content_size_) return;
  const Content done = content_;
  content_ = Content::kNone;
  if (!h) return;
  if (done == Content::kDeliver) {
    h->on_deliver(deliver_tag_, deliver_redelivered_, std::string_view(head_, head_len_));
  } else if (done == Content::kReturn) {
    h->on_return();
  }
}

void AmqpClient::process(Handler& h) {
  amqp::Frame f;
  while (next_frame(f)) {
    if (f.channel == 0) {
      on_channel0(f);
    } else {
      on_channel_frame(f, &h);
    }
  }
}

std::string_view AmqpClient::expect(uint16_t channel, uint16_t class_id, uint16_t method_id,
                                    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  amqp::Frame f;
  for (;;) {
    while (next_frame(f)) {
      if (f.channel == channel && f.type == amqp::kFrameMethod && f.payload.size() >= 4 &&
          content_ == Content::kNone) {
        amqp::Reader r(f.payload);
        const uint16_t cls = r.u16();
        const uint16_t mid = r.u16();
        if (cls == class_id && mid == method_id) return f.payload;
      }
      if (f.channel == 0) {
        on_channel0(f);
      } else {
        on_channel_frame(f, setup_handler_);
      }
    }
    if (Clock::now() > deadline) {
      fail("timeout waiting for " + std::string(amqp::method_name(class_id, method_id)));
    }
    if (read_some() == 0) {
      wait(std::min<std::chrono::nanoseconds>(deadline - Clock::now(),
                                              std::chrono::milliseconds(100)),
           false);
    }
  }
}

}  // namespace warren::perf
