#include "admin/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

#include "common/base64.h"

namespace warren::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string encode_segment(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

HttpClient::HttpClient(std::string host, uint16_t port, std::string username, std::string password)
    : host_(std::move(host)), port_(port), authorization_("Basic " +
                     common::b64encode(username + ":" + password)) {}

HttpResult HttpClient::request(const std::string& method, const std::string& path,
                               const std::string& body, const std::string& reason) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  asio::ip::tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(host_, std::to_string(port_), ec);
  if (ec) throw HttpError("cannot resolve " + host_ + ": " + ec.message());
  stream.expires_after(std::chrono::seconds(30));
  stream.connect(endpoints, ec);
  if (ec) {
    throw HttpError("unable to connect to the management API at " + host_ + ":" +
                    std::to_string(port_) + ": " + ec.message() +
                    " (is the broker running with its HTTP port on?)");
  }
  http::request<http::string_body> req(http::string_to_verb(method), path, 11);
  req.set(http::field::host, host_);
  req.set(http::field::authorization, authorization_);
  req.set(http::field::user_agent, "warrenctl");
  if (!reason.empty()) req.set("X-Reason", reason);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  http::write(stream, req, ec);
  if (ec) throw HttpError("cannot send the request: " + ec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 31);
  http::read(stream, buffer, parser, ec);
  if (ec) throw HttpError("cannot read the response: " + ec.message());
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  return HttpResult{parser.get().result_int(), std::move(parser.get().body())};
}

}  // namespace warren::admin
