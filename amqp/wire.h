// Reader and Writer: big-endian AMQP primitives over byte spans.
//
// Pure codec (no I/O, no broker types); used on every thread. A Reader never reads past
// its end: underflow throws DecodeError, which the connection maps to 502 SYNTAX_ERROR
// (RabbitMQ closes the connection on a malformed frame payload). Strings returned by a
// Reader are views into the input and live only as long as it.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace warren::amqp {

// A frame payload that cannot be decoded.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A method frame whose (class, method) pair the spec does not define.
class UnknownMethod : public std::runtime_error {
 public:
  UnknownMethod(uint16_t class_id, uint16_t method_id)
      : std::runtime_error("unknown method"), class_id(class_id), method_id(method_id) {}
  uint16_t class_id;
  uint16_t method_id;
};

class Reader {
 public:
  Reader(const void* data, size_t size)
      : p_(static_cast<const uint8_t*>(data)), end_(p_ + size) {}
  explicit Reader(std::string_view s) : Reader(s.data(), s.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool at_end() const { return p_ == end_; }
  const uint8_t* position() const { return p_; }

  uint8_t u8() {
    need(1);
    return *p_++;
  }
  uint16_t u16() {
    need(2);
    uint16_t v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return v;
  }
  uint32_t u32() {
    need(4);
    uint32_t v = (uint32_t{p_[0]} << 24) | (uint32_t{p_[1]} << 16) | (uint32_t{p_[2]} << 8) | p_[3];
    p_ += 4;
    return v;
  }
  uint64_t u64() {
    uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  std::string_view bytes(size_t n) {
    need(n);
    std::string_view v(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return v;
  }
  std::string_view shortstr() { return bytes(u8()); }
  std::string_view longstr() { return bytes(u32()); }

 private:
  void need(size_t n) const {
    if (remaining() < n) throw DecodeError("truncated frame payload");
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

// Appends to a caller-owned std::string used as a byte buffer.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  size_t size() const { return out_.size(); }
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) {
    char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    out_.append(b, 2);
  }
  void u32(uint32_t v) {
    char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                 static_cast<char>(v)};
    out_.append(b, 4);
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  void raw(std::string_view s) { out_.append(s.data(), s.size()); }
  // REQUIRES: s.size() <= 255 (longer strings are cut, never sent malformed).
  void shortstr(std::string_view s) {
    if (s.size() > 255) s = s.substr(0, 255);
    u8(static_cast<uint8_t>(s.size()));
    raw(s);
  }
  void longstr(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    raw(s);
  }
  // Overwrites 4 bytes at `pos` (for lengths known only after writing).
  void patch_u32(size_t pos, uint32_t v) {
    out_[pos] = static_cast<char>(v >> 24);
    out_[pos + 1] = static_cast<char>(v >> 16);
    out_[pos + 2] = static_cast<char>(v >> 8);
    out_[pos + 3] = static_cast<char>(v);
  }
  std::string& buffer() { return out_; }

 private:
  std::string& out_;
};

}  // namespace warren::amqp
