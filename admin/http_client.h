// HttpClient: warrenctl's blocking HTTP/1.1 client for the management API (Boost.Beast).
//
// A command-line tool: one connection, one request at a time, on the calling thread.
#pragma once

#include <string>

namespace warren::admin {

struct HttpResult {
  unsigned status = 0;
  std::string body;
};

class HttpError : public std::exception {
 public:
  explicit HttpError(std::string what) : what_(std::move(what)) {}
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::string what_;
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port, std::string username, std::string password);
  // `path` is already percent-encoded ("/api/queues/%2F/q"). Throws HttpError when the
  // broker cannot be reached.
  HttpResult request(const std::string& method, const std::string& path,
                     const std::string& body = {}, const std::string& reason = {});
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }

 private:
  std::string host_;
  uint16_t port_;
  std::string authorization_;
};

// Percent-encodes one path segment ("/" -> "%2F").
std::string encode_segment(const std::string& s);

}  // namespace warren::admin
