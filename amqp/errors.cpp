#include "amqp/errors.h"

#include <string_view>

namespace warren::amqp {

std::string AmqpError::reply_text() const {
  std::string t(reply_code_name(code));
  if (std::string_view(what()).empty()) return t;  // e.g. a bare "INTERNAL_ERROR"
  t += " - ";
  t += what();
  // RabbitMQ keeps a shortstr's 255 bytes by cutting at 252 and appending "...".
  if (t.size() > 255) {
    t.resize(252);
    t += "...";
  }
  return t;
}

}  // namespace warren::amqp
