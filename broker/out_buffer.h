// OutBuffer: a connection's pending output, written with one gathered write.
//
// Small data (frame headers, methods, small bodies) is appended to one byte string; large
// bodies are referenced, not copied, and the reference keeps the message alive until the
// write completes. Owned by one connection; single-threaded.
#pragma once

#include <boost/asio/buffer.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.h"

namespace warren::broker {

class OutBuffer {
 public:
  // Bodies at least this large are referenced instead of copied.
  static constexpr size_t kRefThreshold = 4096;

  std::string& bytes() { return bytes_; }
  // Appends `data` (which must live inside `owner`) without copying it.
  void append_ref(MessagePtr owner, std::string_view data);
  size_t size() const { return bytes_.size() + ref_bytes_; }
  bool empty() const { return bytes_.empty() && refs_.empty(); }
  void clear();
  // Gives the memory back (an idle connection); REQUIRES: empty().
  void release() {
    std::string().swap(bytes_);
    std::vector<Ref>().swap(refs_);
  }
  // The buffers of one gathered write, in order. Valid until the next change.
  void gather(std::vector<boost::asio::const_buffer>& out) const;
  // The whole content as one string (tests).
  std::string flatten() const;

 private:
  struct Ref {
    size_t at;  // offset in bytes_ before which the referenced data goes
    MessagePtr owner;
    std::string_view data;
  };
  std::string bytes_;
  std::vector<Ref> refs_;
  size_t ref_bytes_ = 0;
};

}  // namespace warren::broker
