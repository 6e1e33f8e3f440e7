#include "broker/out_buffer.h"

namespace warren::broker {

void OutBuffer::append_ref(MessagePtr owner, std::string_view data) {
  refs_.push_back(Ref{bytes_.size(), std::move(owner), data});
  ref_bytes_ += data.size();
}

void OutBuffer::clear() {
  bytes_.clear();
  refs_.clear();
  ref_bytes_ = 0;
}

void OutBuffer::gather(std::vector<boost::asio::const_buffer>& out) const {
  size_t pos = 0;
  for (const Ref& r : refs_) {
    if (r.at > pos) out.emplace_back(bytes_.data() + pos, r.at - pos);
    out.emplace_back(r.data.data(), r.data.size());
    pos = r.at;
  }
  if (bytes_.size() > pos) out.emplace_back(bytes_.data() + pos, bytes_.size() - pos);
}

std::string OutBuffer::flatten() const {
  std::vector<boost::asio::const_buffer> bufs;
  gather(bufs);
  std::string s;
  for (const auto& b : bufs) s.append(static_cast<const char*>(b.data()), b.size());
  return s;
}

}  // namespace warren::broker
