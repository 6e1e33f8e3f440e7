#include "amqp/command_assembler.h"

#include <string>

namespace warren::amqp {

Method decode_method_exact(std::string_view payload, uint16_t cls, uint16_t mid) {
  Reader r(payload);
  try {
    Method m = decode_method(r);
    if (!r.at_end()) throw DecodeError("trailing bytes");
    return m;
  } catch (const DecodeError&) {
    // RabbitMQ: 501 "FRAME_ERROR - cannot decode <<argument bytes>>", with the method's ids.
    throw ConnectionError(ReplyCode::kFrameError,
                          "cannot decode " + erlang_octets(payload.substr(4)), cls, mid);
  }
}

namespace {
[[noreturn]] void unexpected(const std::string& text, uint16_t cls = 0, uint16_t mid = 0) {
  throw ConnectionError(ReplyCode::kUnexpectedFrame, text, cls, mid);
}
}  // namespace

void CommandAssembler::reset() {
  state_ = State::kMethod;
  body_size_ = 0;
  discard_ = false;
  overflowed_ = false;
  properties_.clear();
  body_.clear();
}

bool CommandAssembler::feed(const Frame& frame, Command& out) {
  switch (state_) {
    case State::kMethod: {
      if (frame.type != kFrameMethod) {
        unexpected("expected method frame, got non method frame instead");
      }
      Reader peek(frame.payload);
      const uint16_t cls = peek.u16();
      const uint16_t mid = peek.u16();
      if (!method_known(cls, mid)) throw UnknownMethod(cls, mid);
      class_id_ = cls;
      method_id_ = mid;
      if (method_has_content(cls, mid)) {
        // The method's string views must outlive the frame: keep a copy of its payload.
        method_bytes_.assign(frame.payload.data(), frame.payload.size());
        method_ = decode_method_exact(method_bytes_, cls, mid);
        state_ = State::kHeader;
        return false;
      }
      method_ = decode_method_exact(frame.payload, cls, mid);
      out.method = &method_;
      out.class_id = cls;
      out.method_id = mid;
      out.has_content = false;
      return true;
    }
    case State::kHeader: {
      if (frame.type != kFrameHeader) {
        unexpected("expected content header for class " + std::to_string(class_id_) +
                       ", got non content header frame instead",
                   class_id_, method_id_);
      }
      Reader r(frame.payload);
      const uint16_t cls = r.u16();
      const uint16_t weight = r.u16();
      const uint64_t size = r.u64();
      if (cls != class_id_) {
        unexpected("expected content header for class " + std::to_string(class_id_) +
                       ", got one for class " + std::to_string(cls) + " instead",
                   class_id_, method_id_);
      }
      if (weight != 0) {
        unexpected("content header weight must be zero", class_id_, method_id_);
      }
      const std::string_view props = r.bytes(r.remaining());
      properties_.assign(props.data(), props.size());
      body_size_ = size;
      declared_size_ = size;
      overflowed_ = false;
      discard_ = size > max_body_;
      body_.clear();
      if (!discard_) body_.reserve(size);
      if (size == 0) break;
      state_ = State::kBody;
      return false;
    }
    case State::kBody: {
      if (frame.type != kFrameBody) {
        unexpected("expected content body, got non content body frame instead", class_id_,
                   method_id_);
      }
      const uint64_t have = (discard_ ? 0 : body_.size()) + frame.payload.size();
      if (overflowed_ || frame.payload.size() > body_size_ || (!discard_ && have > body_size_)) {
        // Like RabbitMQ, a body longer than announced never completes: the next method
        // frame is then the error ("expected content body").
        overflowed_ = true;
        body_.clear();
        return false;
      }
      if (discard_) {
        body_size_ -= frame.payload.size();
        if (body_size_ != 0) return false;
      } else {
        body_.append(frame.payload.data(), frame.payload.size());
        if (body_.size() != body_size_) return false;
      }
      break;
    }
  }
  // A content command is complete.
  state_ = State::kMethod;
  if (discard_) {
    discard_ = false;
    throw ChannelError(ReplyCode::kPreconditionFailed,
                       "message size " + std::to_string(declared_size_) +
                           " is larger than configured max size " + std::to_string(max_body_),
                       class_id_, method_id_);
  }
  out.method = &method_;
  out.class_id = class_id_;
  out.method_id = method_id_;
  out.has_content = true;
  out.properties = std::move(properties_);
  out.body = std::move(body_);
  properties_.clear();
  body_.clear();
  return true;
}

}  // namespace warren::amqp
