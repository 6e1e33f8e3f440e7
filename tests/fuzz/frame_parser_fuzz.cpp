// libFuzzer target: FrameParser over arbitrary bytes.
//
// The first input byte picks frame_max (0 = unlimited, or 4096 << n); the rest is parsed as
// a stream of frames. Oracles: parse() either needs more bytes (0), consumes exactly one
// frame (header + payload + frame-end, within the input, payload no larger than frame_max
// and a view at offset 7), or throws ConnectionError 501; re-serialising a frame gives back the
// consumed bytes; every strict prefix of a frame needs more bytes or fails the same way.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "amqp/errors.h"
#include "amqp/frame.h"

using namespace warren::amqp;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint32_t max = data[0] % 7 == 0 ? 0 : kFrameMinSize << (data[0] % 7 - 1);
  FrameParser parser(max);
  size_t at = 1;
  while (at < size) {
    Frame f;
    size_t n = 0;
    try {
      n = parser.parse(data + at, size - at, f);
    } catch (const ConnectionError& e) {
      check(e.code == ReplyCode::kFrameError);
      return 0;
    }
    if (n == 0) {
      check(size - at < kFrameOverhead || size - at < kFrameHeaderSize + 1 +
                                                      ((uint32_t{data[at + 3]} << 24) |
                                                       (uint32_t{data[at + 4]} << 16) |
                                                       (uint32_t{data[at + 5]} << 8) | data[at + 6]));
      return 0;
    }
    check(n <= size - at);
    check(n == f.payload.size() + kFrameOverhead);
    check(max == 0 || f.payload.size() <= max);  // RabbitMQ: a payload may fill frame_max
    check(reinterpret_cast<const uint8_t*>(f.payload.data()) == data + at + kFrameHeaderSize);
    check(f.type == kFrameMethod || f.type == kFrameHeader || f.type == kFrameBody ||
          f.type == kFrameHeartbeat);
    check(data[at + n - 1] == kFrameEnd);

    std::string again;
    Writer w(again);
    w.u8(f.type);
    w.u16(f.channel);
    w.u32(static_cast<uint32_t>(f.payload.size()));
    w.raw(f.payload);
    w.u8(kFrameEnd);
    check(again.size() == n && std::memcmp(again.data(), data + at, n) == 0);

    // A strict prefix never yields a frame.
    for (size_t cut : {size_t{0}, size_t{6}, size_t{7}, n / 2, n - 1}) {
      if (cut >= n) continue;
      Frame g;
      check(parser.parse(data + at, cut, g) == 0);
    }
    at += n;
  }
  return 0;
}
