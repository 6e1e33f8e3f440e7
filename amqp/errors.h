// Protocol faults. Thrown by codec and broker code, caught in exactly two places: the
// channel boundary (ChannelError -> channel.close) and the connection's read loop
// (ConnectionError -> connection.close). The dispatcher fills in class and method ids.
#pragma once

#include <stdexcept>
#include <string>

#include "amqp/methods.h"

namespace warren::amqp {

class AmqpError : public std::runtime_error {
 public:
  AmqpError(ReplyCode code, std::string text, uint16_t class_id = 0, uint16_t method_id = 0)
      : std::runtime_error(text), code(code), class_id(class_id), method_id(method_id) {}
  ReplyCode code;
  uint16_t class_id;
  uint16_t method_id;
  // When set, the dispatcher leaves class and method ids as they are (0/0 included).
  bool keep_ids = false;
  // The stream cannot go on (bad frame end, oversize frame): the socket closes shortly
  // after connection.close even without close-ok.
  bool fatal = false;
  // "NOT_FOUND - no queue 'q' in vhost '/'", cut to the 255 bytes a shortstr holds.
  std::string reply_text() const;
};

// Closes the channel only (soft codes: 403, 404, 405, 406).
class ChannelError : public AmqpError {
 public:
  using AmqpError::AmqpError;
};

// Closes the whole connection (hard codes: 320, 402, 501-506, 530, 540, 541).
class ConnectionError : public AmqpError {
 public:
  using AmqpError::AmqpError;
};

}  // namespace warren::amqp
