// persistence::Store (persistence/store.h) on a temporary data directory.
// Concerns covered:
//  - open() creates DATA_DIR/warren.db with meta application='warren', schema_version=5,
//    WAL and the larger page size; reopening works and recovers nothing from an empty store;
//  - open() refuses, with a StoreError and never a crash: a SQLite file without Warren's meta
//    (or with another application's), random bytes, a text file, a newer schema_version;
//  - topology round trip: exchanges, queues, bindings; upserts replace, deletes remove;
//    delete_exchange drops its bindings as source and as destination; binding identity
//    includes the arguments;
//  - a message is stored once for two entries, survives the first remove_entry and goes with
//    the last; empty and binary (NUL) bytes round-trip; max_message_id;
//  - entries come back per queue in seq order with the delivered flag;
//  - purge_queue drops the queue's entries and messages only it held;
//  - delete_queue drops the queue, its entries, bindings to it and orphaned messages, keeping
//    what other queues share;
//  - recover drops a message whose entry never committed (put_message alone);
//  - group commit: 1000 puts then one sync give a single callback ok=true and every row
//    after reopen; many syncs complete in call order, on the Poster;
//  - ~Store commits what is queued and runs pending completions;
//  - failure injection: after inject_failure_for_tests a sync reports false, healthy() turns
//    false with last_error() set, later syncs report false (with and without writes), and
//    data committed before the failure is still there after reopen while later data is not.
#include <doctest/doctest.h>

#include <sqlite3.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "persistence/store.h"

using namespace warren::persistence;
namespace fs = std::filesystem;

namespace {

// A fresh directory, removed with everything in it.
struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "warren-store-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string db() const { return (path / "warren.db").string(); }
  fs::path path;
};

// The broker thread's stand-in: the writer posts completions here; the test thread runs them.
struct Inbox {
  void post(std::function<void()> f) {
    std::lock_guard lk(mu);
    queued.push_back(std::move(f));
    cv.notify_all();
  }
  Poster poster() {
    return [this](std::function<void()> f) { post(std::move(f)); };
  }
  // Runs posted completions on this thread until `done()` holds.
  void run_until(const std::function<bool()>& done) {
    while (!done()) {
      std::vector<std::function<void()>> now;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return !queued.empty(); });
        now.swap(queued);
      }
      for (auto& f : now) f();
    }
  }
  size_t pending() {
    std::lock_guard lk(mu);
    return queued.size();
  }

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::function<void()>> queued;
};

bool sync_now(Store& s, Inbox& inbox) {
  std::optional<bool> result;
  s.sync([&](bool ok) { result = ok; });
  inbox.run_until([&] { return result.has_value(); });
  return *result;
}

// Opens, recovers, closes: what a restarted broker would see.
Recovered reopen(const TempDir& dir) {
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  return s->recover();
}

// Direct SQLite access for checks and for crafting foreign files.
struct Db {
  explicit Db(const std::string& path) { REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK); }
  ~Db() { sqlite3_close(db); }
  void exec(const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    INFO(sql, ": ", err ? err : "");
    sqlite3_free(err);
    REQUIRE(rc == SQLITE_OK);
  }
  std::string text(const char* sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const auto* p = sqlite3_column_text(s, 0);
    std::string out = p ? reinterpret_cast<const char*>(p) : "";
    sqlite3_finalize(s);
    return out;
  }
  sqlite3* db = nullptr;
};

std::string open_error(const TempDir& dir) {
  Inbox inbox;
  try {
    Store::open(dir.path.string(), inbox.poster());
  } catch (const StoreError& e) {
    return e.what();
  }
  return "";
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// put_message keeps views until the next sync: string literals outlive it.
void put(Store& s, uint64_t id, const char* body) {
  s.put_message(id, "ex", "rk", "props", body);
}

std::vector<uint64_t> ids(const Recovered& r, const std::string& vhost, const std::string& q) {
  std::vector<uint64_t> out;
  auto it = r.entries.find({vhost, q});
  if (it != r.entries.end()) {
    for (const auto& e : it->second) out.push_back(e.message_id);
  }
  return out;
}

}  // namespace

TEST_CASE("a new data directory gets a Warren database with schema version 1") {
  TempDir dir;
  {
    Inbox inbox;
    auto s = Store::open((dir.path / "sub").string(), inbox.poster());  // created if missing
    Recovered r = s->recover();
    CHECK(r.exchanges.empty());
    CHECK(r.queues.empty());
    CHECK(r.messages.empty());
    CHECK(r.max_message_id == 0);
    CHECK(s->healthy());
    CHECK(s->last_error().empty());
    CHECK(s->size_bytes() > 0);
  }
  const std::string db = (dir.path / "sub" / "warren.db").string();
  REQUIRE(fs::exists(db));
  {
    Db raw(db);
    CHECK(raw.text("SELECT value FROM meta WHERE key='application'") == "warren");
    CHECK(raw.text("SELECT value FROM meta WHERE key='schema_version'") == "5");
    CHECK(raw.text("PRAGMA journal_mode") == "wal");
    CHECK(raw.text("PRAGMA page_size") == "8192");
  }
  Inbox inbox;
  auto again = Store::open((dir.path / "sub").string(), inbox.poster());
  CHECK(again->recover().queues.empty());
  CHECK(sync_now(*again, inbox));
}

TEST_CASE("open refuses files that are not Warren's") {
  TempDir dir;
  SUBCASE("a SQLite database of something else") {
    Db raw(dir.db());
    raw.exec("CREATE TABLE foo (x INTEGER)");
    CHECK(open_error(dir).find("not a Warren database") != std::string::npos);
  }
  SUBCASE("another application's meta table") {
    Db raw(dir.db());
    raw.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
             "INSERT INTO meta VALUES ('application', 'other'), ('schema_version', 1)");
    CHECK(open_error(dir).find("not a Warren database") != std::string::npos);
  }
  SUBCASE("random bytes") {
    std::mt19937 rng(42);
    std::string bytes(8192, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    write_file(dir.db(), bytes);
    CHECK(open_error(dir).find("file is not a database") != std::string::npos);
  }
  SUBCASE("a text file") {
    write_file(dir.db(), std::string(600, 'a') + "\n");
    CHECK(open_error(dir).find("file is not a database") != std::string::npos);
  }
}

TEST_CASE("open refuses a newer schema version") {
  TempDir dir;
  { reopen(dir); }
  {
    Db raw(dir.db());
    raw.exec("UPDATE meta SET value = 6 WHERE key = 'schema_version'");
  }
  const std::string err = open_error(dir);
  CHECK(err.find("schema version 6") != std::string::npos);
  CHECK(err.find("newer") != std::string::npos);
}

TEST_CASE("topology round trip: upserts replace, deletes remove") {
  TempDir dir;
  const std::string args("\x00\x00\x00\x00", 4);
  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->put_exchange({"/", "x1", "direct", false, false, args});
    s->put_exchange({"/", "x1", "topic", true, true, "A"});  // upsert
    s->put_exchange({"/", "x2", "fanout", false, false, ""});
    s->put_exchange({"v2", "x1", "headers", false, false, ""});  // other vhost, same name
    s->put_queue({"/", "q1", false, args});
    s->put_queue({"/", "q1", true, "B"});  // upsert
    s->put_queue({"/", "q2", false, ""});
    s->put_binding({"/", "x1", "q1", false, "k", ""});
    s->put_binding({"/", "x1", "q1", false, "k", ""});    // duplicate: ignored
    s->put_binding({"/", "x1", "q1", false, "k", "A"});   // other arguments: another binding
    s->put_binding({"/", "x2", "q2", false, "k2", ""});
    s->put_binding({"/", "x2", "x1", true, "e2e", ""});   // x1 as a destination
    s->put_binding({"/", "x2", "q2", false, "gone", ""});
    s->delete_binding({"/", "x2", "q2", false, "gone", ""});
    REQUIRE(sync_now(*s, inbox));
  }
  Recovered r = reopen(dir);
  REQUIRE(r.exchanges.size() == 3);
  std::map<std::pair<std::string, std::string>, StoredExchange> xs;
  for (auto& x : r.exchanges) xs[{x.vhost, x.name}] = x;
  CHECK(xs[{"/", "x1"}].type == "topic");
  CHECK(xs[{"/", "x1"}].auto_delete);
  CHECK(xs[{"/", "x1"}].internal);
  CHECK(xs[{"/", "x1"}].arguments == "A");
  CHECK(xs[{"/", "x2"}].type == "fanout");
  CHECK(xs[{"v2", "x1"}].type == "headers");
  REQUIRE(r.queues.size() == 2);
  for (auto& q : r.queues) {
    if (q.name == "q1") {
      CHECK(q.auto_delete);
      CHECK(q.arguments == "B");
    } else {
      CHECK(q.name == "q2");
      CHECK_FALSE(q.auto_delete);
    }
  }
  CHECK(r.bindings.size() == 4);

  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->delete_exchange("/", "x1");  // its bindings go too, as source and as destination
    REQUIRE(sync_now(*s, inbox));
  }
  r = reopen(dir);
  CHECK(r.exchanges.size() == 2);
  REQUIRE(r.bindings.size() == 1);
  CHECK(r.bindings[0].source == "x2");
  CHECK(r.bindings[0].destination == "q2");
  CHECK(r.bindings[0].routing_key == "k2");
  CHECK_FALSE(r.bindings[0].destination_is_exchange);
}

TEST_CASE("a message is stored once for two entries and goes with the last") {
  TempDir dir;
  const std::string body("bin\0ary", 7);
  Inbox inbox;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->put_queue({"/", "a", false, ""});
    s->put_queue({"/", "b", false, ""});
    s->put_message(7, "amq.fanout", "", std::string_view(), body);  // empty properties
    s->add_entry("/", "a", {7, 1, false});
    s->add_entry("/", "b", {7, 1, false});
    s->put_message(9, "", "q", "p", "");  // empty body
    s->add_entry("/", "a", {9, 2, false});
    REQUIRE(sync_now(*s, inbox));
  }
  {
    Db raw(dir.db());
    CHECK(raw.text("SELECT count(*) FROM messages") == "2");
    CHECK(raw.text("SELECT refs FROM messages WHERE id = 7") == "2");
  }
  Recovered r = reopen(dir);
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[7].exchange == "amq.fanout");
  CHECK(r.messages[7].routing_key.empty());
  CHECK(r.messages[7].properties.empty());
  CHECK(r.messages[7].body == body);
  CHECK(r.messages[9].body.empty());
  CHECK(r.messages[9].properties == "p");
  CHECK(r.max_message_id == 9);
  CHECK(ids(r, "/", "a") == std::vector<uint64_t>{7, 9});
  CHECK(ids(r, "/", "b") == std::vector<uint64_t>{7});

  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->remove_entry("/", "a", 7);
    REQUIRE(sync_now(*s, inbox));
  }
  r = reopen(dir);
  CHECK(r.messages.count(7) == 1);  // still in b
  CHECK(ids(r, "/", "a") == std::vector<uint64_t>{9});
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->remove_entry("/", "b", 7);
    s->remove_entry("/", "b", 12345);  // unknown: no effect, no failure
    REQUIRE(sync_now(*s, inbox));
    CHECK(s->healthy());
  }
  r = reopen(dir);
  CHECK(r.messages.count(7) == 0);
  CHECK(r.messages.size() == 1);
  CHECK(r.entries.count({"/", "b"}) == 0);
}

TEST_CASE("entries come back in seq order with the delivered flag") {
  TempDir dir;
  Inbox inbox;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    for (uint64_t id : {1, 2, 3, 4}) put(*s, id, "m");
    // Requeued messages go back to their original positions: seq order is not insertion order.
    s->add_entry("/", "q", {3, 30, false});
    s->add_entry("/", "q", {1, 10, false});
    s->add_entry("/", "q", {4, 40, false});
    s->add_entry("/", "q", {2, 20, false});
    s->add_entry("v", "q", {2, 5, false});  // same name in another vhost
    s->mark_delivered("/", "q", 1);
    s->mark_delivered("/", "q", 4);
    REQUIRE(sync_now(*s, inbox));
  }
  Recovered r = reopen(dir);
  const auto& q = r.entries[{"/", "q"}];
  REQUIRE(q.size() == 4);
  CHECK(q[0].seq == 10);
  CHECK(q[1].seq == 20);
  CHECK(q[2].seq == 30);
  CHECK(q[3].seq == 40);
  CHECK(ids(r, "/", "q") == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(q[0].delivered);
  CHECK_FALSE(q[1].delivered);
  CHECK_FALSE(q[2].delivered);
  CHECK(q[3].delivered);
  REQUIRE(r.entries[{"v", "q"}].size() == 1);
  CHECK_FALSE(r.entries[{"v", "q"}][0].delivered);  // marks are per queue
}

TEST_CASE("purge_queue drops the queue's entries and the messages only it held") {
  TempDir dir;
  Inbox inbox;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    put(*s, 1, "shared");
    put(*s, 2, "only a");
    s->add_entry("/", "a", {1, 1, false});
    s->add_entry("/", "b", {1, 1, false});
    s->add_entry("/", "a", {2, 2, false});
    s->purge_queue("/", "a");
    put(*s, 3, "after purge");
    s->add_entry("/", "a", {3, 3, false});
    REQUIRE(sync_now(*s, inbox));
  }
  Recovered r = reopen(dir);
  CHECK(ids(r, "/", "a") == std::vector<uint64_t>{3});
  CHECK(ids(r, "/", "b") == std::vector<uint64_t>{1});
  CHECK(r.messages.count(1) == 1);
  CHECK(r.messages.count(2) == 0);
  CHECK(r.messages.count(3) == 1);
}

TEST_CASE("delete_queue drops its entries, bindings to it and orphaned messages") {
  TempDir dir;
  Inbox inbox;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->put_exchange({"/", "x", "direct", false, false, ""});
    s->put_queue({"/", "a", false, ""});
    s->put_queue({"/", "b", false, ""});
    s->put_binding({"/", "x", "a", false, "ka", ""});
    s->put_binding({"/", "amq.direct", "a", false, "a", ""});
    s->put_binding({"/", "x", "b", false, "kb", ""});
    s->put_binding({"/", "x", "a", true, "ex-named-a", ""});  // exchange 'a': not the queue
    put(*s, 1, "shared");
    put(*s, 2, "only a");
    s->add_entry("/", "a", {1, 1, false});
    s->add_entry("/", "b", {1, 1, false});
    s->add_entry("/", "a", {2, 2, false});
    s->delete_queue("/", "a");
    REQUIRE(sync_now(*s, inbox));
  }
  Recovered r = reopen(dir);
  REQUIRE(r.queues.size() == 1);
  CHECK(r.queues[0].name == "b");
  CHECK(r.entries.count({"/", "a"}) == 0);
  CHECK(ids(r, "/", "b") == std::vector<uint64_t>{1});
  CHECK(r.messages.count(1) == 1);
  CHECK(r.messages.count(2) == 0);
  REQUIRE(r.bindings.size() == 2);
  for (const auto& b : r.bindings) CHECK((b.destination == "b" || b.destination_is_exchange));
  CHECK(r.exchanges.size() == 1);
}

TEST_CASE("recover drops a message whose entry never committed") {
  TempDir dir;
  Inbox inbox;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    put(*s, 5, "kept");
    s->add_entry("/", "q", {5, 1, false});
    put(*s, 6, "orphan");  // as if the broker stopped before its add_entry's batch
    REQUIRE(sync_now(*s, inbox));
  }
  Recovered r = reopen(dir);
  CHECK(r.messages.size() == 1);
  CHECK(r.messages.count(5) == 1);
  CHECK(r.max_message_id == 5);
}

TEST_CASE("group commit: 1000 puts and one sync give one callback and every row") {
  TempDir dir;
  Inbox inbox;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    std::vector<std::string> bodies;
    bodies.reserve(1000);
    for (uint64_t id = 1; id <= 1000; ++id) {
      bodies.push_back(std::string(1024, static_cast<char>('a' + id % 26)));
      s->put_message(id, "ex", "rk", "props", bodies.back());  // views into `bodies`
      s->add_entry("/", "q", {id, id, false});
    }
    int calls = 0;
    bool ok = false;
    s->sync([&](bool r) {
      ++calls;
      ok = r;
    });
    inbox.run_until([&] { return calls > 0; });
    CHECK(calls == 1);
    CHECK(ok);
    CHECK(inbox.pending() == 0);
  }
  Recovered r = reopen(dir);
  REQUIRE(r.messages.size() == 1000);
  CHECK(r.messages[500].body == std::string(1024, static_cast<char>('a' + 500 % 26)));
  CHECK(r.entries[{"/", "q"}].size() == 1000);
  CHECK(r.max_message_id == 1000);
}

TEST_CASE("many syncs complete in call order on the Poster") {
  TempDir dir;
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  s->recover();
  const std::thread::id test_thread = std::this_thread::get_id();
  std::vector<int> order;
  bool on_test_thread = true;
  for (int i = 0; i < 200; ++i) {
    put(*s, static_cast<uint64_t>(i + 1), "m");
    s->add_entry("/", "q", {static_cast<uint64_t>(i + 1), static_cast<uint64_t>(i), false});
    s->sync([&, i](bool ok) {
      CHECK(ok);
      on_test_thread = on_test_thread && std::this_thread::get_id() == test_thread;
      order.push_back(i);
    });
  }
  inbox.run_until([&] { return order.size() == 200; });
  CHECK(on_test_thread);
  for (int i = 0; i < 200; ++i) CHECK(order[static_cast<size_t>(i)] == i);
}

TEST_CASE("~Store commits what is queued and runs pending completions") {
  TempDir dir;
  Inbox inbox;
  std::optional<bool> result;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->put_queue({"/", "late", false, ""});
    put(*s, 1, "late");
    s->add_entry("/", "late", {1, 1, false});
    s->sync([&](bool ok) { result = ok; });
  }
  inbox.run_until([&] { return result.has_value(); });
  CHECK(*result);
  Recovered r = reopen(dir);
  CHECK(r.queues.size() == 1);
  CHECK(r.messages.count(1) == 1);
}

TEST_CASE("after a failed commit the store refuses every later write") {
  TempDir dir;
  Inbox inbox;
  {
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->put_queue({"/", "before", false, ""});
    put(*s, 1, "before");
    s->add_entry("/", "before", {1, 1, false});
    REQUIRE(sync_now(*s, inbox));
    CHECK(s->healthy());

    s->inject_failure_for_tests();
    s->put_queue({"/", "during", false, ""});
    put(*s, 2, "during");
    s->add_entry("/", "during", {2, 1, false});
    CHECK_FALSE(sync_now(*s, inbox));
    CHECK_FALSE(s->healthy());
    CHECK(s->last_error().find("injected") != std::string::npos);

    s->put_queue({"/", "after", false, ""});
    s->remove_entry("/", "before", 1);
    CHECK_FALSE(sync_now(*s, inbox));
    CHECK_FALSE(sync_now(*s, inbox));  // a sync with nothing to write fails too
    CHECK_FALSE(s->healthy());
  }
  Recovered r = reopen(dir);
  REQUIRE(r.queues.size() == 1);
  CHECK(r.queues[0].name == "before");
  CHECK(ids(r, "/", "before") == std::vector<uint64_t>{1});
  CHECK(r.messages.size() == 1);
  CHECK(r.messages[1].body == "before");
}

TEST_CASE("a failure injected with nothing to write fails the next sync") {
  TempDir dir;
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  s->recover();
  s->inject_failure_for_tests();
  CHECK_FALSE(sync_now(*s, inbox));
  CHECK_FALSE(s->healthy());
}

TEST_CASE("a version 1 database is migrated to the current version and keeps its data") {
  TempDir dir;
  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->put_queue(StoredQueue{"/", "kept", false, std::string("\x00\x00\x00\x00", 4)});
    REQUIRE(sync_now(*s, inbox));
  }
  {
    // Make it look like a file written by schema version 1.
    Db raw(dir.db());
    raw.exec("DROP TABLE delayed");
    raw.exec("ALTER TABLE entries DROP COLUMN transient");
    raw.exec("ALTER TABLE entries DROP COLUMN expires_unix_ms");
    raw.exec("DROP TABLE users; DROP TABLE vhosts; DROP TABLE permissions; "
             "DROP TABLE topic_permissions; DROP TABLE vhost_limits; DROP TABLE policies");
    raw.exec("UPDATE meta SET value = 1 WHERE key = 'schema_version'");
  }
  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    auto r = s->recover();
    REQUIRE(r.queues.size() == 1);
    CHECK(r.queues[0].name == "kept");
    CHECK(r.delayed.empty());
    s->put_delayed(7, "/", "dx", "k", 123456, "props", "body");
    REQUIRE(sync_now(*s, inbox));
  }
  {
    Db raw(dir.db());
    CHECK(raw.text("SELECT value FROM meta WHERE key='schema_version'") == "5");
  }
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  auto r = s->recover();
  REQUIRE(r.delayed.size() == 1);
  CHECK(r.delayed[0].id == 7);
  CHECK(r.delayed[0].exchange == "dx");
  CHECK(r.delayed[0].due_unix_ms == 123456);
  CHECK(r.delayed[0].properties == "props");
  CHECK(r.delayed[0].body == "body");
  CHECK(r.max_message_id >= 7);
  s->delete_delayed(7);
  REQUIRE(sync_now(*s, inbox));
  s.reset();
  Inbox inbox2;
  auto s2 = Store::open(dir.path.string(), inbox2.poster());
  CHECK(s2->recover().delayed.empty());
}

// ---- Paging ----

namespace {
std::vector<LoadedEntry> load_now(Store& s, Inbox& inbox, const std::string& q, uint64_t from,
                                  size_t count, uint64_t bytes) {
  std::optional<std::vector<LoadedEntry>> out;
  s.load_entries("/", q, from, count, bytes,
                 [&](std::vector<LoadedEntry> v, bool ok) {
                   CHECK(ok);
                   out = std::move(v);
                 });
  inbox.run_until([&] { return out.has_value(); });
  return std::move(*out);
}
}  // namespace

TEST_CASE("recover loads each queue up to the window and describes the paged tail") {
  TempDir dir;
  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    // 10 messages of 4 bytes each in q; one in small.
    for (uint64_t i = 1; i <= 10; ++i) {
      put(*s, i, "abcd");
      s->add_entry("/", "q", {i, i * 10, i == 2, false, i == 3 ? 777 : 0});
    }
    put(*s, 11, "x");
    s->add_entry("/", "small", {11, 1, false});
    REQUIRE(sync_now(*s, inbox));
  }
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  Recovered r = s->recover(12);  // 12 bytes: three 4-byte bodies come into memory
  CHECK(ids(r, "/", "q") == std::vector<uint64_t>{1, 2, 3});
  CHECK(r.entries[{"/", "q"}][1].delivered);
  CHECK(r.entries[{"/", "q"}][2].expires_unix_ms == 777);
  CHECK(ids(r, "/", "small") == std::vector<uint64_t>{11});
  CHECK(r.messages.size() == 4);  // only the loaded ones are read
  CHECK(r.max_message_id == 11);
  REQUIRE(r.paged.count({"/", "q"}) == 1);
  const PagedTail& t = r.paged[{"/", "q"}];
  CHECK(t.count == 7);
  CHECK(t.bytes == 28);
  CHECK(t.from_seq == 40);
  CHECK(t.max_seq == 100);
  CHECK(r.paged.count({"/", "small"}) == 0);

  // The tail reads back in order, in batches bounded by count and by bytes.
  auto a = load_now(*s, inbox, "q", t.from_seq, 2, 1000);
  REQUIRE(a.size() == 2);
  CHECK(a[0].entry.seq == 40);
  CHECK(a[0].entry.message_id == 4);
  CHECK(a[0].message.body == "abcd");
  CHECK(a[0].message.exchange == "ex");
  CHECK(a[1].entry.seq == 50);
  auto b = load_now(*s, inbox, "q", 60, 100, 5);  // stops once 5 bytes are read: 2 bodies
  REQUIRE(b.size() == 2);
  CHECK(b[1].entry.seq == 70);
  // Durable entries stay in the store after a read.
  CHECK(load_now(*s, inbox, "q", 40, 100, 1000).size() == 7);
}

TEST_CASE("transient entries are swap space: read once, and gone after a restart") {
  TempDir dir;
  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    s->put_queue(StoredQueue{"/", "d", false, std::string("\x00\x00\x00\x00", 4)});
    put(*s, 1, "durable");
    s->add_entry("/", "d", {1, 1, false});
    put(*s, 2, "swap");  // shared by a durable entry and a transient one
    s->add_entry("/", "d", {2, 2, false});
    s->add_entry("/", "t", {2, 5, true, true, 0});
    put(*s, 3, "swap only");
    s->add_entry("/", "t", {3, 6, false, true, 0});
    s->add_entry("/", "t", {3, 7, false, true, 0});
    REQUIRE(sync_now(*s, inbox));
    auto got = load_now(*s, inbox, "t", 6, 1, 1000);
    REQUIRE(got.size() == 1);
    CHECK(got[0].entry.transient);
    CHECK(got[0].message.body == "swap only");
    // Read once: the transient entry read is gone, the other one stays.
    auto again = load_now(*s, inbox, "t", 0, 100, 1000);
    REQUIRE(again.size() == 2);
    CHECK(again[0].entry.seq == 5);
    CHECK(again[0].entry.delivered);
    CHECK(again[1].entry.seq == 7);
    CHECK(load_now(*s, inbox, "t", 0, 100, 1000).empty());
    // Put back, then the broker stops.
    s->add_entry("/", "t", {3, 8, false, true, 0});
    REQUIRE(sync_now(*s, inbox));
  }
  Recovered r = reopen(dir);
  CHECK(ids(r, "/", "d") == std::vector<uint64_t>{1, 2});
  CHECK(r.entries.count({"/", "t"}) == 0);
  Db raw(dir.db());
  CHECK(raw.text("SELECT count(*) FROM messages") == "2");  // message 3 went with its entries
}

TEST_CASE("drop_entries_from removes the paged part and its messages") {
  TempDir dir;
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  s->recover();
  for (uint64_t i = 1; i <= 5; ++i) {
    put(*s, i, "m");
    s->add_entry("/", "q", {i, i, false});
  }
  s->drop_entries_from("/", "q", 3);
  REQUIRE(sync_now(*s, inbox));
  auto left = load_now(*s, inbox, "q", 0, 100, 1000);
  REQUIRE(left.size() == 2);
  CHECK(left[1].entry.seq == 2);
  Db raw(dir.db());
  CHECK(raw.text("SELECT count(*) FROM messages") == "2");
}

TEST_CASE("a failed store still reads paged entries back") {
  TempDir dir;
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  s->recover();
  put(*s, 1, "kept");
  s->add_entry("/", "q", {1, 1, false, true, 0});
  REQUIRE(sync_now(*s, inbox));
  s->inject_failure_for_tests();
  s->add_entry("/", "q", {1, 2, false, true, 0});
  CHECK_FALSE(sync_now(*s, inbox));
  std::optional<std::vector<LoadedEntry>> out;
  bool ok = true;
  s->load_entries("/", "q", 0, 10, 1000, [&](std::vector<LoadedEntry> v, bool k) {
    ok = k;
    out = std::move(v);
  });
  inbox.run_until([&] { return out.has_value(); });
  CHECK_FALSE(ok);
  REQUIRE(out->size() == 1);
  CHECK((*out)[0].message.body == "kept");
}

namespace {
// Counts the rows SQLite actually inserts into entries and messages, whatever is deleted later.
void count_inserts(const TempDir& dir) {
  Db raw(dir.db());
  raw.exec("CREATE TABLE inserted (what TEXT);"
           "CREATE TRIGGER count_entries AFTER INSERT ON entries "
           "BEGIN INSERT INTO inserted VALUES ('entry'); END;"
           "CREATE TRIGGER count_messages AFTER INSERT ON messages "
           "BEGIN INSERT INTO inserted VALUES ('message'); END;");
}
std::string inserted(const TempDir& dir, const char* what) {
  Db raw(dir.db());
  return raw.text(("SELECT count(*) FROM inserted WHERE what = '" + std::string(what) + "'").c_str());
}
}  // namespace

TEST_CASE("an entry added and removed in one batch never reaches the disk") {
  TempDir dir;
  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    s->recover();
    count_inserts(dir);
    s->begin_group();  // one hand-off: the writer sees all of it in one batch
    put(*s, 1, "acked at once");
    s->add_entry("/", "q", {1, 1, false});
    s->mark_delivered("/", "q", 1);
    put(*s, 2, "in two queues");
    s->add_entry("/", "a", {2, 1, false});
    s->add_entry("/", "b", {2, 1, false});
    s->remove_entry("/", "q", 1);
    s->remove_entry("/", "a", 2);
    s->remove_entry("/", "a", 99);  // nothing to cancel against: runs as a no-op
    s->end_group();
    REQUIRE(sync_now(*s, inbox));
    // Only message 2 and its entry in b were written at all.
    CHECK(inserted(dir, "message") == "1");
    CHECK(inserted(dir, "entry") == "1");
    Db raw(dir.db());
    CHECK(raw.text("SELECT count(*) FROM messages") == "1");
    CHECK(raw.text("SELECT count(*) FROM entries") == "1");
    // A remove in a later batch still deletes what an earlier batch wrote.
    s->remove_entry("/", "b", 2);
    REQUIRE(sync_now(*s, inbox));
    CHECK(raw.text("SELECT count(*) FROM messages") == "0");
  }
  Recovered r = reopen(dir);
  CHECK(r.entries.empty());
}

TEST_CASE("nested groups hand their operations over once, at the outer end") {
  TempDir dir;
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  s->recover();
  s->begin_group();
  s->begin_group();
  put(*s, 1, "grouped");
  s->add_entry("/", "q", {1, 1, false});
  s->end_group();
  bool synced = false;
  s->sync([&](bool) { synced = true; });
  // Still inside the outer group: the writer has seen nothing, so nothing completes.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(inbox.pending() == 0);
  {
    Db raw(dir.db());
    CHECK(raw.text("SELECT count(*) FROM entries") == "0");
  }
  s->end_group();
  inbox.run_until([&] { return synced; });
  Db raw(dir.db());
  CHECK(raw.text("SELECT count(*) FROM entries") == "1");
}

TEST_CASE("access data round trip: users, vhosts, permissions, topic permissions, limits, policies") {
  TempDir dir;
  {
    Inbox inbox;
    auto s = Store::open(dir.path.string(), inbox.poster());
    CHECK_FALSE(s->recover().access.initialized);
    s->put_user(StoredUser{"u", "hash", "rabbit_password_hashing_sha512", "a,b"});
    s->put_user(StoredUser{"gone", "h", "rabbit_password_hashing_sha256", ""});
    s->put_vhost(StoredVhost{"v", "desc", "t"});
    s->put_vhost(StoredVhost{"w", "", ""});
    s->put_permission(StoredPermission{"u", "v", "^c", "^w", "^r"});
    s->put_permission(StoredPermission{"u", "v", "^c2", "^w", "^r"});  // upsert
    s->put_permission(StoredPermission{"gone", "v", ".*", ".*", ".*"});
    s->put_permission(StoredPermission{"u", "w", ".*", ".*", ".*"});
    s->put_topic_permission(StoredTopicPermission{"u", "v", "amq.topic", "^a", "^b"});
    s->put_vhost_limit(StoredVhostLimit{"v", "max-queues", 3});
    s->put_vhost_limit(StoredVhostLimit{"w", "max-queues", 9});
    s->put_queue(StoredQueue{"w", "wq", false, std::string("\x00\x00\x00\x00", 4)});
    s->put_policy(StoredPolicy{"v", "p", false, "^a", "queues", R"({"max-length":1})", 1});
    s->put_policy(StoredPolicy{"v", "p", false, "^b", "all", R"({"max-length":2})", 3});  // upsert
    s->put_policy(StoredPolicy{"v", "p", true, "^o", "queues", R"({"max-length":5})", 0});
    s->put_policy(StoredPolicy{"v", "gone", false, ".*", "all", R"({"expires":9})", 0});
    s->delete_policy("v", "gone", false);
    s->put_policy(StoredPolicy{"w", "wp", false, ".*", "all", R"({"expires":9})", 0});
    s->delete_user("gone");
    s->delete_vhost("w");
    s->mark_access_initialized();
    REQUIRE(sync_now(*s, inbox));
  }
  Inbox inbox;
  auto s = Store::open(dir.path.string(), inbox.poster());
  Recovered r = s->recover();
  const RecoveredAccess& a = r.access;
  CHECK(a.initialized);
  REQUIRE(a.users.size() == 1);
  CHECK(a.users[0].name == "u");
  CHECK(a.users[0].hashing_algorithm == "rabbit_password_hashing_sha512");
  CHECK(a.users[0].tags == "a,b");
  REQUIRE(a.vhosts.size() == 1);
  CHECK(a.vhosts[0].description == "desc");
  REQUIRE(a.permissions.size() == 1);
  CHECK(a.permissions[0].configure == "^c2");
  REQUIRE(a.topic_permissions.size() == 1);
  CHECK(a.topic_permissions[0].read == "^b");
  REQUIRE(a.vhost_limits.size() == 1);
  CHECK(a.vhost_limits[0].value == 3);
  REQUIRE(a.policies.size() == 2);
  CHECK(a.policies[0].pattern == "^b");
  CHECK(a.policies[0].priority == 3);
  CHECK_FALSE(a.policies[0].operator_policy);
  CHECK(a.policies[1].operator_policy);
  CHECK(a.policies[1].definition == R"({"max-length":5})");
  CHECK(r.queues.empty());  // the deleted vhost's queue went with it
}
