// amqp_reencode: reads AMQP 0-9-1 frames on stdin, decodes every method frame with
// decode_method and every content header with BasicProperties::decode, encodes them again
// and writes the frames to stdout. Body and heartbeat frames pass through unchanged.
//
// Used by tests/integration/test_codec_conformance.py to compare Warren's codec byte for
// byte with another implementation (pika.spec). Exits 1 with a message on stderr when a
// frame does not decode, leaves bytes unread, or the input ends inside a frame.
#include <cstdio>
#include <exception>
#include <iostream>
#include <iterator>
#include <string>

#include "amqp/errors.h"
#include "amqp/frame.h"
#include "amqp/methods.h"
#include "amqp/properties.h"

using namespace warren::amqp;

namespace {

std::string reencode_payload(const Frame& f) {
  std::string out;
  Writer w(out);
  Reader r(f.payload);
  switch (f.type) {
    case kFrameMethod: {
      Method m = decode_method(r);
      if (!r.at_end()) throw DecodeError("trailing bytes after method arguments");
      encode_method(m, w);
      break;
    }
    case kFrameHeader: {
      const uint16_t class_id = r.u16();
      const uint16_t weight = r.u16();
      const uint64_t body_size = r.u64();
      if (class_id != kClassBasic) throw DecodeError("content header of a non-basic class");
      BasicProperties p = BasicProperties::decode(r.bytes(r.remaining()));
      w.u16(class_id);
      w.u16(weight);
      w.u64(body_size);
      p.encode(w);
      break;
    }
    default:
      w.raw(f.payload);
      break;
  }
  return out;
}

}  // namespace

int main() {
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::string out;
  FrameParser parser(0);  // no frame_max: the test decides frame sizes
  size_t at = 0;
  size_t index = 0;
  try {
    while (at < in.size()) {
      Frame f;
      const size_t n =
          parser.parse(reinterpret_cast<const uint8_t*>(in.data()) + at, in.size() - at, f);
      if (n == 0) {
        std::cerr << "frame " << index << ": input ends inside a frame\n";
        return 1;
      }
      const std::string payload = reencode_payload(f);
      Writer w(out);
      w.u8(f.type);
      w.u16(f.channel);
      w.u32(static_cast<uint32_t>(payload.size()));
      w.raw(payload);
      w.u8(kFrameEnd);
      at += n;
      ++index;
    }
  } catch (const UnknownMethod& e) {
    std::cerr << "frame " << index << ": unknown method " << e.class_id << "." << e.method_id
              << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "frame " << index << ": " << e.what() << "\n";
    return 1;
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}
