// Connection: the AMQP connection state machine, sans-I/O (bytes in, frames out).
//
// Owned by its TcpSession on the connection's shard thread. Handshake is an enum state
// machine: header -> start/start-ok -> tune/tune-ok -> open -> open. Connection errors are
// caught only in on_bytes(): it sends connection.close and drops everything but close-ok.
// Channel errors are caught at the channel boundary (dispatch_channel_frame).
#pragma once

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/peer_identity.h"
#include "amqp/command_assembler.h"
#include "amqp/errors.h"
#include "amqp/frame.h"
#include "amqp/methods.h"
#include "broker/message_stats.h"
#include "broker/out_buffer.h"
#include "broker/transport.h"

namespace warren::broker {

class Broker;
class Channel;
class VHost;
class Queue;

class Connection {
 public:
  enum class State {
    kAwaitHeader,
    kAwaitStartOk,
    kAwaitTuneOk,
    kAwaitOpen,
    kOpen,
    kClosing,  // we sent connection.close; waiting for close-ok
    kClosed,
  };

  Connection(Broker& broker, Transport& transport, std::string peer, bool peer_is_loopback);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Consumes complete frames from [data, data+len); returns the bytes consumed. Leftover
  // bytes are a partial frame the caller keeps. Never throws.
  size_t on_bytes(const uint8_t* data, size_t len);
  // After a batch of on_bytes: sends what was deferred (confirms) and requests a flush.
  void end_of_input_batch();
  // The socket is gone (EOF, error, timeout): release channels, queues, consumers.
  void on_transport_closed();
  // Heartbeats were missed or the handshake timed out: log and drop.
  void on_heartbeat_timeout();
  void on_handshake_timeout();
  // Resource alarm on or off: a connection that publishes is told (connection.blocked, when
  // it advertises the capability) and is not read while the alarm lasts.
  void apply_alarm(bool alarmed, const std::string& reason);
  void note_publish() { published_ = true; }
  // TLS: the client certificate's identity, known before the AMQP header arrives.
  void set_peer_identity(auth::PeerIdentity id) {
    tls_ = true;
    peer_identity_ = std::move(id);
  }

  // Flow control (RabbitMQ's "flow" connection state): stop reading this publisher until
  // the broker catches up; flow_resume() reads again unless an alarm still blocks it.
  void flow_pause();
  void flow_resume();
  // Paused because `q` is being consumed slower than it is filled (Queue::kFlowHigh).
  void flow_pause_for(Queue& q);
  void flow_resume_from(Queue& q);
  // Safety valve (broker tick): a connection paused this long is read again, so one that
  // also carries the acks its queue waits for cannot deadlock.
  void check_flow(int64_t now);
  // After a second without reading or writing, releases the memory of empty output buffers
  // (the broker's tick calls it): 10,000 idle connections cost little.
  void trim_if_idle(int64_t now);
  bool in_flow() const { return flow_paused_; }
  // Stops handling frames after the current one until release_input() (see Transport).
  void hold_input() {
    input_held_ = true;
    transport_.hold_input(true);
  }
  void release_input() {
    input_held_ = false;
    transport_.hold_input(false);
  }
  bool blocked() const { return blocked_; }
  // Drops the socket at once (broker shutdown).
  void abort_transport() { transport_.abort(); }
  // Closes with 320 CONNECTION_FORCED (shutdown, admin close).
  void close_forced(const std::string& reason);
  // Closes channels whose oldest unacked delivery is older than consumer_timeout.
  void check_consumer_timeouts(int64_t now);
  // Output drained below the high-water mark: deliveries may resume.
  void on_output_drained();

  // Management (read on the connection's thread): RabbitMQ's connection name is
  // "PEER -> LOCAL", and the rest mirrors the fields of /api/connections.
  void set_local(std::string local) { local_ = std::move(local); }
  const std::string& local() const { return local_; }
  std::string name() const { return peer_ + " -> " + local_; }
  int64_t connected_at() const { return connected_at_; }
  // Decoded on demand from the bytes the client sent (the management API, capabilities):
  // an idle connection keeps a few hundred bytes instead of a tree of tables.
  amqp::FieldTable client_properties() const;
  uint16_t channel_max() const { return channel_max_; }
  uint16_t heartbeat() const { return heartbeat_; }
  const std::string& auth_mechanism() const { return mechanism_; }
  const std::unordered_map<uint16_t, std::unique_ptr<Channel>>& channels() const {
    return channels_;
  }
  // Permission decisions already made for this connection's user (broker/channel_access.cpp).
  struct PermissionCache {
    uint64_t generation = ~uint64_t{0};
    std::unordered_map<std::string, bool> decisions;
    // Topic permission patterns with {username}/{vhost} expanded, by access and exchange;
    // nullopt: no topic permission for that exchange (everything allowed).
    std::unordered_map<std::string, std::optional<std::string>> topic_patterns;
    std::string key;  // the lookup key, rebuilt in place: no allocation per check once warm
  };
  PermissionCache& permission_cache() { return permission_cache_; }

  State state() const { return state_; }
  OutBuffer& out() { return out_; }
  bool write_blocked() const { return out_.size() > kOutputHighWater; }
  Broker& broker() { return broker_; }
  VHost* vhost() { return vhost_; }
  const std::string& user() const { return user_; }
  const std::string& peer() const { return peer_; }
  uint32_t frame_max() const { return frame_max_; }
  // The client capabilities the broker acts on (connection.start-ok's client_properties).
  enum Capability : uint8_t {
    kConsumerCancelNotify = 1,
    kConnectionBlocked = 2,
    kAuthenticationFailureClose = 4,
  };
  bool client_capability(Capability c) const { return (capabilities_ & c) != 0; }
  void request_flush() { transport_.request_flush(); }

  // Frame writers for channels.
  template <typename M>
  void send_method(uint16_t channel, const M& m) {
    amqp::write_method_frame(out_.bytes(), channel, m);
    transport_.request_flush();
  }
  // Writes a content method, its header and its body split at frame_max.
  template <typename M>
  void send_content(uint16_t channel, const M& m, const MessagePtr& msg) {
    amqp::write_method_frame(out_.bytes(), channel, m);
    write_content(channel, msg);
  }
  void send_heartbeat();

  static constexpr size_t kOutputHighWater = 1 << 20;

 private:
  void write_content(uint16_t channel, const MessagePtr& msg);
  void handle_frame(const amqp::Frame& f);
  void handle_connection_method(const amqp::Frame& f);
  void dispatch_channel_frame(const amqp::Frame& f);
  void on_start_ok(const amqp::ConnectionStartOk& m);
  void on_tune_ok(const amqp::ConnectionTuneOk& m);
  void on_open(const amqp::ConnectionOpen& m);
  void send_start(bool amqp_0_8);
  // A handshake that cannot go on: log, send nothing, close after RabbitMQ's 3 s delay.
  void silent_close(const std::string& why);
  void open_channel_frame(const amqp::Frame& f);
  // Sends connection.close and enters kClosing.
  // Before the connection is tuned, RabbitMQ closes silently; `even_in_handshake` sends the
  // close anyway (a refused login to a client with authentication_failure_close).
  void fail(const amqp::AmqpError& e, bool even_in_handshake = false);
  void release_channels();

 public:
  // Samples the message rates of its channels (Broker::sample_stats).
  void sample_stats(double seconds);
  // Bytes and socket reads/writes (RabbitMQ's recv_oct, send_oct, recv_cnt, send_cnt).
  void count_received(size_t bytes) {
    recv_oct_.total += bytes;
    ++recv_cnt_;
  }
  void count_sent(size_t bytes) {
    send_oct_.total += bytes;
    ++send_cnt_;
  }
  const CounterRate& recv_oct() const { return recv_oct_; }
  const CounterRate& send_oct() const { return send_oct_; }
  uint64_t recv_cnt() const { return recv_cnt_; }
  uint64_t send_cnt() const { return send_cnt_; }

 private:
  void close_channel(uint16_t id);

  Broker& broker_;
  Transport& transport_;
  std::string peer_;
  bool peer_is_loopback_;
  State state_ = State::kAwaitHeader;
  amqp::FrameParser parser_;
  OutBuffer out_;

  std::string user_;
  std::string local_;
  std::string mechanism_;
  int64_t connected_at_ = 0;  // wall clock, ms
  PermissionCache permission_cache_;
  VHost* vhost_ = nullptr;
  std::string client_properties_;  // encoded field table
  uint8_t capabilities_ = 0;  // Capability bits, read once from client_properties
  uint16_t channel_max_ = 2047;
  uint32_t frame_max_ = 131072;
  uint16_t heartbeat_ = 0;
  bool released_ = false;
  bool published_ = false;
  bool blocked_ = false;
  bool input_held_ = false;
  bool tls_ = false;
  auth::PeerIdentity peer_identity_;
  // The SASL mechanisms connection.start offers on this connection.
  std::vector<std::string> offered_mechanisms() const;
  bool flow_paused_ = false;
  int64_t flow_since_ms_ = 0;
  std::vector<boost::intrusive_ptr<Queue>> flow_queues_;

  std::unordered_map<uint16_t, std::unique_ptr<Channel>> channels_;
  CounterRate recv_oct_, send_oct_;
  uint64_t activity_seen_ = 0;  // recv_cnt_ + send_cnt_ at the last trim check
  int64_t idle_since_ = 0;
  bool trimmed_ = false;
  uint64_t recv_cnt_ = 0, send_cnt_ = 0;
  // Content methods arriving on channels that are not open are assembled before they are
  // refused, as RabbitMQ does (the 504 names the method once its content is complete).
  std::unordered_map<uint16_t, amqp::CommandAssembler> unopened_;
};

}  // namespace warren::broker
