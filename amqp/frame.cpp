#include "amqp/frame.h"

#include <algorithm>

namespace warren::amqp {

std::string erlang_octets(std::string_view bytes) {
  // Erlang's <<1,2,3>> notation, as RabbitMQ prints frames in errors; long ones are cut.
  std::string s = "<<";
  const size_t n = std::min<size_t>(bytes.size(), 32);
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ',';
    s += std::to_string(static_cast<unsigned char>(bytes[i]));
  }
  if (n < bytes.size()) s += ",...";
  s += ">>";
  return s;
}

std::string frame_error_text(uint8_t type, std::string_view payload, std::string_view reason) {
  std::string t = "type " + std::to_string(type) + ", all octets = " + erlang_octets(payload);
  if (!reason.empty()) {
    t += ": ";
    t += reason;
  }
  return t;
}

size_t FrameParser::parse(const uint8_t* data, size_t len, Frame& out) const {
  if (len < kFrameHeaderSize) return 0;
  const uint8_t type = data[0];
  const uint16_t channel = static_cast<uint16_t>((data[1] << 8) | data[2]);
  const uint32_t size = (uint32_t{data[3]} << 24) | (uint32_t{data[4]} << 16) |
                        (uint32_t{data[5]} << 8) | data[6];
  // RabbitMQ's reader checks, in order: the size against frame_max (a payload may be as
  // large as frame_max; the text quotes frame_max - 8), the end octet, then the type.
  if (max_frame_ != 0 && size > max_frame_) {
    ConnectionError e(ReplyCode::kFrameError,
                      frame_error_text(type, {}, "{frame_too_large," + std::to_string(size) + "," +
                                                     std::to_string(max_frame_ - 8) + "}"));
    e.fatal = true;
    throw e;
  }
  const size_t total = kFrameHeaderSize + size_t{size} + 1;
  if (len < total) return 0;
  const std::string_view payload(reinterpret_cast<const char*>(data + kFrameHeaderSize), size);
  if (data[total - 1] != kFrameEnd) {
    ConnectionError e(ReplyCode::kFrameError,
                      frame_error_text(type, payload, "{invalid_frame_end_marker," +
                                                          std::to_string(data[total - 1]) + "}"));
    e.fatal = true;
    throw e;
  }
  const bool well_formed = (type == kFrameMethod && size >= 4) ||
                           (type == kFrameHeader && size >= 12) || type == kFrameBody ||
                           (type == kFrameHeartbeat && size == 0);
  if (!well_formed) {
    throw ConnectionError(ReplyCode::kFrameError, frame_error_text(type, payload, "unknown_frame"));
  }
  out.type = type;
  out.channel = channel;
  out.payload = payload;
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
