// PeerIdentity: who a TLS client's certificate says it is (for SASL EXTERNAL). A plain value,
// filled by auth/tls_context.cpp after the TLS handshake.
#pragma once

#include <string>

namespace warren::auth {

struct PeerIdentity {
  bool has_certificate = false;
  std::string common_name;         // the subject's CN
  std::string distinguished_name;  // RFC 4514, most specific first: "CN=x,O=y,C=z"
};

}  // namespace warren::auth
