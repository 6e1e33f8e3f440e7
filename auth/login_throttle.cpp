#include "auth/login_throttle.h"

#include <algorithm>

namespace warren::auth {

void LoginThrottle::record_failure(std::string_view address, int64_t now_ms) {
  auto it = entries_.find(address);
  if (it == entries_.end()) {
    if (entries_.size() >= kMaxAddresses) {
      auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
        return a.second.last_ms < b.second.last_ms;
      });
      entries_.erase(oldest);
    }
    it = entries_.emplace(std::string(address), Entry{}).first;
  }
  Entry& e = it->second;
  if (now_ms - e.last_ms > kWindowMs) e.count = 0;
  ++e.count;
  e.last_ms = now_ms;
}

void LoginThrottle::record_success(std::string_view address) {
  auto it = entries_.find(address);
  if (it != entries_.end()) entries_.erase(it);
}

int LoginThrottle::failures(std::string_view address, int64_t now_ms) const {
  auto it = entries_.find(address);
  if (it == entries_.end() || now_ms - it->second.last_ms > kWindowMs) return 0;
  return it->second.count;
}

int64_t LoginThrottle::delay_ms(std::string_view address, int64_t now_ms) const {
  const int n = failures(address, now_ms);
  if (n < kFree) return 0;
  const int doublings = std::min(n - kFree, 5);
  return std::min<int64_t>(200LL << doublings, kMaxDelayMs);
}

}  // namespace warren::auth
