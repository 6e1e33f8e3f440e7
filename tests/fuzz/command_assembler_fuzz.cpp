// libFuzzer target: CommandAssembler over arbitrary frame sequences.
//
// Input format (compact, so the fuzzer need not guess frame-end octets): byte 0 picks the
// maximum body size (0..255 bytes, or 128 MiB when it is 255); then records of
//   [kind: 1 byte][length: 2 bytes big-endian][payload: length bytes, cut at the end]
// where kind & 3 selects a method, header, body or heartbeat frame.
// Oracles: feed() only throws AmqpError (505 or 501 connection-level, 406 channel-level),
// DecodeError or UnknownMethod; a completed content command has exactly the body size its
// header announced and at most the maximum; after a ChannelError the assembler is back at
// kMethod; a completed command's method alternative matches its class and method ids.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "amqp/command_assembler.h"
#include "amqp/errors.h"

using namespace warren::amqp;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint8_t kKinds[4] = {kFrameMethod, kFrameHeader, kFrameBody, kFrameHeartbeat};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint64_t max_body = data[0] == 255 ? 134217728 : data[0];
  CommandAssembler a(max_body);
  uint64_t announced = 0;
  size_t at = 1;
  while (at + 3 <= size) {
    Frame f;
    f.type = kKinds[data[at] & 3];
    f.channel = 1;
    size_t len = (size_t{data[at + 1]} << 8) | data[at + 2];
    at += 3;
    if (len > size - at) len = size - at;
    // The payload is copied so ASan sees reads past it.
    const std::string payload(reinterpret_cast<const char*>(data + at), len);
    f.payload = payload;
    at += len;

    if (f.type == kFrameHeader && a.state() == CommandAssembler::State::kHeader &&
        payload.size() >= 12) {
      announced = 0;
      for (int i = 4; i < 12; ++i) announced = (announced << 8) | static_cast<uint8_t>(payload[i]);
    }
    Command cmd;
    try {
      if (!a.feed(f, cmd)) continue;
    } catch (const ChannelError& e) {
      check(e.code == ReplyCode::kPreconditionFailed);
      check(a.state() == CommandAssembler::State::kMethod);
      continue;
    } catch (const ConnectionError& e) {
      // 505 for frames out of order, 501 for method arguments that do not decode.
      check(e.code == ReplyCode::kUnexpectedFrame || e.code == ReplyCode::kFrameError);
      a.reset();  // the connection would close; start over to explore further
      continue;
    } catch (const DecodeError&) {
      a.reset();
      continue;
    } catch (const UnknownMethod&) {
      a.reset();
      continue;
    }
    check(cmd.method != nullptr);
    check(method_class_id(*cmd.method) == cmd.class_id);
    check(method_method_id(*cmd.method) == cmd.method_id);
    check(cmd.has_content == method_has_content(cmd.class_id, cmd.method_id));
    if (cmd.has_content) {
      check(cmd.body.size() == announced);
      check(cmd.body.size() <= max_body);
    }
    check(a.state() == CommandAssembler::State::kMethod);
  }
  return 0;
}
