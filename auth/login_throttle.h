// LoginThrottle: slows down repeated failed logins from one address.
//
// Owned by the Broker, used on its thread; pure (the caller passes the time). Each failure
// from an address within `kWindowMs` of the previous one raises its count; a new
// connection from an address with `kFree` or more recent failures waits before its
// handshake is read: 200 ms doubled per further failure, at most 5 s. A successful login
// clears the address. The table is bounded: the oldest entries go first.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace warren::auth {

class LoginThrottle {
 public:
  static constexpr int kFree = 3;
  static constexpr int64_t kWindowMs = 60'000;
  static constexpr int64_t kMaxDelayMs = 5'000;
  static constexpr size_t kMaxAddresses = 10'000;

  void record_failure(std::string_view address, int64_t now_ms);
  void record_success(std::string_view address);
  // How long a new connection from `address` waits before its handshake is read.
  int64_t delay_ms(std::string_view address, int64_t now_ms) const;
  int failures(std::string_view address, int64_t now_ms) const;

 private:
  struct Entry {
    int count = 0;
    int64_t last_ms = 0;
  };
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace warren::auth
