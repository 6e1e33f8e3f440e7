// FrameParser and frame writers: the AMQP 0-9-1 frame layer.
//
// parse() consumes bytes and says how many more it needs; it never touches a socket.
// Writers append complete frames (header, payload, frame-end) to an output buffer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/errors.h"
#include "amqp/methods.h"
#include "amqp/wire.h"

namespace warren::amqp {

inline constexpr size_t kFrameHeaderSize = 7;  // type, channel, size
inline constexpr size_t kFrameOverhead = 8;    // header plus frame-end octet

struct Frame {
  uint8_t type = 0;
  uint16_t channel = 0;
  std::string_view payload;  // view into the parser's input
};

class FrameParser {
 public:
  // `max_frame` bounds the whole frame including its 8 bytes of overhead, as frame_max does.
  explicit FrameParser(uint32_t max_frame) : max_frame_(max_frame) {}
  void set_max_frame(uint32_t max_frame) { max_frame_ = max_frame; }
  uint32_t max_frame() const { return max_frame_; }

  // Parses one frame at the start of [data, data+len). Returns the bytes consumed, or 0 when
  // more input is needed. Throws ConnectionError 501 FRAME_ERROR for a payload over
  // frame_max, a bad frame-end octet, an unknown frame type, or a method, header or heartbeat
  // payload of impossible size.
  size_t parse(const uint8_t* data, size_t len, Frame& out) const;

 private:
  uint32_t max_frame_;
};

// RabbitMQ's description of a bad frame: "type 1, all octets = <<0,20>>: reason".
std::string frame_error_text(uint8_t type, std::string_view payload, std::string_view reason);
std::string erlang_octets(std::string_view bytes);

// Appends a method frame.
template <typename M>
void write_method_frame(std::string& out, uint16_t channel, const M& m) {
  Writer w(out);
  w.u8(kFrameMethod);
  w.u16(channel);
  const size_t at = w.size();
  w.u32(0);
  w.u16(M::kClassId);
  w.u16(M::kMethodId);
  m.encode(w);
  w.patch_u32(at, static_cast<uint32_t>(w.size() - at - 4));
  w.u8(kFrameEnd);
}

// Appends a content header frame with the given raw property bytes (flags included).
void write_header_frame(std::string& out, uint16_t channel, uint64_t body_size,
                        std::string_view raw_properties);
// Appends the 7-byte header of a body frame (the caller appends the payload and frame-end).
void write_body_frame_header(std::string& out, uint16_t channel, uint32_t size);
void write_heartbeat_frame(std::string& out);

}  // namespace warren::amqp
