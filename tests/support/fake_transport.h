// FakeTransport: a broker::Transport that records what the Connection asked of its socket.
//
// Used by the sans-I/O Connection/Channel unit tests and by connection_fuzz. Single-threaded,
// like the Connection it serves; the output bytes stay in the Connection's OutBuffer.
#pragma once

#include <cstdint>

#include "broker/transport.h"

namespace warren::testing {

class FakeTransport : public broker::Transport {
 public:
  void request_flush() override { ++flush_requests; }
  void close_after_flush() override { closed_after_flush = true; }
  void abort() override { aborted = true; }
  void close_silently(uint32_t ms) override {
    closed_silently = true;
    silent_close_ms = ms;
  }
  void linger(uint32_t ms) override {
    lingering = true;
    linger_ms = ms;
  }
  void start_heartbeat(uint16_t seconds) override {
    heartbeat_started = true;
    heartbeat_seconds = seconds;
  }
  void handshake_complete() override { handshake_done = true; }
  void pause_reading(bool p) override { reading_paused = p; }
  void hold_input(bool h) override { input_held = h; }
  bool input_held = false;
  bool reading_paused = false;
  void start_close_timer(uint32_t ms) override {
    close_timer_started = true;
    close_timer_ms = ms;
  }

  int flush_requests = 0;
  bool closed_after_flush = false;
  bool aborted = false;
  bool closed_silently = false;
  uint32_t silent_close_ms = 0;
  bool lingering = false;
  uint32_t linger_ms = 0;
  bool heartbeat_started = false;
  uint16_t heartbeat_seconds = 0;
  bool handshake_done = false;
  bool close_timer_started = false;
  uint32_t close_timer_ms = 0;
};

}  // namespace warren::testing
