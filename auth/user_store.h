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
#include <tuple>
#include <vector>

namespace warren::auth {

enum class HashAlgorithm { kSha256, kSha512, kMd5 };

// RabbitMQ's module names for the algorithms ("rabbit_password_hashing_sha256", ...), as
// the management API and definitions files carry them.
std::string_view algorithm_name(HashAlgorithm a);
std::optional<HashAlgorithm> parse_algorithm(std::string_view name);

struct Permission {
  std::string configure = ".*";
  std::string write = ".*";
  std::string read = ".*";
};

// Topic permissions (RabbitMQ's topic authorisation): per user, vhost and topic exchange,
// patterns the routing key must match to publish (write) or bind (read).
struct TopicPermission {
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

  using PermissionKey = std::pair<std::string, std::string>;  // (user, vhost)
  using TopicKey = std::tuple<std::string, std::string, std::string>;  // (user, vhost, exchange)

  void add_user(std::string name, std::string_view password, std::vector<std::string> tags = {});
  // Creates or replaces a user as given (hash and algorithm included).
  void put_user(User u);
  // Removes the user with its permissions and topic permissions; false when unknown.
  bool delete_user(std::string_view name);
  const User* find(std::string_view name) const;
  // The user when the password matches its hash, else nullptr.
  const User* authenticate(std::string_view name, std::string_view password) const;
  const std::map<std::string, User, std::less<>>& users() const { return users_; }

  void set_permission(std::string_view user, std::string_view vhost, Permission p);
  const Permission* permission(std::string_view user, std::string_view vhost) const;
  bool clear_permission(std::string_view user, std::string_view vhost);
  const std::map<PermissionKey, Permission>& permissions() const { return permissions_; }

  void set_topic_permission(std::string_view user, std::string_view vhost,
                            std::string_view exchange, TopicPermission p);
  const TopicPermission* topic_permission(std::string_view user, std::string_view vhost,
                                          std::string_view exchange) const;
  // Clears one exchange's topic permission, or all of the user's in the vhost when
  // `exchange` is empty; returns how many were removed.
  size_t clear_topic_permissions(std::string_view user, std::string_view vhost,
                                 std::string_view exchange = {});
  const std::map<TopicKey, TopicPermission>& topic_permissions() const { return topic_; }

  // Forgets every permission in a deleted vhost.
  void forget_vhost(std::string_view vhost);

  // Bumped by every change, so that caches of permission decisions know to start over.
  uint64_t generation() const { return generation_; }

 private:
  std::map<std::string, User, std::less<>> users_;
  std::map<PermissionKey, Permission> permissions_;
  std::map<TopicKey, TopicPermission> topic_;
  uint64_t generation_ = 0;
};

// True when `u` has any of RabbitMQ's tags that open the management API.
bool has_tag(const User& u, std::string_view tag);

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
