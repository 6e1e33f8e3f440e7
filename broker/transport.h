// Transport: what a Connection needs from its socket, so the Connection stays sans-I/O.
//
// Implemented by TcpSession (Asio) and by a fake in the unit tests. Called on the
// connection's shard thread only.
#pragma once

#include <cstdint>

namespace warren::broker {

class Transport {
 public:
  virtual ~Transport() = default;
  // The connection's OutBuffer has data: write it soon (coalesced, not per call).
  virtual void request_flush() = 0;
  // Write what is pending, then close the socket.
  virtual void close_after_flush() = 0;
  // Close the socket now, dropping pending output.
  virtual void abort() = 0;
  // Stop reading and close the socket after `ms` without sending anything (RabbitMQ's
  // silent close of a failed handshake, which also slows down password guessing).
  virtual void close_silently(uint32_t ms) = 0;
  // Write what is pending, ignore further input, and close when the peer does or after
  // `ms` (after connection.close-ok the client is the one to close).
  virtual void linger(uint32_t ms) = 0;
  // Stops (true) or resumes (false) reading the socket: a blocked publisher is not read.
  virtual void pause_reading(bool paused) = 0;
  // Holds (true) or releases (false) input: while held, bytes already read stay buffered and
  // the socket is not read; on release the buffered bytes are handed to the connection
  // again, then reading goes on. A basic.get waits this way for a paged-out message.
  virtual void hold_input(bool held) = 0;
  // Heartbeat interval negotiated (0 = off); the transport sends and checks heartbeats.
  virtual void start_heartbeat(uint16_t seconds) = 0;
  // The connection is open: stop the handshake timer.
  virtual void handshake_complete() = 0;
  // The connection sent connection.close: close the socket if close-ok does not come
  // within `ms`.
  virtual void start_close_timer(uint32_t ms) = 0;
  // The connection has been idle for a while: give back the memory of empty write buffers.
  virtual void release_idle_buffers() {}
};

}  // namespace warren::broker
