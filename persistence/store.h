// Store: durable state in one SQLite database (WAL, synchronous=FULL) under the data
// directory — durable exchanges, queues and bindings, and persistent messages of durable
// queues.
//
// Threads: every public method except open()/recover() is called on the broker thread and
// only queues work; one writer thread owned by the Store applies queued work in batches
// (group commit: everything queued while a commit runs goes into the next transaction and
// the next fsync) and then hands completions to the `post` function, which runs them on the
// broker thread. Batches grow with load; there is no timer.
//
// Message bytes are not copied at enqueue time: put_message() keeps string_views, and the
// caller guarantees the bytes stay alive and unchanged until that operation's batch has
// committed (the broker holds a reference to the message until its sync() callback runs).
//
// Invariants: a message row exists while any queue entry refers to it (stored once however
// many queues it is in); after a failed write or fsync the Store refuses all further writes
// (every later completion reports false) and healthy() is false.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace warren::persistence {

// A database that cannot be opened, is damaged, is not Warren's, or has a newer schema.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StoredExchange {
  std::string vhost;
  std::string name;
  std::string type;
  bool auto_delete = false;
  bool internal = false;
  std::string arguments;  // field table bytes (with length prefix), as amqp::encode_table writes
};

struct StoredQueue {
  std::string vhost;
  std::string name;
  bool auto_delete = false;
  std::string arguments;  // field table bytes
};

struct StoredBinding {
  std::string vhost;
  std::string source;
  std::string destination;
  bool destination_is_exchange = false;
  std::string routing_key;
  std::string arguments;  // field table bytes
};

// A queue's identity in the store, made once per queue and shared by every operation on its
// entries, so that queuing an entry write copies a pointer, not two names.
struct QueueKey {
  std::string vhost;
  std::string queue;
};
using QueueRef = std::shared_ptr<const QueueKey>;
inline QueueRef make_queue_ref(std::string vhost, std::string queue) {
  return std::make_shared<const QueueKey>(QueueKey{std::move(vhost), std::move(queue)});
}

struct StoredEntry {
  uint64_t message_id = 0;
  uint64_t seq = 0;  // position in its queue
  bool delivered = false;  // was delivered at least once: recovered with redelivered set
  // A paged-out entry of a transient message or a non-durable queue: swap space only,
  // dropped at the next start.
  bool transient = false;
  int64_t expires_unix_ms = 0;  // per-message or queue TTL deadline (wall clock); 0 = never
};

struct StoredMessage {
  std::string exchange;
  std::string routing_key;
  std::string properties;  // raw property bytes
  std::string body;
};

// A message an x-delayed-message exchange holds until `due_unix_ms` (wall clock, so the
// delay keeps counting while the broker is down).
struct StoredDelayed {
  uint64_t id = 0;
  std::string vhost;
  std::string exchange;
  std::string routing_key;
  int64_t due_unix_ms = 0;
  std::string properties;
  std::string body;
};

// An entry read back from the store (paging), with its message.
struct LoadedEntry {
  StoredEntry entry;
  StoredMessage message;
};

// The part of a queue that recovery left in the store (paged out): `count` entries with
// `bytes` of bodies, seq from `from_seq` to `max_seq`.
struct PagedTail {
  uint64_t count = 0;
  uint64_t bytes = 0;
  uint64_t from_seq = 0;
  uint64_t max_seq = 0;
};

// Access control (schema v4; store_access.cpp): users, vhosts, permissions, topic
// permissions and vhost limits, as RabbitMQ keeps them in its metadata store.
struct StoredUser {
  std::string name;
  std::string password_hash;      // base64, RabbitMQ's format; empty = no password login
  std::string hashing_algorithm;  // "rabbit_password_hashing_sha256", ...
  std::string tags;               // comma-separated
};

struct StoredVhost {
  std::string name;
  std::string description;
  std::string tags;  // comma-separated
};

struct StoredPermission {
  std::string user, vhost, configure, write, read;
};

struct StoredTopicPermission {
  std::string user, vhost, exchange, write, read;
};

struct StoredVhostLimit {
  std::string vhost;
  std::string name;  // "max-connections", "max-queues"
  int64_t value = 0;
};

// A policy or operator policy (schema v5): RabbitMQ's fields, the definition as JSON text.
struct StoredPolicy {
  std::string vhost;
  std::string name;
  bool operator_policy = false;
  std::string pattern;
  std::string apply_to;
  std::string definition;
  int64_t priority = 0;
};

struct RecoveredAccess {
  // False on a data directory whose access data was never written (a new one, or one from
  // before schema v4): the broker then creates the default user and vhost.
  bool initialized = false;
  std::vector<StoredUser> users;
  std::vector<StoredVhost> vhosts;
  std::vector<StoredPermission> permissions;
  std::vector<StoredTopicPermission> topic_permissions;
  std::vector<StoredVhostLimit> vhost_limits;
  std::vector<StoredPolicy> policies;
};

// One statement of a batch of generic writes (used for the access-control tables, whose
// writes are rare): SQL text with a static lifetime, and its ?1, ?2, ... arguments.
struct SqlStep {
  const char* sql;
  std::vector<std::variant<int64_t, std::string>> args;
};

struct Recovered {
  std::vector<StoredExchange> exchanges;
  std::vector<StoredQueue> queues;
  std::vector<StoredBinding> bindings;
  // Per (vhost, queue name): entries in seq order.
  std::map<std::pair<std::string, std::string>, std::vector<StoredEntry>> entries;
  std::map<uint64_t, StoredMessage> messages;
  // Per (vhost, queue name): what stays paged out (queues longer than the window).
  std::map<std::pair<std::string, std::string>, PagedTail> paged;
  std::vector<StoredDelayed> delayed;  // by due time
  uint64_t max_message_id = 0;  // new ids (messages and delayed) must be larger
  RecoveredAccess access;
};

// Where completions go: the broker posts them to its own thread.
using Poster = std::function<void(std::function<void()>)>;

class Store {
 public:
  // Opens (creating if needed) DATA_DIR/warren.db, checks it is Warren's, and migrates an
  // older schema. Starts the writer thread. Throws StoreError with a one-line reason.
  static std::unique_ptr<Store> open(const std::string& data_dir, Poster post);
  // Stops the writer thread after it has committed everything queued.
  ~Store();

  // Reads everything back (call once, before any write, on the opening thread): topology,
  // and per queue its first entries up to `window_bytes` of bodies (at least one); the rest
  // stays in the store and is described in Recovered::paged. Transient (paged-out) entries
  // and entries of queues that are not stored are dropped.
  Recovered recover(uint64_t window_bytes = UINT64_MAX);

  // Topology. Upserts by (vhost, name) / the binding's full identity.
  void put_exchange(const StoredExchange& x);
  // Also deletes its bindings, as source and as destination, as RabbitMQ does.
  void delete_exchange(const std::string& vhost, const std::string& name);
  void put_queue(const StoredQueue& q);
  // Deletes the queue, its bindings as destination, and its entries (and messages left
  // without entries).
  void delete_queue(const std::string& vhost, const std::string& name);
  void put_binding(const StoredBinding& b);
  void delete_binding(const StoredBinding& b);

  // Messages. A message is stored once (put_message) and referenced by entries.
  // REQUIRES: the views stay valid until a later sync() callback has run.
  void put_message(uint64_t id, std::string_view exchange, std::string_view routing_key,
                   std::string_view properties, std::string_view body);
  void add_entry(const QueueRef& q, const StoredEntry& e);
  void mark_delivered(const QueueRef& q, uint64_t message_id);
  // Removes the entry; the message row goes with its last entry.
  void remove_entry(const QueueRef& q, uint64_t message_id);
  // The same by name (tests, rare paths): each call makes its own QueueRef.
  void add_entry(const std::string& vhost, const std::string& queue, const StoredEntry& e) {
    add_entry(make_queue_ref(vhost, queue), e);
  }
  void mark_delivered(const std::string& vhost, const std::string& queue, uint64_t message_id) {
    mark_delivered(make_queue_ref(vhost, queue), message_id);
  }
  void remove_entry(const std::string& vhost, const std::string& queue, uint64_t message_id) {
    remove_entry(make_queue_ref(vhost, queue), message_id);
  }
  void purge_queue(const std::string& vhost, const std::string& queue);
  // Removes the queue's entries from `from_seq` on (its paged-out part).
  void drop_entries_from(const std::string& vhost, const std::string& queue, uint64_t from_seq);
  // Paging: reads the queue's entries from `from_seq` on in seq order, at most `max_count`
  // of them and stopping after `max_bytes` of bodies (at least one), and deletes the
  // transient ones it read. `done(entries, ok)` runs on the broker thread after the batch
  // holding the read has committed.
  void load_entries(const std::string& vhost, const std::string& queue, uint64_t from_seq,
                    size_t max_count, uint64_t max_bytes,
                    std::function<void(std::vector<LoadedEntry>, bool ok)> done);

  // Delayed messages. REQUIRES: the views stay valid until a later sync() callback has run.
  void put_delayed(uint64_t id, const std::string& vhost, const std::string& exchange,
                   const std::string& routing_key, int64_t due_unix_ms,
                   std::string_view properties, std::string_view body);
  void delete_delayed(uint64_t id);

  // Access control (store_access.cpp). Users' and vhosts' deletions take their permissions,
  // topic permissions and limits along; a vhost's also takes its exchanges, queues, bindings,
  // messages and delayed messages.
  void put_user(const StoredUser& u);
  void delete_user(const std::string& name);
  void put_vhost(const StoredVhost& v);
  void delete_vhost(const std::string& name);
  void put_permission(const StoredPermission& p);
  void delete_permission(const std::string& user, const std::string& vhost);
  void put_topic_permission(const StoredTopicPermission& p);
  // `exchange` empty: all of the user's topic permissions in the vhost.
  void delete_topic_permissions(const std::string& user, const std::string& vhost,
                                const std::string& exchange);
  void put_vhost_limit(const StoredVhostLimit& l);
  void delete_vhost_limit(const std::string& vhost, const std::string& name);
  void put_policy(const StoredPolicy& p);
  void delete_policy(const std::string& vhost, const std::string& name, bool operator_policy);
  // Records that the access data has been written once (see RecoveredAccess::initialized).
  void mark_access_initialized();

  // `done(ok)` runs on the broker thread (through Poster) once every operation queued before
  // this call is durable (ok = true) or has failed (ok = false).
  void sync(std::function<void(bool ok)> done);

  // Grouping (broker thread): between begin_group() and the matching end_group(), queued
  // operations are collected without taking the queue's lock and handed to the writer all at
  // once, so one read batch of a connection costs one lock and a publish's message and
  // entries always share a transaction. Nests.
  void begin_group();
  void end_group();

  bool healthy() const;
  // Why the Store stopped being healthy (the SQLite error text), or "" while healthy. Any
  // thread; the Store logs nothing itself, so the broker logs this when a sync reports false.
  std::string last_error() const;
  // Bytes of the database file and its WAL (for the disk alarm and tests).
  uint64_t size_bytes() const;

  // Test hook: makes every commit from now on fail as a failed fsync would.
  void inject_failure_for_tests();

 private:
  Store() = default;
  // Queues statements to run in order in one transaction.
  void enqueue_steps(std::vector<SqlStep> steps);
  // Runs a query on the opening thread (recovery) and returns its rows as text.
  std::vector<std::vector<std::string>> query_rows(const char* sql);
  RecoveredAccess recover_access();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace warren::persistence
