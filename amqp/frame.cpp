#include "amqp/frame.h"

namespace warren::amqp {

size_t FrameParser::parse(const uint8_t* data, size_t len, Frame& out) const {
  if (len < kFrameHeaderSize) return 0;
  const uint8_t type = data[0];
  const uint16_t channel = static_cast<uint16_t>((data[1] << 8) | data[2]);
  const uint32_t size = (uint32_t{data[3]} << 24) | (uint32_t{data[4]} << 16) |
                        (uint32_t{data[5]} << 8) | data[6];
  if (type != kFrameMethod && type != kFrameHeader && type != kFrameBody &&
      type != kFrameHeartbeat) {
    throw ConnectionError(ReplyCode::kFrameError,
                          "type " + std::to_string(type) + ", first 16 octets = <<>>: "
                          "{invalid_frame_type," + std::to_string(type) + "}");
  }
  if (max_frame_ != 0 && uint64_t{size} + kFrameOverhead > max_frame_) {
    throw ConnectionError(ReplyCode::kFrameError,
                          "frame size " + std::to_string(size + kFrameOverhead) +
                              " exceeds frame_max " + std::to_string(max_frame_));
  }
  const size_t total = kFrameHeaderSize + size_t{size} + 1;
  if (len < total) return 0;
  if (data[total - 1] != kFrameEnd) {
    throw ConnectionError(ReplyCode::kFrameError, "bad frame end octet");
  }
  out.type = type;
  out.channel = channel;
  out.payload = std::string_view(reinterpret_cast<const char*>(data + kFrameHeaderSize), size);
  return total;
}

void write_header_frame(std::string& out, uint16_t channel, uint64_t body_size,
                        std::string_view raw_properties) {
  Writer w(out);
  w.u8(kFrameHeader);
  w.u16(channel);
  w.u32(static_cast<uint32_t>(12 + raw_properties.size()));
  w.u16(kClassBasic);
  w.u16(0);
  w.u64(body_size);
  w.raw(raw_properties);
  w.u8(kFrameEnd);
}

void write_body_frame_header(std::string& out, uint16_t channel, uint32_t size) {
  Writer w(out);
  w.u8(kFrameBody);
  w.u16(channel);
  w.u32(size);
}

void write_heartbeat_frame(std::string& out) {
  static constexpr char kHeartbeat[8] = {8, 0, 0, 0, 0, 0, 0, static_cast<char>(0xCE)};
  out.append(kHeartbeat, 8);
}

}  // namespace warren::amqp
