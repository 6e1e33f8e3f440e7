// warren-relay: the trivial "broker" that warren-perf is checked against (scripts/bench
// --relay-check). It fakes just enough of AMQP 0-9-1 for warren-perf's producers and
// consumers: the handshake, channel.open and an ok for every setup method, and it relays each
// basic.publish (method, header and body frames) to the consumer as a basic.deliver followed by
// the same header and body frames, byte for byte. No queue, no routing, no acks (it ignores
// basic.ack and prefetch) and no copies beyond the socket buffers: what it reaches is the
// ceiling for a generator on this machine. One thread, poll(); a producer's socket is not read
// while the consumer has more than 4 MiB waiting to be sent (back-pressure). Confirms are
// answered with one multiple basic.ack per read.
//
// Usage: warren-relay PORT [SECONDS]   (exits after SECONDS, default 600; loopback only)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "amqp/command_assembler.h"
#include "amqp/frame.h"
#include "amqp/methods.h"

namespace warren::perf {
namespace {

constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kBackPressure = 4 << 20;

struct Conn {
  int fd = -1;
  bool header_done = false;
  bool closing = false;
  std::vector<char> in;
  size_t in_begin = 0;
  size_t in_end = 0;
  std::string out;
  size_t out_off = 0;
  amqp::FrameParser parser{131072};
  bool consumer = false;
  uint16_t consumer_channel = 1;
  bool confirm = false;
  uint64_t publish_seq = 0;   // confirms: publishes seen
  uint64_t acked_seq = 0;     // confirms: acked
  bool forwarding = false;    // inside a publish's header and body frames
  uint64_t deliver_tag = 0;   // consumer: last delivery tag
  uint32_t consumers = 0;     // consumer: basic.consume count (tags)
};

std::vector<std::unique_ptr<Conn>> g_conns;

Conn* find_consumer() {
  for (auto& c : g_conns) {
    if (c->fd >= 0 && c->consumer && !c->closing) return c.get();
  }
  return nullptr;
}

void flush(Conn& c) {
  while (c.out_off < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      c.closing = true;
      c.out.clear();
      c.out_off = 0;
      return;
    }
    c.out_off += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out_off = 0;
}

void on_method(Conn& c, const amqp::Frame& f) {
  const amqp::Method m = amqp::decode_method_exact(f.payload, 0, 0);
  const uint16_t ch = f.channel;
  if (std::holds_alternative<amqp::ConnectionStartOk>(m)) {
    amqp::ConnectionTune t;
    t.channel_max = 2047;
    t.frame_max = 131072;
    t.heartbeat = 0;
    amqp::write_method_frame(c.out, 0, t);
  } else if (std::holds_alternative<amqp::ConnectionOpen>(m)) {
    amqp::write_method_frame(c.out, 0, amqp::ConnectionOpenOk{});
  } else if (std::holds_alternative<amqp::ConnectionClose>(m)) {
    amqp::write_method_frame(c.out, 0, amqp::ConnectionCloseOk{});
    c.closing = true;
  } else if (std::holds_alternative<amqp::ChannelOpen>(m)) {
    amqp::write_method_frame(c.out, ch, amqp::ChannelOpenOk{});
  } else if (std::holds_alternative<amqp::ChannelClose>(m)) {
    amqp::write_method_frame(c.out, ch, amqp::ChannelCloseOk{});
  } else if (const auto* d = std::get_if<amqp::QueueDeclare>(&m)) {
    amqp::QueueDeclareOk ok;
    ok.queue = d->queue;
    amqp::write_method_frame(c.out, ch, ok);
  } else if (std::holds_alternative<amqp::ExchangeDeclare>(m)) {
    amqp::write_method_frame(c.out, ch, amqp::ExchangeDeclareOk{});
  } else if (const auto* b = std::get_if<amqp::QueueBind>(&m)) {
    if (!b->no_wait) amqp::write_method_frame(c.out, ch, amqp::QueueBindOk{});
  } else if (std::holds_alternative<amqp::BasicQos>(m)) {
    amqp::write_method_frame(c.out, ch, amqp::BasicQosOk{});
  } else if (std::holds_alternative<amqp::ConfirmSelect>(m)) {
    c.confirm = true;
    amqp::write_method_frame(c.out, ch, amqp::ConfirmSelectOk{});
  } else if (std::holds_alternative<amqp::BasicConsume>(m)) {
    c.consumer = true;
    c.consumer_channel = ch;
    amqp::BasicConsumeOk ok;
    const std::string tag = "relay-" + std::to_string(++c.consumers);
    ok.consumer_tag = tag;
    amqp::write_method_frame(c.out, ch, ok);
  }
  // basic.ack, basic.cancel, ...: ignored.
}

// Handles one frame; `raw` is the whole frame as received.
void on_frame(Conn& c, const amqp::Frame& f, std::string_view raw) {
  if (f.type == amqp::kFrameMethod && f.payload.size() >= 4 &&
      static_cast<uint8_t>(f.payload[0]) == 0 && static_cast<uint8_t>(f.payload[1]) == 60 &&
      static_cast<uint8_t>(f.payload[2]) == 0 && static_cast<uint8_t>(f.payload[3]) == 40) {
    // basic.publish
    ++c.publish_seq;
    Conn* consumer = find_consumer();
    c.forwarding = consumer != nullptr;
    if (consumer) {
      amqp::BasicDeliver d;
      d.consumer_tag = "relay-1";
      d.delivery_tag = ++consumer->deliver_tag;
      amqp::write_method_frame(consumer->out, consumer->consumer_channel, d);
    }
    return;
  }
  if (f.type == amqp::kFrameHeader || f.type == amqp::kFrameBody) {
    if (c.forwarding) {
      if (Conn* consumer = find_consumer()) consumer->out.append(raw);
    }
    return;
  }
  if (f.type == amqp::kFrameMethod) on_method(c, f);
}

void on_readable(Conn& c) {
  if (c.in_begin > 0) {
    std::memmove(c.in.data(), c.in.data() + c.in_begin, c.in_end - c.in_begin);
    c.in_end -= c.in_begin;
    c.in_begin = 0;
  }
  if (c.in_end == c.in.size()) c.in.resize(c.in.size() * 2);
  const ssize_t n = ::recv(c.fd, c.in.data() + c.in_end, c.in.size() - c.in_end, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    c.closing = true;
    return;
  }
  if (n < 0) return;
  c.in_end += static_cast<size_t>(n);
  if (!c.header_done) {
    if (c.in_end < 8) return;
    c.header_done = true;
    c.in_begin = 8;
    amqp::ConnectionStart s;
    s.version_major = 0;
    s.version_minor = 9;
    s.server_properties.set("product", "warren-relay");
    s.mechanisms = "PLAIN";
    s.locales = "en_US";
    amqp::write_method_frame(c.out, 0, s);
  }
  amqp::Frame f;
  for (;;) {
    const auto* base = reinterpret_cast<const uint8_t*>(c.in.data() + c.in_begin);
    const size_t used = c.parser.parse(base, c.in_end - c.in_begin, f);
    if (used == 0) break;
    on_frame(c, f, std::string_view(c.in.data() + c.in_begin, used));
    c.in_begin += used;
  }
  if (c.confirm && c.publish_seq > c.acked_seq) {
    amqp::BasicAck a;
    a.delivery_tag = c.publish_seq;
    a.multiple = true;
    amqp::write_method_frame(c.out, 1, a);
    c.acked_seq = c.publish_seq;
  }
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: warren-relay PORT [SECONDS]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const double seconds = argc > 2 ? std::atof(argv[2]) : 600;
  signal(SIGPIPE, SIG_IGN);
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 128) != 0) {
    std::perror("warren-relay: bind/listen");
    return 1;
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
  std::vector<pollfd> fds;
  while (std::chrono::steady_clock::now() < deadline) {
    fds.clear();
    fds.push_back({lfd, POLLIN, 0});
    const Conn* consumer = find_consumer();
    const bool congested = consumer && consumer->out.size() - consumer->out_off > kBackPressure;
    for (auto& c : g_conns) {
      short ev = 0;
      if (!(congested && !c->consumer)) ev |= POLLIN;
      if (c->out.size() > c->out_off) ev |= POLLOUT;
      fds.push_back({c->fd, ev, 0});
    }
    if (::poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) return 1;
    for (size_t i = 1; i < fds.size(); ++i) {
      Conn& c = *g_conns[i - 1];
      if (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) on_readable(c);
    }
    for (auto& c : g_conns) {
      if (c->out.size() > c->out_off) flush(*c);
    }
    for (size_t i = 0; i < g_conns.size();) {
      Conn& c = *g_conns[i];
      if (c.closing && c.out.size() == c.out_off) {
        ::close(c.fd);
        g_conns.erase(g_conns.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    if (fds[0].revents & POLLIN) {
      const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<Conn>();
        c->fd = fd;
        c->in.resize(kReadChunk);
        g_conns.push_back(std::move(c));
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace warren::perf

int main(int argc, char** argv) { return warren::perf::run(argc, argv); }
