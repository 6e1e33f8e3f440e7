// CommandAssembler: turns one channel's frames into commands (method, then header, then body).
//
// A pure state machine, one per channel, owned by the channel's connection (single thread).
// Checks frame order and the body against its announced size as RabbitMQ's
// rabbit_command_assembler does; every violation is 505 UNEXPECTED_FRAME (connection level).
#pragma once

#include <cstdint>
#include <string>

#include "amqp/frame.h"
#include "amqp/methods.h"

namespace warren::amqp {

// A complete command. `method` views stay valid until the next feed() on the assembler.
struct Command {
  const Method* method = nullptr;
  uint16_t class_id = 0;
  uint16_t method_id = 0;
  bool has_content = false;
  std::string properties;  // raw property bytes (flags included); moved out by the consumer
  std::string body;        // reassembled body; moved out by the consumer
};

// Decodes a method payload that must be consumed exactly. Throws ConnectionError 501
// ("cannot decode <<...>>", with the method's ids) when it is cut short or too long.
Method decode_method_exact(std::string_view payload, uint16_t class_id, uint16_t method_id);

class CommandAssembler {
 public:
  enum class State { kMethod, kHeader, kBody };

  // Bodies larger than this get 406 (RabbitMQ's max_message_size) once the header arrives.
  explicit CommandAssembler(uint64_t max_body_size = 134217728) : max_body_(max_body_size) {}

  // Feeds one frame (method, header or body) of this channel. Returns true when `out` holds a
  // complete command. Throws ConnectionError (505 UNEXPECTED_FRAME), DecodeError,
  // UnknownMethod, or ChannelError (406) for an oversize body after the frame is consumed.
  bool feed(const Frame& frame, Command& out);

  State state() const { return state_; }
  // Forgets a partly assembled command (after a channel close).
  void reset();

 private:
  State state_ = State::kMethod;
  uint64_t max_body_;
  uint64_t body_size_ = 0;
  uint64_t declared_size_ = 0;  // the header's body size (for the oversize error)
  bool discard_ = false;  // body over max size: consume frames, then report
  bool overflowed_ = false;  // more body than announced: wait for the next method
  std::string method_bytes_;  // owned copy of a content method's payload
  Method method_;
  uint16_t class_id_ = 0;
  uint16_t method_id_ = 0;
  std::string properties_;
  std::string body_;
};

}  // namespace warren::amqp
