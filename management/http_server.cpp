#include "management/http_server.h"

#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cstdio>

#include "broker/broker.h"
#include "common/log.h"
#include "management/console_page.h"
#include "management/router.h"

namespace warren::management {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kIdleTimeout = std::chrono::seconds(60);

Method method_of(http::verb v) {
  switch (v) {
    case http::verb::get: return Method::kGet;
    case http::verb::put: return Method::kPut;
    case http::verb::post: return Method::kPost;
    case http::verb::delete_: return Method::kDelete;
    case http::verb::head: return Method::kHead;
    default: return Method::kOther;
  }
}
}  // namespace

// One HTTP connection: read a request, answer it, repeat while keep-alive. `Stream` is a
// beast::tcp_stream, or an ssl_stream over one (HTTPS: the TLS handshake comes first).
template <typename Stream>
class Session : public HttpSession, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <typename... TlsArgs>
  Session(tcp::socket socket, broker::Broker& broker, HttpServer& server,
          std::shared_ptr<bool> server_alive, TlsArgs&... tls)
      : stream_(std::move(socket), tls...), broker_(broker), server_(server),
        server_alive_(std::move(server_alive)) {
    boost::system::error_code ec;
    auto ep = socket_().remote_endpoint(ec);
    loopback_ = !ec && (ep.address().is_loopback() ||
                        (ep.address().is_v6() && ep.address().to_v6().is_v4_mapped() &&
                         asio::ip::make_address_v4(asio::ip::v4_mapped, ep.address().to_v6())
                             .is_loopback()));
  }
  ~Session() override {
    if (*server_alive_) server_.forget(this);
  }

  void start() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->close();  // not TLS, or a bad certificate
                                self->read();
                              });
    } else {
      read();
    }
  }
  void close() override {
    boost::system::error_code ec;
    socket_().shutdown(tcp::socket::shutdown_both, ec);
    socket_().close(ec);
  }

 private:
  tcp::socket& socket_() { return beast::get_lowest_layer(stream_).socket(); }

  void read() {
    head_ = false;
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(HttpServer::kMaxBody);
    beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return write(error_response(413, "bad_request", "request body too large"), false);
    }
    if (ec == http::error::header_limit) {
      keep_alive_ = false;
      return write(error_response(431, "bad_request", "request headers too large"), false);
    }
    if (ec) return close();  // EOF, timeout, malformed HTTP
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    Request r;
    r.method = method_of(req.method());
    r.body = std::move(req.body());
    if (auto it = req.find("x-reason"); it != req.end()) r.reason_header = std::string(it->value());
    Response resp;
    std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const bool get_or_head = r.method == Method::kGet || r.method == Method::kHead;
    if (path == "/metrics" || path == "/metrics/per-object") {
      resp = get_or_head ? handle_metrics(broker_, path != "/metrics") : method_not_allowed();
    } else if (!server_.metrics_only() && (path == "/" || path == "/index.html")) {
      // The console page needs no credentials: it asks for them and sends them with each
      // API call, as RabbitMQ's UI at "/" does.
      resp = get_or_head ? Response{200, std::string(kConsolePage), "text/html; charset=utf-8"}
                         : method_not_allowed();
    } else if (server_.metrics_only() || !parse_target(target, r)) {
      resp = not_found();
    } else {
      std::string_view authz;
      if (auto it = req.find(http::field::authorization); it != req.end()) {
        authz = std::string_view(it->value().data(), it->value().size());
      }
      const uint64_t writes_before = broker_.store_writes();
      try {
        resp = route(broker_, r, authz, loopback_, server_.local_token(),
                     [self = this->shared_from_this(), writes_before,
                      method = r.method](Response later) {
                       self->finish(std::move(later), writes_before, method);
                     });
      } catch (const std::exception& e) {
        WLOG_ERROR("management API: {} failed: {}", std::string(req.target()), e.what());
        resp = error_response(500, "internal_server_error", e.what());
      }
      if (resp.status == 0) return;  // deferred: the handler answers through reply_later
      return finish(std::move(resp), writes_before, r.method);
    }
    write(std::move(resp), true);
  }

  // A change of durable state is answered once it is committed (a GET changes nothing: a
  // list built in slices must not wait for the commits of AMQP traffic meanwhile).
  void finish(Response resp, uint64_t writes_before, Method method) {
    if (method != Method::kGet && broker_.store_writes() != writes_before && broker_.store()) {
      broker_.store()->sync([self = this->shared_from_this(), resp = std::move(resp)](bool ok) mutable {
        if (!ok) resp = error_response(500, "internal_server_error", "the change could not be stored");
        self->write(std::move(resp), true);
      });
      return;
    }
    write(std::move(resp), true);
  }

  void write(Response resp, bool then_read) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(resp.status), 11);
    res->set(http::field::server, "Warren");
    if (!resp.body.empty()) res->set(http::field::content_type, resp.content_type);
    if (resp.status == 401) {
      res->set(http::field::www_authenticate, "Basic realm=\"RabbitMQ Management\"");
    }
    res->set(http::field::cache_control, "no-cache");
    if (!resp.location.empty()) res->set(http::field::location, resp.location);
    res->keep_alive(keep_alive_ && then_read);
    res->body() = std::move(resp.body);
    res->prepare_payload();
    // A response to HEAD has the headers of the GET response (Content-Length included) and
    // no body (RFC 9110 9.3.2); a body would be read as the start of the next response.
    if (head_) res->body().clear();
    beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
                        if (res->body().size() > (8u << 20)) {
                          // A large answer (a full list of 100k queues) leaves its JSON
                          // and text in freed heap pages: give them back to the system.
                          boost::asio::post(self->stream_.get_executor(), [] { malloc_trim(0); });
                        }
                        if (ec || !res->keep_alive()) return self->close();
                        self->read();
                      });
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  broker::Broker& broker_;
  HttpServer& server_;
  std::shared_ptr<bool> server_alive_;
  bool loopback_ = false;
  bool keep_alive_ = true;
  bool head_ = false;  // the request being answered is a HEAD
};

HttpServer::HttpServer(asio::io_context& io, broker::Broker& broker, asio::ssl::context* tls,
                       bool metrics_only)
    : tls_(tls), io_(io), broker_(broker), acceptor_(io), metrics_only_(metrics_only) {}

HttpServer::~HttpServer() {
  *alive_ = false;
  stop();
}

void HttpServer::listen(const std::string& address, uint16_t port) {
  tcp::endpoint ep(asio::ip::make_address(address), port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  accept();
}

void HttpServer::write_local_credentials(const std::string& data_dir) {
  unsigned char raw[24];
  if (RAND_bytes(raw, sizeof raw) != 1) return;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : raw) {
    token += kHex[b >> 4];
    token += kHex[b & 15];
  }
  const std::string path = data_dir + "/warrenctl.json";
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    WLOG_WARN("cannot write {}: warrenctl will need --username and --password", path);
    return;
  }
  const std::string text =
      "{\"port\": " + std::to_string(port()) + ", \"token\": \"" + token + "\"}\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) return;
  local_token_ = std::move(token);
}

uint16_t HttpServer::port() const { return acceptor_.local_endpoint().port(); }

void HttpServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  std::set<HttpSession*> all;
  all.swap(sessions_);
  for (HttpSession* s : all) s->close();
}

void HttpServer::accept() {
  acceptor_.async_accept([this, alive = alive_](boost::system::error_code ec, tcp::socket socket) {
    if (!*alive || ec == asio::error::operation_aborted) return;
    if (!ec && tls_) {
      auto s = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          std::move(socket), broker_, *this, alive_, *tls_);
      sessions_.insert(s.get());
      s->start();
    } else if (!ec) {
      auto s = std::make_shared<Session<beast::tcp_stream>>(std::move(socket), broker_, *this,
                                                            alive_);
      sessions_.insert(s.get());
      s->start();
    } else {
      WLOG_WARN("management API: accept failed: {}", ec.message());
    }
    if (acceptor_.is_open()) accept();
  });
}

}  // namespace warren::management
