// AmqpClient: the load generator's AMQP 0-9-1 client connection, built on Warren's codec.
//
// Owned by exactly one thread (one producer or one consumer). The socket is non-blocking:
// setup calls (connect, declare, consume, ...) wait with poll() for their reply; the steady
// state is driven by the caller, which appends frames to out(), calls flush() and wait(), and
// hands incoming frames to a Handler through process(). Reads go into one reused buffer in
// large chunks; writes send the whole pending buffer at once, so a caller that appends many
// publishes before flush() gets one system call for all of them.
//
// Channel-0 traffic (connection.close, heartbeats, blocked) is handled here; a
// connection.close or channel.close from the broker becomes a PerfError.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/frame.h"
#include "amqp/methods.h"

namespace warren::perf {

class PerfError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// amqp://user:pass@host:port/vhost. An empty path or "/" means vhost "/"; otherwise the path
// after the first '/' is percent-decoded ("/%2F" is "/").
struct Uri {
  std::string host = "127.0.0.1";
  std::string port = "5672";
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";
};
// Throws std::invalid_argument.
Uri parse_uri(std::string_view text);

class AmqpClient {
 public:
  // Receives a channel's methods once complete. Deliveries pass only the first bytes of the
  // body (`head`, at most kHeadSize), which is all the load generator reads.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void on_deliver(uint64_t delivery_tag, bool redelivered, std::string_view head) = 0;
    virtual void on_ack(uint64_t delivery_tag, bool multiple) = 0;
    virtual void on_nack(uint64_t delivery_tag, bool multiple) = 0;
    virtual void on_return() = 0;
    // Any other method (basic.cancel from the broker, ...).
    virtual void on_other(uint16_t channel, const amqp::Method& m) = 0;
  };
  static constexpr size_t kHeadSize = 16;

  AmqpClient() = default;
  AmqpClient(const AmqpClient&) = delete;
  AmqpClient& operator=(const AmqpClient&) = delete;
  ~AmqpClient();

  // TCP connect plus the handshake (PLAIN, heartbeats off, the broker's frame_max), each
  // step bounded by `timeout`. `small_buffers` starts with an 8 KiB input buffer instead of
  // 1 MiB (it still grows for a large frame): for thousands of idle connections.
  // Throws PerfError.
  void connect(const Uri& uri, std::string_view connection_name,
               std::chrono::milliseconds timeout = std::chrono::seconds(30),
               bool small_buffers = false);
  void open_channel(uint16_t channel);

  // Sends `m` on `channel` and waits for the method `Reply` there. Throws PerfError (also
  // on channel.close or connection.close from the broker, or after `timeout`).
  template <typename Reply, typename M>
  void call(uint16_t channel, const M& m,
            std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    amqp::write_method_frame(out_, channel, m);
    flush_blocking(timeout);
    expect(channel, Reply::kClassId, Reply::kMethodId, timeout);
  }

  // Waits for `n` replies (class_id, method_id) on `channel`, for requests pipelined through
  // out(): e.g. many queue.bind sent in one write. Throws PerfError.
  void expect_replies(uint16_t channel, uint16_t class_id, uint16_t method_id, size_t n,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    flush_blocking(timeout);
    for (size_t i = 0; i < n; ++i) expect(channel, class_id, method_id, timeout);
  }

  // Sends connection.close and waits up to `timeout` for close-ok, then closes the socket.
  // Frames that arrive meanwhile are dropped. Never throws. (Closing the socket before
  // close-ok could make the broker drop publishes it has not read yet.)
  void close(std::chrono::milliseconds timeout = std::chrono::seconds(3));

  // Pending output; append frames here.
  std::string& out() { return out_; }
  size_t pending_out() const { return out_.size() - out_off_; }
  // Writes as much pending output as the socket takes. Returns true when nothing is pending.
  bool flush();
  void flush_blocking(std::chrono::milliseconds timeout);
  // Reads what the socket has (one recv into the free part of the input buffer). Returns the
  // number of bytes read, 0 when nothing was available. Throws PerfError on EOF or error.
  size_t read_some();
  // How many bytes the next read_some() can take at most; a read shorter than this drained
  // the socket.
  size_t read_room() const { return in_.size() - (in_end_ - in_begin_); }
  // Hands every complete frame in the input buffer to `h`.
  void process(Handler& h);
  // Waits until the socket is readable (or writable, when `want_write`) or `timeout` passes.
  // Returns poll's revents (0 on timeout).
  short wait(std::chrono::nanoseconds timeout, bool want_write);

  // Receives the deliveries and other methods that arrive while call() or expect_replies()
  // waits for a reply (e.g. deliveries for a first basic.consume before the consume-ok of a
  // second one); without it they are dropped.
  void set_handler(Handler* h) { setup_handler_ = h; }

  uint32_t frame_max() const { return frame_max_; }
  std::string_view server_product() const { return server_product_; }

 private:
  enum class Content { kNone, kDeliver, kReturn, kOther };

  // The next complete frame in the input buffer, or false.
  bool next_frame(amqp::Frame& f);
  // Reads until a method (class_id, method_id) arrives on `channel` and returns its payload
  // (valid until the next read); other channel frames are fed to the content tracker and
  // dropped.
  std::string_view expect(uint16_t channel, uint16_t class_id, uint16_t method_id,
              std::chrono::milliseconds timeout);
  // Handles a channel-0 frame; throws PerfError for connection.close.
  void on_channel0(const amqp::Frame& f);
  // Feeds one channel frame; calls `h` (may be null) when a command completes. Throws
  // PerfError on channel.close.
  void on_channel_frame(const amqp::Frame& f, Handler* h);
  [[noreturn]] void fail(const std::string& what);

  int fd_ = -1;
  std::string out_;
  size_t out_off_ = 0;
  std::vector<char> in_;
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  amqp::FrameParser parser_{131072};
  uint32_t frame_max_ = 131072;
  std::string server_product_;

  // Content in progress (method, then header, then body frames) on the current channel.
  Content content_ = Content::kNone;
  Handler* setup_handler_ = nullptr;
  uint64_t content_size_ = 0;
  uint64_t content_seen_ = 0;
  bool header_seen_ = false;
  uint64_t deliver_tag_ = 0;
  bool deliver_redelivered_ = false;
  char head_[kHeadSize] = {};
  size_t head_len_ = 0;
};

}  // namespace warren::perf
