// UserStore: users, password hashes, tags and per-vhost permissions.
//
// Owned by the Broker, used on the topology thread. Passwords are kept only as salted
// hashes in RabbitMQ's format (base64 of a 4-byte salt followed by hash(salt ++ password)),
// SHA-256 by default with SHA-512 and MD5 accepted, so hashes exported from RabbitMQ work.
#pragma once

#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace warren::auth {

enum class HashAlgorithm { kSha256, kSha512, kMd5 };

struct Permission {
  std::string configure = ".*";
  std::string write = ".*";
  std::string read = ".*";
};

struct User {
  std::string name;
  std::string password_hash;  // base64, RabbitMQ format; empty = no password login
  HashAlgorithm algorithm = HashAlgorithm::kSha256;
  std::vector<std::string> tags;
};

class UserStore {
 public:
  // Hashes `password` with a fresh random salt in RabbitMQ's format.
  static std::string hash_password(std::string_view password,
                                   HashAlgorithm algo = HashAlgorithm::kSha256);
  static bool check_hash(std::string_view hash_b64, HashAlgorithm algo,
                         std::string_view password);

  void add_user(std::string name, std::string_view password, std::vector<std::string> tags = {});
  const User* find(std::string_view name) const;
  // The user when the password matches its hash, else nullptr.
  const User* authenticate(std::string_view name, std::string_view password) const;

  void set_permission(std::string_view user, std::string_view vhost, Permission p);
  const Permission* permission(std::string_view user, std::string_view vhost) const;

 private:
  std::map<std::string, User, std::less<>> users_;
  std::map<std::pair<std::string, std::string>, Permission> permissions_;
};

// SASL responses. PLAIN is "\0user\0password" (RabbitMQ refuses a non-empty authzid);
// AMQPLAIN is a field table without its length prefix holding LOGIN and PASSWORD. nullopt
// when malformed.
struct Credentials {
  std::string user;
  std::string password;
};
std::optional<Credentials> parse_plain(std::string_view response);
std::optional<Credentials> parse_amqplain(std::string_view response);

}  // namespace warren::auth
