#include "management/router.h"

#include "common/base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "broker/broker.h"
#include "common/log.h"

namespace warren::management {

namespace {
int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}


// Who a request with warrenctl's local token acts as (the local operator, like rabbitmqctl).
const auth::User kLocalOperator{"warrenctl", "", auth::HashAlgorithm::kSha256, {"administrator"}};

const auth::User* authenticate(broker::Broker& broker, std::string_view authorization,
                               bool loopback, std::string_view local_token, Response& err) {
  auto fail = [&] {
    err = error_response(401, "not_authorized", "Login failed");
    return nullptr;
  };
  constexpr std::string_view kBasic = "Basic ";
  if (authorization.size() <= kBasic.size() ||
      !std::equal(kBasic.begin(), kBasic.end(), authorization.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    return fail();
  }
  const std::string_view encoded = authorization.substr(kBasic.size());
  if (encoded.empty() || encoded.size() > 4096) return fail();
  auto decoded = common::b64decode(encoded);
  if (!decoded) return fail();
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return fail();
  const std::string name = decoded->substr(0, colon);
  const std::string_view secret = std::string_view(*decoded).substr(colon + 1);
  if (loopback && name == "warrenctl" && !local_token.empty() && secret.size() == local_token.size() &&
      CRYPTO_memcmp(secret.data(), local_token.data(), secret.size()) == 0) {
    return &kLocalOperator;
  }
  const auth::User* u = broker.users().authenticate(name, std::string_view(*decoded).substr(colon + 1));
  if (!u) {
    // Logged without the password, as AMQP logins are.
    WLOG_WARN("HTTP access denied: user '{}' - invalid credentials", name);
    return fail();
  }
  const auto& lb = broker.config().loopback_users;
  if (!loopback && std::find(lb.begin(), lb.end(), u->name) != lb.end()) {
    WLOG_WARN("HTTP access denied: user '{}' can only log in via localhost", name);
    err = not_authorised("User can only log in via localhost");
    return nullptr;
  }
  const bool management = std::any_of(u->tags.begin(), u->tags.end(), [](const std::string& t) {
    return t == "administrator" || t == "monitoring" || t == "policymaker" || t == "management";
  });
  if (!management) {
    err = not_authorised("Not management user");
    return nullptr;
  }
  return u;
}
}  // namespace

namespace {
bool decode_into(std::string_view s, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return false;
      const int h = hex(s[i + 1]), l = hex(s[i + 2]);
      if (h < 0 || l < 0) return false;
      out += static_cast<char>(h * 16 + l);
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return true;
}
}  // namespace

std::string percent_decode(std::string_view s, bool* ok) {
  std::string out;
  const bool good = decode_into(s, true, out);
  if (ok && !good) *ok = false;
  return out;
}

bool parse_target(std::string_view target, Request& out) {
  std::string_view path = target, query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  constexpr std::string_view kApi = "/api";
  if (path.substr(0, kApi.size()) != kApi) return false;
  path.remove_prefix(kApi.size());
  if (!path.empty() && path[0] != '/') return false;
  out.path.clear();
  while (!path.empty()) {
    path.remove_prefix(1);  // '/'
    const size_t end = std::min(path.find('/'), path.size());
    std::string seg;
    // '+' is literal in paths; only queries use it for a space.
    if (!decode_into(path.substr(0, end), false, seg)) return false;
    out.path.push_back(std::move(seg));
    path.remove_prefix(end);
  }
  // A trailing slash ("/api/queues/") names the collection.
  if (!out.path.empty() && out.path.back().empty()) out.path.pop_back();
  bool ok = true;
  while (!query.empty()) {
    const size_t end = std::min(query.find('&'), query.size());
    std::string_view kv = query.substr(0, end);
    const size_t eq = kv.find('=');
    std::string k = percent_decode(kv.substr(0, eq), &ok);
    std::string v = eq == std::string_view::npos ? "" : percent_decode(kv.substr(eq + 1), &ok);
    if (!k.empty()) out.query[k] = v;
    query.remove_prefix(std::min(end + 1, query.size()));
  }
  return ok;
}

Response route(broker::Broker& broker, const Request& r, std::string_view authorization,
                bool loopback, std::string_view local_token,
                std::function<void(Response)> reply_later) {
  Response err;
  const auth::User* user = authenticate(broker, authorization, loopback, local_token, err);
  if (!user) return err;
  // Copy: a handler may delete the very user that is calling.
  const auth::User caller = *user;
  Context c{broker, caller, user == &kLocalOperator, std::move(reply_later)};
  if (r.path.empty()) return not_found();
  const std::string& what = r.path[0];
  if (what == "overview") return handle_overview(c, r);
  if (what == "whoami") return handle_whoami(c, r);
  if (what == "nodes") return handle_nodes(c, r);
  if (what == "vhosts") return handle_vhosts(c, r);
  if (what == "users") return handle_users(c, r);
  if (what == "permissions") return handle_permissions(c, r);
  if (what == "topic-permissions") return handle_topic_permissions(c, r);
  if (what == "vhost-limits") return handle_vhost_limits(c, r);
  if (what == "queues") return handle_queues(c, r);
  if (what == "exchanges") return handle_exchanges(c, r);
  if (what == "bindings") return handle_bindings(c, r);
  if (what == "connections") return handle_connections(c, r);
  if (what == "channels") return handle_channels(c, r);
  if (what == "consumers") return handle_consumers(c, r);
  if (what == "policies") return handle_policies(c, r);
  if (what == "operator-policies") return handle_operator_policies(c, r);
  if (what == "definitions") return handle_definitions(c, r);
  if (what == "aliveness-test") return handle_aliveness(c, r);
  if (what == "health") return handle_health(c, r);
  return not_found();
}

}  // namespace warren::management
