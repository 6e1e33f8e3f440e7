#include "auth/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>

namespace warren::auth {

namespace ssl = boost::asio::ssl;

namespace {
std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

int version_code(const std::string& v) {
  if (v == "tlsv1.3") return TLS1_3_VERSION;
  if (v == "tlsv1.2") return TLS1_2_VERSION;
  if (v == "tlsv1.1") return TLS1_1_VERSION;
  return TLS1_VERSION;
}
}  // namespace

std::unique_ptr<ssl::context> make_server_context(const common::TlsOptions& o) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::single_dh_use);
  // RabbitMQ's default for new installations: TLS 1.2 and 1.3 only.
  int lo = TLS1_2_VERSION, hi = TLS1_3_VERSION;
  if (!o.versions.empty()) {
    lo = hi = version_code(o.versions.front());
    for (const auto& v : o.versions) {
      lo = std::min(lo, version_code(v));
      hi = std::max(hi, version_code(v));
    }
  }
  SSL_CTX_set_min_proto_version(native, lo);
  SSL_CTX_set_max_proto_version(native, hi);

  if (o.certfile.empty() || o.keyfile.empty()) {
    throw TlsError("a TLS listener needs ssl_options.certfile and ssl_options.keyfile");
  }
  if (SSL_CTX_use_certificate_chain_file(native, o.certfile.c_str()) != 1) {
    throw TlsError("cannot use certificate file " + o.certfile + ": " + openssl_error());
  }
  if (SSL_CTX_use_PrivateKey_file(native, o.keyfile.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw TlsError("cannot use key file " + o.keyfile + ": " + openssl_error());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw TlsError("key file " + o.keyfile + " does not match " + o.certfile);
  }
  if (!o.cacertfile.empty() &&
      SSL_CTX_load_verify_locations(native, o.cacertfile.c_str(), nullptr) != 1) {
    throw TlsError("cannot use CA file " + o.cacertfile + ": " + openssl_error());
  }
  if (!o.ciphers.empty()) {
    // TLS 1.3 suites ("TLS_AES_...") and TLS 1.2 cipher names are set apart in OpenSSL.
    std::string v13, v12;
    for (const auto& c : o.ciphers) {
      std::string& list = c.rfind("TLS_", 0) == 0 ? v13 : v12;
      if (!list.empty()) list += ':';
      list += c;
    }
    if (!v12.empty() && SSL_CTX_set_cipher_list(native, v12.c_str()) != 1) {
      throw TlsError("no usable cipher in ssl_options.ciphers: " + openssl_error());
    }
    if (!v13.empty() && SSL_CTX_set_ciphersuites(native, v13.c_str()) != 1) {
      throw TlsError("no usable TLS 1.3 suite in ssl_options.ciphers: " + openssl_error());
    }
  }
  if (o.verify_peer) {
    ssl::verify_mode mode = ssl::verify_peer;
    if (o.fail_if_no_peer_cert) mode |= ssl::verify_fail_if_no_peer_cert;
    ctx->set_verify_mode(mode);
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  return ctx;
}

PeerIdentity peer_identity(SSL* ssl) {
  PeerIdentity id;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return id;
  id.has_certificate = true;
  X509_NAME* subject = X509_get_subject_name(cert);
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn) > 0) id.common_name = cn;
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    // RFC 2253 order (most specific first) without escaping multi-byte characters.
    X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n > 0) id.distinguished_name.assign(data, static_cast<size_t>(n));
    BIO_free(bio);
  }
  X509_free(cert);
  return id;
}

}  // namespace warren::auth
