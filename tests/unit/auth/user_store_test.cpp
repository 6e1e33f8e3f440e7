// Users, password hashes and SASL responses (auth/user_store.h).
// Concerns covered:
//  - check_hash accepts hashes in RabbitMQ's format, base64(salt4 ++ H(salt4 ++ password)):
//    the SHA-256 and MD5 vectors from RabbitMQ's password documentation, plus SHA-512 and a
//    UTF-8 password computed independently with Python's hashlib;
//  - hash_password output has that structure (cross-checked with OpenSSL directly), a fresh
//    salt each time, and the right length per algorithm;
//  - malformed hashes (bad base64, too short, empty) are refused, never crash;
//  - UserStore: add/find/authenticate, permissions per (user, vhost);
//  - PLAIN as RabbitMQ's rabbit_auth_mechanism_plain parses it: "\0user\0password", empty
//    authzid only, no further NUL; AMQPLAIN: a table body with LOGIN and PASSWORD strings.
#include <doctest/doctest.h>

#include <openssl/evp.h>

#include <string>

#include "amqp/field_table.h"
#include "auth/user_store.h"

using namespace warren;
using auth::HashAlgorithm;
using auth::UserStore;

namespace {

std::string b64decode(std::string_view in) {
  std::string out(in.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  REQUIRE(n >= 0);
  size_t len = static_cast<size_t>(n);
  if (!in.empty() && in.back() == '=') --len;
  if (in.size() > 1 && in[in.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  return std::string(reinterpret_cast<char*>(md), len);
}

// An AMQPLAIN response: table entries without the table's length prefix.
std::string amqplain(const amqp::FieldTable& t) {
  std::string s;
  amqp::Writer w(s);
  amqp::encode_table(w, t);
  return s.substr(4);
}

}  // namespace

TEST_CASE("check_hash accepts hashes produced by RabbitMQ's algorithm") {
  // https://www.rabbitmq.com/docs/passwords: salt 908DC60A, password "test12", SHA-256.
  CHECK(UserStore::check_hash("kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                              HashAlgorithm::kSha256, "test12"));
  CHECK_FALSE(UserStore::check_hash("kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                                    HashAlgorithm::kSha256, "test13"));
  CHECK_FALSE(UserStore::check_hash("kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                                    HashAlgorithm::kSha512, "test12"));
  // The older MD5 example: salt CAD5089B, password "simon".
  CHECK(UserStore::check_hash("ytUIm8s3AnKsXQjptplKFytfVxI=", HashAlgorithm::kMd5, "simon"));
  CHECK_FALSE(UserStore::check_hash("ytUIm8s3AnKsXQjptplKFytfVxI=", HashAlgorithm::kMd5, "Simon"));
  // python3: base64(salt + hashlib.sha512(salt + b"guest")), salt 01020304.
  CHECK(UserStore::check_hash(
      "AQIDBANSvkE51MvG7pNDq4NjmP8SFay7rWsolg//30q7jnApCiuE049JxchapptDh7ryvu/VdvUXYHbwdpa9veVAv14=",
      HashAlgorithm::kSha512, "guest"));
  // python3: salt DEADBEEF, SHA-256 of the UTF-8 bytes of "pässwörd".
  CHECK(UserStore::check_hash("3q2+72IetiGe+jtveBW6kVa/DWDP+1xZ5pnq7kQO6le3GBXB",
                              HashAlgorithm::kSha256, "p\xc3\xa4ssw\xc3\xb6rd"));
  CHECK_FALSE(UserStore::check_hash("3q2+72IetiGe+jtveBW6kVa/DWDP+1xZ5pnq7kQO6le3GBXB",
                                    HashAlgorithm::kSha256, "password"));
}

TEST_CASE("hash_password: RabbitMQ's structure, fresh salts, lengths per algorithm") {
  const std::string h = UserStore::hash_password("s3cret");
  CHECK(h.size() == 48);  // base64 of 4 + 32 bytes
  const std::string raw = b64decode(h);
  REQUIRE(raw.size() == 36);
  const std::string salt = raw.substr(0, 4);
  CHECK(raw.substr(4) == sha256(salt + "s3cret"));
  CHECK(UserStore::check_hash(h, HashAlgorithm::kSha256, "s3cret"));
  CHECK_FALSE(UserStore::check_hash(h, HashAlgorithm::kSha256, "s3cret "));
  CHECK_FALSE(UserStore::check_hash(h, HashAlgorithm::kSha256, ""));

  CHECK(UserStore::hash_password("s3cret") != h);  // random salt

  const std::string h512 = UserStore::hash_password("x", HashAlgorithm::kSha512);
  CHECK(b64decode(h512).size() == 68);
  CHECK(UserStore::check_hash(h512, HashAlgorithm::kSha512, "x"));
  const std::string hmd5 = UserStore::hash_password("x", HashAlgorithm::kMd5);
  CHECK(b64decode(hmd5).size() == 20);
  CHECK(UserStore::check_hash(hmd5, HashAlgorithm::kMd5, "x"));

  // The empty password hashes and checks like any other.
  const std::string empty = UserStore::hash_password("");
  CHECK(UserStore::check_hash(empty, HashAlgorithm::kSha256, ""));
  CHECK_FALSE(UserStore::check_hash(empty, HashAlgorithm::kSha256, "a"));
}

TEST_CASE("malformed hashes are refused") {
  for (const char* bad : {"", "a", "abc", "!!!!", "AAAA", "AAAAAA==", "kI3GCqW5JLMJa4iX1lo7X4D6",
                          "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2PO",
                          "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR====",
                          "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgx Is30+P6tENUV2POR"}) {
    INFO(bad);
    CHECK_FALSE(UserStore::check_hash(bad, HashAlgorithm::kSha256, "test12"));
  }
}

TEST_CASE("UserStore: users, authentication and permissions") {
  UserStore users;
  users.add_user("alice", "wonderland", {"administrator", "monitoring"});
  const auth::User* a = users.find("alice");
  REQUIRE(a != nullptr);
  CHECK(a->name == "alice");
  CHECK(a->tags.size() == 2);
  CHECK(a->password_hash != "wonderland");
  CHECK(users.find("bob") == nullptr);
  CHECK(users.find("Alice") == nullptr);

  CHECK(users.authenticate("alice", "wonderland") == a);
  CHECK(users.authenticate("alice", "Wonderland") == nullptr);
  CHECK(users.authenticate("alice", "") == nullptr);
  CHECK(users.authenticate("bob", "wonderland") == nullptr);

  // Replacing a user replaces its password.
  users.add_user("alice", "looking-glass");
  CHECK(users.authenticate("alice", "wonderland") == nullptr);
  CHECK(users.authenticate("alice", "looking-glass") != nullptr);

  CHECK(users.permission("alice", "/") == nullptr);
  users.set_permission("alice", "/", auth::Permission{});
  const auth::Permission* p = users.permission("alice", "/");
  REQUIRE(p != nullptr);
  CHECK(p->configure == ".*");
  CHECK(p->write == ".*");
  CHECK(p->read == ".*");
  CHECK(users.permission("alice", "/other") == nullptr);
  CHECK(users.permission("bob", "/") == nullptr);
  users.set_permission("alice", "/other", auth::Permission{"^$", "^amq\\.", "q"});
  REQUIRE(users.permission("alice", "/other") != nullptr);
  CHECK(users.permission("alice", "/other")->configure == "^$");
}

TEST_CASE("PLAIN responses, as RabbitMQ parses them") {
  auto ok = [](std::string_view r, const char* user, const char* pass) {
    auto c = auth::parse_plain(r);
    REQUIRE(c.has_value());
    CHECK(c->user == user);
    CHECK(c->password == pass);
  };
  using namespace std::string_view_literals;
  ok("\0guest\0guest"sv, "guest", "guest");
  ok("\0user name\0p@ss word!"sv, "user name", "p@ss word!");
  ok("\0u\0"sv, "u", "");
  ok("\0\0"sv, "", "");
  ok("\0\xc3\xa9\0\xc3\xa9"sv, "\xc3\xa9", "\xc3\xa9");

  // RabbitMQ refuses a response that does not start with NUL (a non-empty authzid), one
  // without the second NUL, and one with a NUL inside the password.
  CHECK_FALSE(auth::parse_plain(""sv).has_value());
  CHECK_FALSE(auth::parse_plain("guest"sv).has_value());
  CHECK_FALSE(auth::parse_plain("\0guest"sv).has_value());
  CHECK_FALSE(auth::parse_plain("authz\0guest\0guest"sv).has_value());
  CHECK_FALSE(auth::parse_plain("\0guest\0guest\0"sv).has_value());
  CHECK_FALSE(auth::parse_plain("\0guest\0gu\0est"sv).has_value());
}

TEST_CASE("AMQPLAIN responses") {
  amqp::FieldTable t;
  t.set("LOGIN", "guest");
  t.set("PASSWORD", "secret");
  auto c = auth::parse_amqplain(amqplain(t));
  REQUIRE(c.has_value());
  CHECK(c->user == "guest");
  CHECK(c->password == "secret");

  // Order and extra fields do not matter.
  amqp::FieldTable reordered;
  reordered.set("extra", int32_t{1});
  reordered.set("PASSWORD", "p");
  reordered.set("LOGIN", "u");
  c = auth::parse_amqplain(amqplain(reordered));
  REQUIRE(c.has_value());
  CHECK(c->user == "u");
  CHECK(c->password == "p");

  amqp::FieldTable no_password;
  no_password.set("LOGIN", "guest");
  CHECK_FALSE(auth::parse_amqplain(amqplain(no_password)).has_value());

  amqp::FieldTable lowercase;
  lowercase.set("login", "guest");
  lowercase.set("password", "guest");
  CHECK_FALSE(auth::parse_amqplain(amqplain(lowercase)).has_value());

  amqp::FieldTable numeric;
  numeric.set("LOGIN", int32_t{1});
  numeric.set("PASSWORD", int32_t{2});
  CHECK_FALSE(auth::parse_amqplain(amqplain(numeric)).has_value());

  CHECK_FALSE(auth::parse_amqplain(std::string_view("\x05LOGIN", 6)).has_value());
  CHECK_FALSE(auth::parse_amqplain(std::string_view("\x05LOGINS\x00\x00\x00\x09gu", 13)).has_value());
  CHECK_FALSE(auth::parse_amqplain(std::string_view("\x05LOGINQ", 7)).has_value());
  CHECK_FALSE(auth::parse_amqplain("").has_value());
}
