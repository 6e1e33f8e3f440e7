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
  // Heartbeat interval negotiated (0 = off); the transport sends and checks heartbeats.
  virtual void start_heartbeat(uint16_t seconds) = 0;
  // The connection is open: stop the handshake timer.
  virtual void handshake_complete() = 0;
  // The connection sent connection.close: close the socket if close-ok does not come.
  virtual void start_close_timer() = 0;
};

}  // namespace warren::broker
