// store_bench: how fast the Store makes persistent messages durable.
//
// Usage: store_bench [N] [DIR]. For each B in 1, 100, 1000 it writes N 1 KiB messages (one
// entry each, like a publish to one durable queue) into a fresh DIR/bench-B/warren.db,
// calling sync() after every B messages and waiting for it (one publisher waiting for its
// confirms), and prints messages/s. A last line does B = 1 without waiting: many syncs in
// flight, which group commit folds into few fsyncs (many publishers with confirms).
// B = 1 is capped at N/10 messages so a slow disk does not take minutes.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>

#include "persistence/store.h"

using warren::persistence::Store;
using warren::persistence::StoredEntry;

namespace {

struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t done = 0;
  bool all_ok = true;

  void complete(bool ok) {
    std::lock_guard lk(mu);
    ++done;
    all_ok = all_ok && ok;
    cv.notify_all();
  }
  void wait_for(uint64_t n) {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done >= n; });
  }
};

double run(const std::filesystem::path& dir, uint64_t n, uint64_t b, bool wait_each) {
  std::filesystem::remove_all(dir);
  Waiter w;
  // Completions run on the writer thread: the bench has no event loop.
  auto store = Store::open(dir.string(), [](std::function<void()> f) { f(); });
  store->recover();
  static const std::string body(1024, 'x');
  static const std::string props("\x10\x00\x02", 3);  // delivery-mode = 2
  const auto start = std::chrono::steady_clock::now();
  uint64_t syncs = 0;
  for (uint64_t id = 1; id <= n; ++id) {
    store->put_message(id, "amq.direct", "bench", props, body);
    store->add_entry("/", "bench", StoredEntry{id, id, false});
    if (id % b == 0 || id == n) {
      store->sync([&w](bool ok) { w.complete(ok); });
      ++syncs;
      if (wait_each) w.wait_for(syncs);
    }
  }
  w.wait_for(syncs);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!w.all_ok) {
    std::fprintf(stderr, "store_bench: a sync failed: %s\n", store->last_error().c_str());
    std::exit(1);
  }
  store.reset();
  std::filesystem::remove_all(dir);
  return static_cast<double>(n) / secs;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
  const std::filesystem::path root =
      argc > 2 ? std::filesystem::path(argv[2])
               : std::filesystem::temp_directory_path() / "warren-store-bench";
  if (n == 0) {
    std::fprintf(stderr, "usage: store_bench [N] [DIR]\n");
    return 2;
  }
  try {
    for (uint64_t b : {1u, 100u, 1000u}) {
      const uint64_t count = b == 1 ? std::max<uint64_t>(n / 10, 1) : n;
      const double rate = run(root / ("bench-" + std::to_string(b)), count, b, true);
      std::printf("B=%-5llu  %8llu messages  %10.0f messages/s\n",
                  static_cast<unsigned long long>(b), static_cast<unsigned long long>(count),
                  rate);
    }
    const double rate = run(root / "bench-pipelined", n, 1, false);
    std::printf("B=1 pipelined (syncs not awaited)  %8llu messages  %10.0f messages/s\n",
                static_cast<unsigned long long>(n), rate);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_bench: %s\n", e.what());
    return 1;
  }
  std::filesystem::remove_all(root);
  return 0;
}
