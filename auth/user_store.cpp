#include "auth/user_store.h"

#include "common/base64.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "amqp/field_table.h"

namespace warren::auth {

using common::b64decode;
using common::b64encode;

namespace {
const EVP_MD* md_for(HashAlgorithm a) {
  switch (a) {
    case HashAlgorithm::kSha512: return EVP_sha512();
    case HashAlgorithm::kMd5: return EVP_md5();
    case HashAlgorithm::kSha256: break;
  }
  return EVP_sha256();
}

std::string digest(HashAlgorithm a, std::string_view salt, std::string_view password) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, md_for(a), nullptr);
  EVP_DigestUpdate(ctx, salt.data(), salt.size());
  EVP_DigestUpdate(ctx, password.data(), password.size());
  EVP_DigestFinal_ex(ctx, out, &len);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<char*>(out), len);
}



// Constant-time comparison, so a wrong password's timing tells nothing.
bool equal_ct(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}
}  // namespace

std::string UserStore::hash_password(std::string_view password, HashAlgorithm algo) {
  unsigned char salt[4];
  if (RAND_bytes(salt, sizeof salt) != 1) throw std::runtime_error("RAND_bytes failed");
  std::string s(reinterpret_cast<char*>(salt), sizeof salt);
  return b64encode(s + digest(algo, s, password));
}

bool UserStore::check_hash(std::string_view hash_b64, HashAlgorithm algo,
                           std::string_view password) {
  auto raw = b64decode(hash_b64);
  if (!raw || raw->size() <= 4) return false;
  std::string_view salt(raw->data(), 4);
  return equal_ct(std::string_view(*raw).substr(4), digest(algo, salt, password));
}

std::string_view algorithm_name(HashAlgorithm a) {
  switch (a) {
    case HashAlgorithm::kSha512: return "rabbit_password_hashing_sha512";
    case HashAlgorithm::kMd5: return "rabbit_password_hashing_md5";
    case HashAlgorithm::kSha256: break;
  }
  return "rabbit_password_hashing_sha256";
}

std::optional<HashAlgorithm> parse_algorithm(std::string_view name) {
  if (name == "rabbit_password_hashing_sha256" || name.empty()) return HashAlgorithm::kSha256;
  if (name == "rabbit_password_hashing_sha512") return HashAlgorithm::kSha512;
  if (name == "rabbit_password_hashing_md5") return HashAlgorithm::kMd5;
  return std::nullopt;
}

bool has_tag(const User& u, std::string_view tag) {
  for (const auto& t : u.tags)
    if (t == tag) return true;
  return false;
}

void UserStore::add_user(std::string name, std::string_view password,
                         std::vector<std::string> tags) {
  User u;
  u.name = name;
  u.password_hash = hash_password(password);
  u.tags = std::move(tags);
  users_[std::move(name)] = std::move(u);
  ++generation_;
}

void UserStore::put_user(User u) {
  std::string name = u.name;
  users_[std::move(name)] = std::move(u);
  ++generation_;
}

bool UserStore::delete_user(std::string_view name) {
  auto it = users_.find(name);
  if (it == users_.end()) return false;
  users_.erase(it);
  std::erase_if(permissions_, [&](const auto& kv) { return kv.first.first == name; });
  std::erase_if(topic_, [&](const auto& kv) { return std::get<0>(kv.first) == name; });
  ++generation_;
  return true;
}

const User* UserStore::find(std::string_view name) const {
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : &it->second;
}

const User* UserStore::authenticate(std::string_view name, std::string_view password) const {
  const User* u = find(name);
  if (!u || u->password_hash.empty()) return nullptr;
  return check_hash(u->password_hash, u->algorithm, password) ? u : nullptr;
}

void UserStore::set_permission(std::string_view user, std::string_view vhost, Permission p) {
  permissions_[{std::string(user), std::string(vhost)}] = std::move(p);
  ++generation_;
}

bool UserStore::clear_permission(std::string_view user, std::string_view vhost) {
  ++generation_;
  return permissions_.erase({std::string(user), std::string(vhost)}) > 0;
}

void UserStore::set_topic_permission(std::string_view user, std::string_view vhost,
                                     std::string_view exchange, TopicPermission p) {
  topic_[{std::string(user), std::string(vhost), std::string(exchange)}] = std::move(p);
  ++generation_;
}

const TopicPermission* UserStore::topic_permission(std::string_view user, std::string_view vhost,
                                                   std::string_view exchange) const {
  if (topic_.empty()) return nullptr;
  auto it = topic_.find({std::string(user), std::string(vhost), std::string(exchange)});
  return it == topic_.end() ? nullptr : &it->second;
}

size_t UserStore::clear_topic_permissions(std::string_view user, std::string_view vhost,
                                          std::string_view exchange) {
  ++generation_;
  return std::erase_if(topic_, [&](const auto& kv) {
    const auto& [u, v, x] = kv.first;
    return u == user && v == vhost && (exchange.empty() || x == exchange);
  });
}

void UserStore::forget_vhost(std::string_view vhost) {
  std::erase_if(permissions_, [&](const auto& kv) { return kv.first.second == vhost; });
  std::erase_if(topic_, [&](const auto& kv) { return std::get<1>(kv.first) == vhost; });
  ++generation_;
}

const Permission* UserStore::permission(std::string_view user, std::string_view vhost) const {
  auto it = permissions_.find({std::string(user), std::string(vhost)});
  return it == permissions_.end() ? nullptr : &it->second;
}

std::optional<Credentials> parse_plain(std::string_view response) {
  // NUL authcid NUL passwd, as RabbitMQ's rabbit_auth_mechanism_plain reads it: the
  // authzid must be empty and the password must not contain another NUL.
  if (response.empty() || response[0] != '\0') return std::nullopt;
  const size_t b = response.find('\0', 1);
  if (b == std::string_view::npos) return std::nullopt;
  const std::string_view password = response.substr(b + 1);
  if (password.find('\0') != std::string_view::npos) return std::nullopt;
  Credentials c;
  c.user = std::string(response.substr(1, b - 1));
  c.password = std::string(password);
  return c;
}

std::optional<Credentials> parse_amqplain(std::string_view response) {
  // A field table's entries without the table's length prefix.
  std::string framed;
  amqp::Writer w(framed);
  w.u32(static_cast<uint32_t>(response.size()));
  w.raw(response);
  try {
    amqp::Reader r(framed);
    amqp::FieldTable t = amqp::decode_table(r);
    const amqp::FieldValue* login = t.find("LOGIN");
    const amqp::FieldValue* pass = t.find("PASSWORD");
    if (!login || !pass || !login->as_string() || !pass->as_string()) return std::nullopt;
    return Credentials{std::string(*login->as_string()), std::string(*pass->as_string())};
  } catch (const amqp::DecodeError&) {
    return std::nullopt;
  }
}

}  // namespace warren::auth
