// TLS for the listeners: builds an OpenSSL server context from rabbitmq.conf's
// ssl_options.* (or management.ssl.*), and reads the identity of a client certificate for
// SASL EXTERNAL.
//
// Built once at start on the main thread; the context is then shared, read-only, by every
// session of its listener.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <stdexcept>
#include <string>

#include "auth/peer_identity.h"
#include "common/config.h"

namespace warren::auth {

class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// TLS 1.2 and 1.3 only unless `versions` says otherwise; certificate, key and CA bundle from
// the files; peer verification as configured. Throws TlsError naming the file or setting.
std::unique_ptr<boost::asio::ssl::context> make_server_context(const common::TlsOptions& o);

// The subject of the peer's certificate, if it sent one.
PeerIdentity peer_identity(SSL* ssl);

}  // namespace warren::auth
