// Store (persistence/store.h): the schema and its migrations, the writer thread with group
// commit, and recovery.
//
// Threads: `db_` is used by the opening thread in open()/recover() and afterwards only by the
// writer thread; `db_mu_` serialises the two so a recover() racing an early write stays
// safe. The op queue is guarded by `mu_`.
//
// Reference counts live in the database: triggers on `entries` keep `messages.refs` equal to
// the number of entries naming the message and delete the message row with its last entry,
// so purge and queue deletion are a single DELETE on `entries`.
#include "persistence/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <variant>

namespace warren::persistence {
namespace {

constexpr int64_t kSchemaVersion = 5;
constexpr std::string_view kApplication = "warren";
// Set before the first table (SQLite cannot change it once the file is WAL). Larger than the
// 4 KiB default so most 1-4 KiB messages fit in their leaf page without overflow chains.
constexpr int kPageSize = 8192;

// Upgrade steps, applied in order in one transaction by open(): kMigrations[i] takes the
// schema from version i to i + 1. Adding version 2 is one entry here (and bumping
// kSchemaVersion); never edit a shipped step.
struct Migration {
  int64_t to_version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE exchanges (
  vhost TEXT NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  auto_delete INTEGER NOT NULL,
  internal INTEGER NOT NULL,
  arguments BLOB NOT NULL,
  PRIMARY KEY (vhost, name)
);
CREATE TABLE queues (
  vhost TEXT NOT NULL,
  name TEXT NOT NULL,
  auto_delete INTEGER NOT NULL,
  arguments BLOB NOT NULL,
  PRIMARY KEY (vhost, name)
);
CREATE TABLE bindings (
  vhost TEXT NOT NULL,
  source TEXT NOT NULL,
  destination TEXT NOT NULL,
  dest_is_exchange INTEGER NOT NULL,
  routing_key TEXT NOT NULL,
  arguments BLOB NOT NULL,
  UNIQUE (vhost, source, destination, dest_is_exchange, routing_key, arguments)
);
CREATE INDEX bindings_by_destination ON bindings (vhost, destination);
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  properties BLOB NOT NULL,
  body BLOB NOT NULL,
  refs INTEGER NOT NULL
);
CREATE TABLE entries (
  vhost TEXT NOT NULL,
  queue TEXT NOT NULL,
  seq INTEGER NOT NULL,
  message_id INTEGER NOT NULL,
  delivered INTEGER NOT NULL,
  PRIMARY KEY (vhost, queue, seq)
);
CREATE INDEX entries_by_message ON entries (vhost, queue, message_id);
CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
  UPDATE messages SET refs = refs + 1 WHERE id = NEW.message_id;
END;
CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
  UPDATE messages SET refs = refs - 1 WHERE id = OLD.message_id;
  DELETE FROM messages WHERE id = OLD.message_id AND refs <= 0;
END;
)sql"},
    // 2: messages held by x-delayed-message exchanges until they are due.
    {2, R"sql(
CREATE TABLE delayed (
  id INTEGER PRIMARY KEY,
  vhost TEXT NOT NULL,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  due_unix_ms INTEGER NOT NULL,
  properties BLOB NOT NULL,
  body BLOB NOT NULL
);
)sql"},
    // 3: paging. Transient entries are swap space for queues too long for memory (dropped at
    // start); expiry deadlines are kept with the entry so TTL survives paging and restarts.
    {3, R"sql(
ALTER TABLE entries ADD COLUMN transient INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN expires_unix_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
    // 4: access control — users, vhosts, permissions, topic permissions, vhost limits.
    // meta 'access_initialized' is set once the broker has written its defaults.
    {4, R"sql(
CREATE TABLE users (
  name TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  hashing_algorithm TEXT NOT NULL,
  tags TEXT NOT NULL
);
CREATE TABLE vhosts (
  name TEXT PRIMARY KEY,
  description TEXT NOT NULL,
  tags TEXT NOT NULL
);
CREATE TABLE permissions (
  user TEXT NOT NULL,
  vhost TEXT NOT NULL,
  configure TEXT NOT NULL,
  write TEXT NOT NULL,
  read TEXT NOT NULL,
  PRIMARY KEY (user, vhost)
);
CREATE TABLE topic_permissions (
  user TEXT NOT NULL,
  vhost TEXT NOT NULL,
  exchange TEXT NOT NULL,
  write TEXT NOT NULL,
  read TEXT NOT NULL,
  PRIMARY KEY (user, vhost, exchange)
);
CREATE TABLE vhost_limits (
  vhost TEXT NOT NULL,
  name TEXT NOT NULL,
  value INTEGER NOT NULL,
  PRIMARY KEY (vhost, name)
);
)sql"},
    // 5: policies and operator policies (operator = 1), per vhost.
    {5, R"sql(
CREATE TABLE policies (
  vhost TEXT NOT NULL,
  name TEXT NOT NULL,
  operator INTEGER NOT NULL,
  pattern TEXT NOT NULL,
  apply_to TEXT NOT NULL,
  definition TEXT NOT NULL,
  priority INTEGER NOT NULL,
  PRIMARY KEY (vhost, operator, name)
);
)sql"},
};
static_assert(std::size(kMigrations) == kSchemaVersion, "one migration step per version");

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr) != SQLITE_OK) {
      throw StoreError(std::string("cannot prepare a statement: ") + sqlite3_errmsg(db));
    }
  }
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// Binds text or blob bytes without copying. A null pointer would bind SQL NULL (and break
// NOT NULL), so empty values get a non-null pointer.
void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
void bind_blob(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_blob(s, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
void bind_int(sqlite3_stmt* s, int i, int64_t v) { sqlite3_bind_int64(s, i, v); }
void bind_id(sqlite3_stmt* s, int i, uint64_t v) { bind_int(s, i, static_cast<int64_t>(v)); }

std::string column_bytes(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  const int n = sqlite3_column_bytes(s, i);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

// Runs a bound statement to completion, then resets it and drops its bindings (so no
// SQLITE_STATIC pointer outlives the call).
bool run(sqlite3_stmt* s) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_DONE;
}

// The queued operations. Strings are copied except put_message's views (see store.h).
struct PutExchange {
  StoredExchange x;
};
struct DeleteExchange {
  std::string vhost, name;
};
struct PutQueue {
  StoredQueue q;
};
struct DeleteQueue {
  std::string vhost, name;
};
struct PutBinding {
  StoredBinding b;
};
struct DeleteBinding {
  StoredBinding b;
};
struct PutMessage {
  uint64_t id;
  std::string_view exchange, routing_key, properties, body;
};
struct AddEntry {
  QueueRef q;
  StoredEntry e;
};
struct MarkDelivered {
  QueueRef q;
  uint64_t message_id;
};
struct RemoveEntry {
  QueueRef q;
  uint64_t message_id;
};
bool same_queue(const QueueRef& a, const QueueRef& b) {
  return a == b || (a->vhost == b->vhost && a->queue == b->queue);
}
struct PurgeQueue {
  std::string vhost, queue;
};
struct DropEntriesFrom {
  std::string vhost, queue;
  uint64_t from_seq;
};
struct LoadEntries {
  std::string vhost, queue;
  uint64_t from_seq;
  size_t max_count;
  uint64_t max_bytes;
  std::function<void(std::vector<LoadedEntry>, bool)> done;
  // Filled by the writer thread while it applies the batch.
  mutable std::vector<LoadedEntry> result;
};
struct PutDelayed {
  uint64_t id;
  std::string vhost, exchange, routing_key;
  int64_t due_unix_ms;
  std::string_view properties, body;
};
struct DeleteDelayed {
  uint64_t id;
};
struct Sync {
  std::function<void(bool)> done;
};
struct Steps {
  std::vector<SqlStep> steps;
};
using Op = std::variant<PutExchange, DeleteExchange, PutQueue, DeleteQueue, PutBinding,
                        DeleteBinding, PutMessage, AddEntry, MarkDelivered, RemoveEntry,
                        PurgeQueue, DropEntriesFrom, LoadEntries, PutDelayed, DeleteDelayed,
                        Sync, Steps>;

}  // namespace

struct Store::Impl {
  Impl(std::string path, Poster post) : path_(std::move(path)), post_(std::move(post)) {}
  ~Impl() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (writer_.joinable()) writer_.join();
    stmts_ = {};
    step_stmts_.clear();
    sqlite3_close_v2(db_);
  }

  void open_db();
  void start() { writer_ = std::thread([this] { writer_loop(); }); }
  Recovered recover(uint64_t window_bytes);

  void enqueue(Op op) {
    // After a failure writes are refused at once; syncs still queue so callbacks keep order.
    // Loads too: their callbacks must run (they read what they still can).
    if (failed_.load(std::memory_order_acquire) && !std::holds_alternative<Sync>(op) &&
        !std::holds_alternative<LoadEntries>(op)) {
      return;
    }
    if (group_depth_ > 0) {
      group_.push_back(std::move(op));
      return;
    }
    bool was_empty;
    {
      std::lock_guard lk(mu_);
      was_empty = queue_.empty();
      queue_.push_back(std::move(op));
    }
    // The writer sleeps only on an empty queue; otherwise it will see this op anyway.
    if (was_empty) cv_.notify_one();
  }

  void end_group() {
    if (--group_depth_ > 0 || group_.empty()) return;
    bool was_empty;
    {
      std::lock_guard lk(mu_);
      was_empty = queue_.empty();
      if (was_empty) {
        queue_.swap(group_);
      } else {
        std::move(group_.begin(), group_.end(), std::back_inserter(queue_));
      }
    }
    group_.clear();
    if (was_empty) cv_.notify_one();
  }

  // Marks in `skip` the operations of `batch` that cancel out: an entry added and removed
  // in the same batch never needs the disk (RabbitMQ's message store likewise skips writing
  // messages acked before they are flushed), nor do its delivered marks, nor a message row
  // whose every entry in the batch cancelled.
  static void cancel_pairs(const std::vector<Op>& batch, std::vector<char>& skip);

  void writer_loop();
  void commit_batch(std::vector<Op>& batch);
  bool write_batch(const std::vector<Op>& batch);
  bool fail(std::string what);

  bool apply(const PutExchange& o);
  bool apply(const DeleteExchange& o);
  bool apply(const PutQueue& o);
  bool apply(const DeleteQueue& o);
  bool apply(const PutBinding& o);
  bool apply(const DeleteBinding& o);
  bool apply(const PutMessage& o);
  bool apply(const AddEntry& o);
  bool apply(const MarkDelivered& o);
  bool apply(const RemoveEntry& o);
  bool apply(const PurgeQueue& o);
  bool apply(const DropEntriesFrom& o);
  bool apply(const LoadEntries& o) { return load(o, true); }
  // Reads (and with `drop_transient`, deletes the transient rows read) for a LoadEntries.
  bool load(const LoadEntries& o, bool drop_transient);
  void read_only_load(LoadEntries& o) { load(o, false); }
  bool apply(const PutDelayed& o);
  bool apply(const DeleteDelayed& o);
  bool apply(const Sync&) { return true; }
  bool apply(const Steps& o);

  void exec(const char* sql, const char* what);
  [[noreturn]] void throw_db(const std::string& what);

  const std::string path_;
  const Poster post_;
  sqlite3* db_ = nullptr;
  std::mutex db_mu_;

  // Prepared once in open_db(), reused for every batch.
  struct Statements {
    Stmt begin, commit, rollback;
    Stmt put_exchange, delete_exchange, delete_exchange_bindings;
    Stmt put_queue, delete_queue, delete_queue_bindings;
    Stmt put_binding, delete_binding;
    Stmt put_message, add_entry, mark_delivered, remove_entry, purge_queue;
    Stmt drop_entries_from, load_entries, drop_loaded_transient;
    Stmt put_delayed, delete_delayed;
  } stmts_;
  // Generic steps' statements by SQL text (writer thread only).
  std::map<const char*, Stmt> step_stmts_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Op> queue_;  // guarded by mu_
  // Broker thread only: the open group (see Store::begin_group).
  int group_depth_ = 0;
  std::vector<Op> group_;
  std::vector<char> skip_;  // writer thread: cancel_pairs' result for the current batch
  bool stopping_ = false;  // guarded by mu_
  std::thread writer_;

  std::atomic<bool> failed_{false};
  std::atomic<bool> inject_failure_{false};
  mutable std::mutex error_mu_;
  std::string last_error_;  // guarded by error_mu_
};

void Store::Impl::throw_db(const std::string& what) {
  throw StoreError(what + ": " + sqlite3_errmsg(db_));
}

void Store::Impl::exec(const char* sql, const char* what) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) throw_db(what);
}

void Store::Impl::open_db() {
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    throw_db("cannot open " + path_);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 5000);

  // The first read of the file is where SQLite notices it is not a database at all.
  int64_t objects = 0;
  {
    Stmt probe(db_, "SELECT count(*) FROM sqlite_master");
    if (sqlite3_step(probe.get()) != SQLITE_ROW) throw_db("cannot read " + path_);
    objects = sqlite3_column_int64(probe.get(), 0);
  }
  const bool fresh = objects == 0;
  if (fresh) {
    exec(("PRAGMA page_size=" + std::to_string(kPageSize)).c_str(), "cannot set the page size");
  }

  int64_t version = 0;
  if (!fresh) {
    const std::string not_ours = path_ + " is not a Warren database";
    {
      Stmt has_meta(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'");
      if (sqlite3_step(has_meta.get()) != SQLITE_ROW) throw_db("cannot read " + path_);
      if (sqlite3_column_int64(has_meta.get(), 0) == 0) throw StoreError(not_ours);
    }
    Stmt get(db_, "SELECT value FROM meta WHERE key = ?1");
    bind_text(get.get(), 1, "application");
    if (sqlite3_step(get.get()) != SQLITE_ROW || column_bytes(get.get(), 0) != kApplication) {
      throw StoreError(not_ours);
    }
    sqlite3_reset(get.get());
    bind_text(get.get(), 1, "schema_version");
    if (sqlite3_step(get.get()) != SQLITE_ROW ||
        sqlite3_column_type(get.get(), 0) != SQLITE_INTEGER) {
      throw StoreError(path_ + " is damaged: it has no schema version");
    }
    version = sqlite3_column_int64(get.get(), 0);
    if (version > kSchemaVersion) {
      throw StoreError(path_ + " has schema version " + std::to_string(version) +
                       ", newer than this Warren supports (" + std::to_string(kSchemaVersion) +
                       "); use a newer Warren");
    }
    if (version < 1) throw StoreError(path_ + " is damaged: bad schema version");
  }

  // WAL: a commit is one append and one fsync of the log; readers never block the writer.
  {
    Stmt wal(db_, "PRAGMA journal_mode=WAL");
    if (sqlite3_step(wal.get()) != SQLITE_ROW || column_bytes(wal.get(), 0) != "wal") {
      throw StoreError("cannot use write-ahead logging for " + path_);
    }
  }
  exec("PRAGMA synchronous=FULL", "cannot set synchronous=FULL");
  exec("PRAGMA cache_size=-16384", "cannot set the cache size");  // 16 MiB
  // Keep the -wal file from staying at its high-water mark after checkpoints.
  exec("PRAGMA journal_size_limit=67108864", "cannot set the journal size limit");

  if (fresh || version < kSchemaVersion) {
    exec("BEGIN IMMEDIATE", "cannot start the schema migration");
    try {
      if (fresh) {
        exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);"
             "INSERT INTO meta VALUES ('application', 'warren'), ('schema_version', 0);",
             "cannot create the schema");
      }
      Stmt set_version(db_, "UPDATE meta SET value = ?1 WHERE key = 'schema_version'");
      for (const Migration& m : kMigrations) {
        if (m.to_version <= version) continue;
        exec(m.sql, ("cannot migrate to schema version " + std::to_string(m.to_version)).c_str());
        bind_int(set_version.get(), 1, m.to_version);
        if (!run(set_version.get())) throw_db("cannot record the schema version");
      }
      exec("COMMIT", "cannot commit the schema migration");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  auto& s = stmts_;
  s.begin = Stmt(db_, "BEGIN IMMEDIATE");
  s.commit = Stmt(db_, "COMMIT");
  s.rollback = Stmt(db_, "ROLLBACK");
  s.put_exchange = Stmt(db_,
      "INSERT INTO exchanges (vhost, name, type, auto_delete, internal, arguments) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (vhost, name) DO UPDATE SET "
      "type = excluded.type, auto_delete = excluded.auto_delete, "
      "internal = excluded.internal, arguments = excluded.arguments");
  s.delete_exchange = Stmt(db_, "DELETE FROM exchanges WHERE vhost = ?1 AND name = ?2");
  s.delete_exchange_bindings = Stmt(db_,
      "DELETE FROM bindings WHERE vhost = ?1 AND "
      "(source = ?2 OR (destination = ?2 AND dest_is_exchange = 1))");
  s.put_queue = Stmt(db_,
      "INSERT INTO queues (vhost, name, auto_delete, arguments) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (vhost, name) DO UPDATE SET "
      "auto_delete = excluded.auto_delete, arguments = excluded.arguments");
  s.delete_queue = Stmt(db_, "DELETE FROM queues WHERE vhost = ?1 AND name = ?2");
  s.delete_queue_bindings = Stmt(db_,
      "DELETE FROM bindings WHERE vhost = ?1 AND destination = ?2 AND dest_is_exchange = 0");
  s.put_binding = Stmt(db_,
      "INSERT OR IGNORE INTO bindings "
      "(vhost, source, destination, dest_is_exchange, routing_key, arguments) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  s.delete_binding = Stmt(db_,
      "DELETE FROM bindings WHERE vhost = ?1 AND source = ?2 AND destination = ?3 AND "
      "dest_is_exchange = ?4 AND routing_key = ?5 AND arguments = ?6");
  s.put_message = Stmt(db_,
      "INSERT OR IGNORE INTO messages (id, exchange, routing_key, properties, body, refs) "
      "VALUES (?1, ?2, ?3, ?4, ?5, 0)");
  // OR IGNORE: a repeated (queue, seq) must not fire the refcount trigger twice.
  s.add_entry = Stmt(db_,
      "INSERT OR IGNORE INTO entries "
      "(vhost, queue, seq, message_id, delivered, transient, expires_unix_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.mark_delivered = Stmt(db_,
      "UPDATE entries SET delivered = 1 WHERE vhost = ?1 AND queue = ?2 AND message_id = ?3");
  s.remove_entry = Stmt(db_,
      "DELETE FROM entries WHERE vhost = ?1 AND queue = ?2 AND message_id = ?3");
  s.purge_queue = Stmt(db_, "DELETE FROM entries WHERE vhost = ?1 AND queue = ?2");
  s.drop_entries_from = Stmt(db_,
      "DELETE FROM entries WHERE vhost = ?1 AND queue = ?2 AND seq >= ?3");
  s.load_entries = Stmt(db_,
      "SELECT e.seq, e.message_id, e.delivered, e.transient, e.expires_unix_ms, "
      "m.exchange, m.routing_key, m.properties, m.body "
      "FROM entries e JOIN messages m ON m.id = e.message_id "
      "WHERE e.vhost = ?1 AND e.queue = ?2 AND e.seq >= ?3 ORDER BY e.seq LIMIT ?4");
  s.drop_loaded_transient = Stmt(db_,
      "DELETE FROM entries WHERE vhost = ?1 AND queue = ?2 AND seq >= ?3 AND seq <= ?4 "
      "AND transient = 1");
  s.put_delayed = Stmt(db_,
      "INSERT OR IGNORE INTO delayed (id, vhost, exchange, routing_key, due_unix_ms, "
      "properties, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.delete_delayed = Stmt(db_, "DELETE FROM delayed WHERE id = ?1");
}

Recovered Store::Impl::recover(uint64_t window_bytes) {
  std::lock_guard db_lk(db_mu_);
  // Swap space of the last run does not survive a restart.
  exec("DELETE FROM entries WHERE transient = 1", "cannot drop transient entries");
  // A crash between the batch holding put_message and the one holding its add_entry leaves a
  // message nobody refers to.
  exec("DELETE FROM messages WHERE refs <= 0", "cannot drop unreferenced messages");

  Recovered r;
  exec("BEGIN", "cannot start reading");  // one consistent snapshot
  try {
    {
      Stmt q(db_, "SELECT vhost, name, type, auto_delete, internal, arguments FROM exchanges");
      int rc;
      while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
        auto* s = q.get();
        r.exchanges.push_back(StoredExchange{column_bytes(s, 0), column_bytes(s, 1),
                                             column_bytes(s, 2), sqlite3_column_int(s, 3) != 0,
                                             sqlite3_column_int(s, 4) != 0, column_bytes(s, 5)});
      }
      if (rc != SQLITE_DONE) throw_db("cannot read exchanges");
    }
    {
      Stmt q(db_, "SELECT vhost, name, auto_delete, arguments FROM queues");
      int rc;
      while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
        auto* s = q.get();
        r.queues.push_back(StoredQueue{column_bytes(s, 0), column_bytes(s, 1),
                                       sqlite3_column_int(s, 2) != 0, column_bytes(s, 3)});
      }
      if (rc != SQLITE_DONE) throw_db("cannot read queues");
    }
    {
      Stmt q(db_,
             "SELECT vhost, source, destination, dest_is_exchange, routing_key, arguments "
             "FROM bindings");
      int rc;
      while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
        auto* s = q.get();
        r.bindings.push_back(StoredBinding{column_bytes(s, 0), column_bytes(s, 1),
                                           column_bytes(s, 2), sqlite3_column_int(s, 3) != 0,
                                           column_bytes(s, 4), column_bytes(s, 5)});
      }
      if (rc != SQLITE_DONE) throw_db("cannot read bindings");
    }
    {
      Stmt q(db_, "SELECT max(id) FROM messages");
      if (sqlite3_step(q.get()) != SQLITE_ROW) throw_db("cannot read messages");
      r.max_message_id = static_cast<uint64_t>(sqlite3_column_int64(q.get(), 0));
    }
    {
      // The primary key's order: per queue, by seq. Each queue's first `window_bytes` of
      // bodies come back into memory; the rest is only counted (paged out).
      Stmt q(db_,
             "SELECT e.vhost, e.queue, e.seq, e.message_id, e.delivered, e.expires_unix_ms, "
             "length(m.body) FROM entries e JOIN messages m ON m.id = e.message_id "
             "ORDER BY e.vhost, e.queue, e.seq");
      int rc;
      std::vector<StoredEntry>* current = nullptr;
      PagedTail* tail = nullptr;
      uint64_t loaded_bytes = 0;
      std::pair<std::string, std::string> key;
      while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
        auto* s = q.get();
        std::string vhost = column_bytes(s, 0), queue = column_bytes(s, 1);
        if (!current || vhost != key.first || queue != key.second) {
          key = {std::move(vhost), std::move(queue)};
          current = &r.entries[key];
          tail = nullptr;
          loaded_bytes = 0;
        }
        StoredEntry e{static_cast<uint64_t>(sqlite3_column_int64(s, 3)),
                      static_cast<uint64_t>(sqlite3_column_int64(s, 2)),
                      sqlite3_column_int(s, 4) != 0, false, sqlite3_column_int64(s, 5)};
        const auto size = static_cast<uint64_t>(sqlite3_column_int64(s, 6));
        if (!tail && (current->empty() || loaded_bytes < window_bytes)) {
          loaded_bytes += size;
          current->push_back(e);
          r.messages.try_emplace(e.message_id);
          continue;
        }
        if (!tail) {
          tail = &r.paged[key];
          tail->from_seq = e.seq;
        }
        ++tail->count;
        tail->bytes += size;
        tail->max_seq = e.seq;
      }
      if (rc != SQLITE_DONE) throw_db("cannot read queue entries");
    }
    {
      Stmt q(db_, "SELECT exchange, routing_key, properties, body FROM messages WHERE id = ?1");
      for (auto& [id, m] : r.messages) {
        bind_id(q.get(), 1, id);
        if (sqlite3_step(q.get()) != SQLITE_ROW) throw_db("cannot read messages");
        auto* s = q.get();
        m = StoredMessage{column_bytes(s, 0), column_bytes(s, 1), column_bytes(s, 2),
                          column_bytes(s, 3)};
        sqlite3_reset(s);
      }
    }
    {
      Stmt q(db_,
             "SELECT id, vhost, exchange, routing_key, due_unix_ms, properties, body "
             "FROM delayed ORDER BY due_unix_ms, id");
      int rc;
      while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
        auto* s = q.get();
        const auto id = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
        r.delayed.push_back(StoredDelayed{id, column_bytes(s, 1), column_bytes(s, 2),
                                          column_bytes(s, 3), sqlite3_column_int64(s, 4),
                                          column_bytes(s, 5), column_bytes(s, 6)});
        r.max_message_id = std::max(r.max_message_id, id);
      }
      if (rc != SQLITE_DONE) throw_db("cannot read delayed messages");
    }
    exec("COMMIT", "cannot finish reading");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return r;
}

bool Store::Impl::fail(std::string what) {
  {
    std::lock_guard lk(error_mu_);
    if (last_error_.empty()) last_error_ = std::move(what);
  }
  failed_.store(true, std::memory_order_release);
  return false;
}

void Store::Impl::writer_loop() {
  std::vector<Op> batch;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is done
      // Take everything: ops queued from now on form the next batch (group commit).
      batch.swap(queue_);
    }
    commit_batch(batch);
    batch.clear();
  }
}

void Store::Impl::commit_batch(std::vector<Op>& batch) {
  bool ok = !failed_.load(std::memory_order_acquire);
  if (ok) {
    const bool writes = std::any_of(batch.begin(), batch.end(), [](const Op& op) {
      return !std::holds_alternative<Sync>(op);
    });
    if (writes) {
      std::lock_guard db_lk(db_mu_);
      ok = write_batch(batch);
    } else if (inject_failure_.load()) {
      ok = fail("disk I/O error (injected fsync failure)");
    }
  }
  if (!ok) {
    // A failed store still reads: paged-out messages stay reachable (nothing is deleted).
    std::lock_guard db_lk(db_mu_);
    for (Op& op : batch) {
      if (auto* l = std::get_if<LoadEntries>(&op)) {
        LoadEntries read_only = *l;
        read_only.max_count = std::min<size_t>(read_only.max_count, 1u << 20);
        read_only_load(read_only);
        l->result = std::move(read_only.result);
      }
    }
  }
  // Completions in the order they were queued; each through the Poster.
  for (Op& op : batch) {
    if (auto* l = std::get_if<LoadEntries>(&op)) {
      if (!l->done) continue;
      auto run_done = [done = std::move(l->done), result = std::move(l->result), ok]() mutable {
        done(std::move(result), ok);
      };
      if (post_) {
        post_(std::move(run_done));
      } else {
        run_done();
      }
      continue;
    }
    if (auto* s = std::get_if<Sync>(&op)) {
      if (!s->done) continue;
      if (post_) {
        post_([done = std::move(s->done), ok] { done(ok); });
      } else {
        s->done(ok);
      }
    }
  }
}

void Store::Impl::cancel_pairs(const std::vector<Op>& batch, std::vector<char>& skip) {
  skip.assign(batch.size(), 0);
  struct PerMessage {
    size_t put = SIZE_MAX;
    std::vector<size_t> adds;   // AddEntry indexes, in order
    std::vector<size_t> marks;  // MarkDelivered indexes
    size_t live = 0;
    bool cancelled = false;
  };
  std::unordered_map<uint64_t, PerMessage> by_id;
  bool any_remove = false;
  for (const Op& op : batch) any_remove = any_remove || std::holds_alternative<RemoveEntry>(op);
  if (!any_remove) return;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Op& op = batch[i];
    if (const auto* p = std::get_if<PutMessage>(&op)) {
      by_id[p->id].put = i;
    } else if (const auto* a = std::get_if<AddEntry>(&op)) {
      auto& pm = by_id[a->e.message_id];
      pm.adds.push_back(i);
      ++pm.live;
    } else if (const auto* m = std::get_if<MarkDelivered>(&op)) {
      auto it = by_id.find(m->message_id);
      if (it != by_id.end()) it->second.marks.push_back(i);
    } else if (const auto* r = std::get_if<RemoveEntry>(&op)) {
      auto it = by_id.find(r->message_id);
      if (it == by_id.end()) continue;
      PerMessage& pm = it->second;
      for (size_t a : pm.adds) {
        const auto& add = std::get<AddEntry>(batch[a]);
        if (skip[a] || !same_queue(add.q, r->q)) continue;
        skip[a] = skip[i] = 1;
        for (size_t mk : pm.marks) {
          const auto& mark = std::get<MarkDelivered>(batch[mk]);
          if (same_queue(mark.q, r->q)) skip[mk] = 1;
        }
        --pm.live;
        pm.cancelled = true;
        break;
      }
    }
  }
  for (auto& [id, pm] : by_id) {
    if (pm.put != SIZE_MAX && pm.cancelled && pm.live == 0) skip[pm.put] = 1;
  }
}

bool Store::Impl::write_batch(const std::vector<Op>& batch) {
  if (!run(stmts_.begin.get())) {
    return fail(std::string("cannot begin a transaction: ") + sqlite3_errmsg(db_));
  }
  cancel_pairs(batch, skip_);
  std::string error;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (skip_[i]) continue;
    const Op& op = batch[i];
    if (!std::visit([this](const auto& o) { return apply(o); }, op)) {
      error = std::string("write failed: ") + sqlite3_errmsg(db_);
      break;
    }
  }
  if (error.empty()) {
    if (inject_failure_.load()) {
      error = "disk I/O error (injected fsync failure)";
    } else if (!run(stmts_.commit.get())) {
      error = std::string("commit failed: ") + sqlite3_errmsg(db_);
    }
  }
  if (error.empty()) return true;
  // A failed COMMIT may already have rolled back; only roll back what is still open.
  if (!sqlite3_get_autocommit(db_)) run(stmts_.rollback.get());
  return fail(std::move(error));
}

bool Store::Impl::apply(const PutExchange& o) {
  auto* s = stmts_.put_exchange.get();
  bind_text(s, 1, o.x.vhost);
  bind_text(s, 2, o.x.name);
  bind_text(s, 3, o.x.type);
  bind_int(s, 4, o.x.auto_delete);
  bind_int(s, 5, o.x.internal);
  bind_blob(s, 6, o.x.arguments);
  return run(s);
}

bool Store::Impl::apply(const DeleteExchange& o) {
  for (auto* s : {stmts_.delete_exchange.get(), stmts_.delete_exchange_bindings.get()}) {
    bind_text(s, 1, o.vhost);
    bind_text(s, 2, o.name);
    if (!run(s)) return false;
  }
  return true;
}

bool Store::Impl::apply(const PutQueue& o) {
  auto* s = stmts_.put_queue.get();
  bind_text(s, 1, o.q.vhost);
  bind_text(s, 2, o.q.name);
  bind_int(s, 3, o.q.auto_delete);
  bind_blob(s, 4, o.q.arguments);
  return run(s);
}

bool Store::Impl::apply(const DeleteQueue& o) {
  // Entries first: the trigger drops messages left without entries.
  for (auto* s : {stmts_.purge_queue.get(), stmts_.delete_queue_bindings.get(),
                  stmts_.delete_queue.get()}) {
    bind_text(s, 1, o.vhost);
    bind_text(s, 2, o.name);
    if (!run(s)) return false;
  }
  return true;
}

namespace {
void bind_binding(sqlite3_stmt* s, const StoredBinding& b) {
  bind_text(s, 1, b.vhost);
  bind_text(s, 2, b.source);
  bind_text(s, 3, b.destination);
  bind_int(s, 4, b.destination_is_exchange);
  bind_text(s, 5, b.routing_key);
  bind_blob(s, 6, b.arguments);
}
}  // namespace

bool Store::Impl::apply(const PutBinding& o) {
  bind_binding(stmts_.put_binding.get(), o.b);
  return run(stmts_.put_binding.get());
}

bool Store::Impl::apply(const DeleteBinding& o) {
  bind_binding(stmts_.delete_binding.get(), o.b);
  return run(stmts_.delete_binding.get());
}

bool Store::Impl::apply(const PutMessage& o) {
  // SQLITE_STATIC: the caller keeps the bytes alive until the next sync completes (store.h);
  // run() clears the bindings before returning.
  auto* s = stmts_.put_message.get();
  bind_id(s, 1, o.id);
  bind_text(s, 2, o.exchange);
  bind_text(s, 3, o.routing_key);
  bind_blob(s, 4, o.properties);
  bind_blob(s, 5, o.body);
  return run(s);
}

bool Store::Impl::apply(const AddEntry& o) {
  auto* s = stmts_.add_entry.get();
  bind_text(s, 1, o.q->vhost);
  bind_text(s, 2, o.q->queue);
  bind_id(s, 3, o.e.seq);
  bind_id(s, 4, o.e.message_id);
  bind_int(s, 5, o.e.delivered);
  bind_int(s, 6, o.e.transient);
  bind_int(s, 7, o.e.expires_unix_ms);
  return run(s);
}

bool Store::Impl::apply(const MarkDelivered& o) {
  auto* s = stmts_.mark_delivered.get();
  bind_text(s, 1, o.q->vhost);
  bind_text(s, 2, o.q->queue);
  bind_id(s, 3, o.message_id);
  return run(s);
}

bool Store::Impl::apply(const RemoveEntry& o) {
  auto* s = stmts_.remove_entry.get();
  bind_text(s, 1, o.q->vhost);
  bind_text(s, 2, o.q->queue);
  bind_id(s, 3, o.message_id);
  return run(s);
}

bool Store::Impl::apply(const PutDelayed& o) {
  auto* s = stmts_.put_delayed.get();
  bind_id(s, 1, o.id);
  bind_text(s, 2, o.vhost);
  bind_text(s, 3, o.exchange);
  bind_text(s, 4, o.routing_key);
  bind_int(s, 5, o.due_unix_ms);
  bind_blob(s, 6, o.properties);
  bind_blob(s, 7, o.body);
  return run(s);
}

bool Store::Impl::apply(const DeleteDelayed& o) {
  auto* s = stmts_.delete_delayed.get();
  bind_id(s, 1, o.id);
  return run(s);
}

bool Store::Impl::apply(const PurgeQueue& o) {
  auto* s = stmts_.purge_queue.get();
  bind_text(s, 1, o.vhost);
  bind_text(s, 2, o.queue);
  return run(s);
}

bool Store::Impl::apply(const DropEntriesFrom& o) {
  auto* s = stmts_.drop_entries_from.get();
  bind_text(s, 1, o.vhost);
  bind_text(s, 2, o.queue);
  bind_id(s, 3, o.from_seq);
  return run(s);
}

bool Store::Impl::load(const LoadEntries& o, bool drop_transient) {
  auto* s = stmts_.load_entries.get();
  bind_text(s, 1, o.vhost);
  bind_text(s, 2, o.queue);
  bind_id(s, 3, o.from_seq);
  bind_int(s, 4, static_cast<int64_t>(o.max_count));
  o.result.clear();
  uint64_t bytes = 0;
  bool any_transient = false;
  int rc;
  while (bytes < o.max_bytes && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    LoadedEntry le;
    le.entry.seq = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    le.entry.message_id = static_cast<uint64_t>(sqlite3_column_int64(s, 1));
    le.entry.delivered = sqlite3_column_int(s, 2) != 0;
    le.entry.transient = sqlite3_column_int(s, 3) != 0;
    le.entry.expires_unix_ms = sqlite3_column_int64(s, 4);
    le.message = StoredMessage{column_bytes(s, 5), column_bytes(s, 6), column_bytes(s, 7),
                               column_bytes(s, 8)};
    bytes += le.message.body.size();
    any_transient = any_transient || le.entry.transient;
    o.result.push_back(std::move(le));
  }
  const bool done = bytes >= o.max_bytes || rc == SQLITE_DONE;
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (!done) return false;
  if (!any_transient || !drop_transient) return true;
  // Swap space is read once: the queue holds these in memory again.
  auto* d = stmts_.drop_loaded_transient.get();
  bind_text(d, 1, o.vhost);
  bind_text(d, 2, o.queue);
  bind_id(d, 3, o.result.front().entry.seq);
  bind_id(d, 4, o.result.back().entry.seq);
  return run(d);
}

bool Store::Impl::apply(const Steps& o) {
  for (const SqlStep& st : o.steps) {
    Stmt& stmt = step_stmts_[st.sql];
    if (!stmt.get()) {
      try {
        stmt = Stmt(db_, st.sql);
      } catch (const StoreError&) {
        step_stmts_.erase(st.sql);
        return false;
      }
    }
    auto* s = stmt.get();
    int i = 1;
    for (const auto& a : st.args) {
      if (const auto* n = std::get_if<int64_t>(&a)) {
        bind_int(s, i++, *n);
      } else {
        bind_text(s, i++, std::get<std::string>(a));
      }
    }
    if (!run(s)) return false;
  }
  return true;
}

// ---- Store ----

std::unique_ptr<Store> Store::open(const std::string& data_dir, Poster post) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) throw StoreError("cannot create the data directory " + data_dir + ": " + ec.message());
  const std::string path = (std::filesystem::path(data_dir) / "warren.db").string();
  std::unique_ptr<Store> store(new Store());
  store->impl_ = std::make_unique<Impl>(path, std::move(post));
  store->impl_->open_db();
  store->impl_->start();
  return store;
}

Store::~Store() = default;  // Impl's destructor drains the queue, joins, closes.

Recovered Store::recover(uint64_t window_bytes) {
  Recovered r = impl_->recover(window_bytes);
  r.access = recover_access();
  return r;
}

void Store::enqueue_steps(std::vector<SqlStep> steps) { impl_->enqueue(Steps{std::move(steps)}); }

std::vector<std::vector<std::string>> Store::query_rows(const char* sql) {
  std::lock_guard db_lk(impl_->db_mu_);
  std::vector<std::vector<std::string>> rows;
  Stmt q(impl_->db_, sql);
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    const int n = sqlite3_column_count(q.get());
    auto& row = rows.emplace_back();
    for (int i = 0; i < n; ++i) row.push_back(column_bytes(q.get(), i));
  }
  if (rc != SQLITE_DONE) impl_->throw_db("cannot read the access-control tables");
  return rows;
}

void Store::put_exchange(const StoredExchange& x) { impl_->enqueue(PutExchange{x}); }

void Store::delete_exchange(const std::string& vhost, const std::string& name) {
  impl_->enqueue(DeleteExchange{vhost, name});
}

void Store::put_queue(const StoredQueue& q) { impl_->enqueue(PutQueue{q}); }

void Store::delete_queue(const std::string& vhost, const std::string& name) {
  impl_->enqueue(DeleteQueue{vhost, name});
}

void Store::put_binding(const StoredBinding& b) { impl_->enqueue(PutBinding{b}); }

void Store::delete_binding(const StoredBinding& b) { impl_->enqueue(DeleteBinding{b}); }

void Store::put_message(uint64_t id, std::string_view exchange, std::string_view routing_key,
                        std::string_view properties, std::string_view body) {
  impl_->enqueue(PutMessage{id, exchange, routing_key, properties, body});
}

void Store::add_entry(const QueueRef& q, const StoredEntry& e) { impl_->enqueue(AddEntry{q, e}); }

void Store::mark_delivered(const QueueRef& q, uint64_t message_id) {
  impl_->enqueue(MarkDelivered{q, message_id});
}

void Store::remove_entry(const QueueRef& q, uint64_t message_id) {
  impl_->enqueue(RemoveEntry{q, message_id});
}

void Store::purge_queue(const std::string& vhost, const std::string& queue) {
  impl_->enqueue(PurgeQueue{vhost, queue});
}

void Store::drop_entries_from(const std::string& vhost, const std::string& queue,
                              uint64_t from_seq) {
  impl_->enqueue(DropEntriesFrom{vhost, queue, from_seq});
}

void Store::load_entries(const std::string& vhost, const std::string& queue, uint64_t from_seq,
                         size_t max_count, uint64_t max_bytes,
                         std::function<void(std::vector<LoadedEntry>, bool)> done) {
  impl_->enqueue(LoadEntries{vhost, queue, from_seq, max_count, max_bytes, std::move(done), {}});
}

void Store::put_delayed(uint64_t id, const std::string& vhost, const std::string& exchange,
                        const std::string& routing_key, int64_t due_unix_ms,
                        std::string_view properties, std::string_view body) {
  impl_->enqueue(PutDelayed{id, vhost, exchange, routing_key, due_unix_ms, properties, body});
}

void Store::delete_delayed(uint64_t id) { impl_->enqueue(DeleteDelayed{id}); }

void Store::sync(std::function<void(bool ok)> done) { impl_->enqueue(Sync{std::move(done)}); }

void Store::begin_group() { ++impl_->group_depth_; }

void Store::end_group() { impl_->end_group(); }

bool Store::healthy() const { return !impl_->failed_.load(std::memory_order_acquire); }

std::string Store::last_error() const {
  std::lock_guard lk(impl_->error_mu_);
  return impl_->last_error_;
}

uint64_t Store::size_bytes() const {
  uint64_t total = 0;
  for (const std::string& p : {impl_->path_, impl_->path_ + "-wal"}) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(p, ec);
    if (!ec) total += n;
  }
  return total;
}

void Store::inject_failure_for_tests() { impl_->inject_failure_.store(true); }

}  // namespace warren::persistence
