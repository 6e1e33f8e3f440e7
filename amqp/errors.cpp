#include "amqp/errors.h"

namespace warren::amqp {

std::string AmqpError::reply_text() const {
  std::string t(reply_code_name(code));
  t += " - ";
  t += what();
  if (t.size() > 255) t.resize(255);
  return t;
}

}  // namespace warren::amqp
