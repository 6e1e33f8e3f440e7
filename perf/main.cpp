// warren-perf: an AMQP 0-9-1 load generator modelled on RabbitMQ's PerfTest.
//
// Threads: one per producer and one per consumer, each with its own connection and channel 1,
// plus the main thread, which samples the counters once a second and prints the report.
// Counters are written by their owner thread only (relaxed atomics) and read by the main
// thread; histograms and duplicate bitsets are touched by the main thread only after join.
//
// Each message body starts with the send time (steady clock, ns) and a sequence word
// (producer id << 48 | sequence), so consumers measure end-to-end latency and notice
// duplicates; after the run the consumers drain until every routed copy has arrived (or
// the drain timeout passes), so a lost message shows as `missing`.
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "amqp/frame.h"
#include "amqp/methods.h"
#include "amqp/properties.h"
#include "perf/amqp_client.h"
#include "perf/histogram.h"

namespace warren::perf {
namespace {

using Clock = std::chrono::steady_clock;
namespace po = boost::program_options;

constexpr uint16_t kChannel = 1;
constexpr size_t kMinSize = 16;  // send time (8 bytes) and sequence word (8 bytes)
constexpr int kProducerIdShift = 48;
constexpr uint64_t kSeqMask = (uint64_t{1} << kProducerIdShift) - 1;

std::atomic<bool> g_interrupted{false};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Options {
  Uri uri;
  int producers = 1;
  int consumers = 1;
  std::string queue = "warren-perf";
  int queues = 0;  // 0: the single queue `queue`; N: queue-1 .. queue-N
  size_t size = kMinSize;
  std::string exchange;  // "" is the default exchange
  std::string type = "direct";
  std::optional<std::string> routing_key;
  bool persistent = false;
  bool mandatory = false;
  bool durable_queue = false;
  bool auto_delete = true;
  uint32_t confirm = 0;
  uint16_t qos = 0;
  bool auto_ack = false;
  uint32_t multi_ack_every = 0;
  double rate = 0;
  double time = 0;
  uint64_t pmessages = 0;
  bool predeclared = false;
  bool json = false;
  bool quiet = false;
  double drain_timeout = 10;
  uint32_t batch = 1000;
  uint64_t consume_count = 0;    // stop once the consumers have received this many
  uint64_t topic_bindings = 0;   // generated */# bindings on a topic exchange
  uint32_t topic_keys = 4096;    // distinct routing keys the producers cycle through
  uint64_t idle_connections = 0;
  double hold = 10;
  double connect_timeout = 10;
  std::string ready_file;

  std::vector<std::string> queue_names;
};

// Scenario 9: `topic_bindings` distinct bindings of four-segment patterns with three words
// and one wildcard (`*` or `#`, at any position) spread over the queues, and `topic_keys`
// four-word routing keys. The vocabulary has V words with V^3 ~ bindings/4, so a key matches
// about four bindings. For four-word keys a pattern with one wildcard matches only when the
// wildcard stands for exactly one word, so the bindings matching a key are among the 8
// patterns made by replacing one of its words by `*` or `#`: that gives each key's queue count
// (deliveries per publish) without a full matcher.
struct TopicPlan {
  std::vector<std::pair<std::string, uint32_t>> bindings;  // pattern, queue index
  std::vector<std::string> keys;
  std::vector<uint32_t> copies;  // per key: distinct queues it reaches
};

TopicPlan make_topic_plan(uint64_t n_bindings, uint32_t n_keys, size_t n_queues) {
  TopicPlan plan;
  const auto vocab = static_cast<uint32_t>(
      std::max(2.0, std::round(std::cbrt(static_cast<double>(n_bindings) / 4.0))));
  std::mt19937_64 rng(20261125);
  auto word = [&] { return "w" + std::to_string(rng() % vocab); };
  std::unordered_map<std::string, std::vector<uint32_t>> by_pattern;
  std::set<std::pair<std::string, uint32_t>> seen;
  const uint64_t possible = uint64_t{vocab} * vocab * vocab * 8 * n_queues;
  n_bindings = std::min(n_bindings, possible / 2);
  while (plan.bindings.size() < n_bindings) {
    std::array<std::string, 4> w;
    const uint64_t r = rng();
    const size_t wild = r % 4;
    for (size_t i = 0; i < 4; ++i) w[i] = i == wild ? ((r >> 8) % 2 ? "#" : "*") : word();
    const std::string pattern = w[0] + "." + w[1] + "." + w[2] + "." + w[3];
    const auto q = static_cast<uint32_t>(rng() % n_queues);
    if (!seen.emplace(pattern, q).second) continue;
    plan.bindings.emplace_back(pattern, q);
    by_pattern[pattern].push_back(q);
  }
  for (uint32_t k = 0; k < n_keys; ++k) {
    std::array<std::string, 4> w = {word(), word(), word(), word()};
    plan.keys.push_back(w[0] + "." + w[1] + "." + w[2] + "." + w[3]);
    std::set<uint32_t> queues;
    for (size_t i = 0; i < 4; ++i) {
      for (const char* wild : {"*", "#"}) {
        std::array<std::string, 4> v = w;
        v[i] = wild;
        const auto it = by_pattern.find(v[0] + "." + v[1] + "." + v[2] + "." + v[3]);
        if (it != by_pattern.end()) queues.insert(it->second.begin(), it->second.end());
      }
    }
    plan.copies.push_back(static_cast<uint32_t>(queues.size()));
  }
  return plan;
}

// Where producer i's messages go, and how many consumed copies each one should produce.
std::string producer_queue(const Options& o, int i) {
  return o.queue_names[static_cast<size_t>(i) % o.queue_names.size()];
}
// Consumer j takes queue j (mod the queue count); with fewer consumers than queues it also
// takes queues j + consumers, j + 2 * consumers, ... so that every queue has a consumer.
std::vector<std::string> consumer_queues(const Options& o, int j) {
  std::vector<std::string> out;
  const size_t n = o.queue_names.size();
  out.push_back(o.queue_names[static_cast<size_t>(j) % n]);
  for (size_t q = static_cast<size_t>(j) + static_cast<size_t>(o.consumers); q < n;
       q += static_cast<size_t>(o.consumers)) {
    out.push_back(o.queue_names[q]);
  }
  return out;
}
bool queue_has_consumer(const Options& o, size_t) { return o.consumers > 0; }
std::string binding_key(const Options& o, const std::string& queue) {
  if (o.routing_key) return *o.routing_key;
  if (o.type == "fanout") return "";
  return queue;
}
std::string publish_key(const Options& o, int i) {
  if (o.routing_key) return *o.routing_key;
  if (!o.exchange.empty() && o.type == "fanout") return "";
  return producer_queue(o, i);
}
uint64_t consumed_copies(const Options& o, int i) {
  uint64_t n = 0;
  if (o.exchange.empty()) {
    const std::string key = publish_key(o, i);
    for (size_t q = 0; q < o.queue_names.size(); ++q) {
      if (o.queue_names[q] == key && queue_has_consumer(o, q)) ++n;
    }
    return n;
  }
  const bool to_all = o.type == "fanout" || o.routing_key.has_value();
  for (size_t q = 0; q < o.queue_names.size(); ++q) {
    if (!queue_has_consumer(o, q)) continue;
    if (to_all || o.queue_names[q] == producer_queue(o, i)) ++n;
  }
  return n;
}

struct alignas(64) ProducerStats {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> confirmed{0};
  std::atomic<uint64_t> nacked{0};
  std::atomic<uint64_t> returned{0};
  std::atomic<uint64_t> routed{0};  // topic plan: consumed copies the sent messages make
};

struct alignas(64) ConsumerStats {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> redelivered{0};
  std::atomic<int64_t> last_receive_ns{0};
  Histogram latency;  // read by the main thread only after join
};

struct Shared {
  std::atomic<bool> go{false};
  std::atomic<bool> stop_producers{false};
  std::atomic<bool> stop_consumers{false};
  std::atomic<int> ready{0};
  std::atomic<int> producers_done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::vector<std::string> errors;

  void fail(const std::string& who, const std::string& what) {
    {
      std::lock_guard lock(mu);
      errors.push_back(who + ": " + what);
    }
    failed = true;
    std::cerr << "warren-perf: " << who << ": " << what << "\n";
  }
};

void declare_queue(AmqpClient& c, const Options& o, const std::string& q) {
  amqp::QueueDeclare d;
  d.queue = q;
  d.durable = o.durable_queue;
  d.auto_delete = o.auto_delete;
  c.call<amqp::QueueDeclareOk>(kChannel, d);
}

void declare_topology(AmqpClient& c, const Options& o, const TopicPlan* plan) {
  // amq.* exchanges exist already and may not be declared (403 ACCESS_REFUSED).
  if (!o.exchange.empty() && !o.exchange.starts_with("amq.")) {
    amqp::ExchangeDeclare d;
    d.exchange = o.exchange;
    d.type_ = o.type;
    d.durable = o.durable_queue;
    d.auto_delete = o.auto_delete;
    c.call<amqp::ExchangeDeclareOk>(kChannel, d);
  }
  for (const std::string& q : o.queue_names) {
    declare_queue(c, o, q);
    if (!o.exchange.empty() && !plan) {
      const std::string key = binding_key(o, q);
      amqp::QueueBind b;
      b.queue = q;
      b.exchange = o.exchange;
      b.routing_key = key;
      c.call<amqp::QueueBindOk>(kChannel, b);
    }
  }
  if (!plan) return;
  // Many bindings: pipelined in windows of 1000 requests per write.
  constexpr size_t kWindow = 1000;
  for (size_t i = 0; i < plan->bindings.size(); i += kWindow) {
    const size_t n = std::min(kWindow, plan->bindings.size() - i);
    for (size_t k = i; k < i + n; ++k) {
      amqp::QueueBind b;
      b.queue = o.queue_names[plan->bindings[k].second];
      b.exchange = o.exchange;
      b.routing_key = plan->bindings[k].first;
      amqp::write_method_frame(c.out(), kChannel, b);
    }
    c.expect_replies(kChannel, amqp::QueueBindOk::kClassId, amqp::QueueBindOk::kMethodId, n,
                     std::chrono::seconds(120));
  }
}

void wait_for_go(const Shared& sh) {
  while (!sh.go.load() && !sh.stop_producers.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// One producer: publishes in batches (one write each), keeps at most `confirm` messages
// unconfirmed, and paces itself to `rate` messages per second.
class Producer final : public AmqpClient::Handler {
 public:
  Producer(int id, const Options& o, const TopicPlan* plan, Shared& sh, ProducerStats& st)
      : id_(id), o_(o), plan_(plan), sh_(sh), st_(st) {}

  void run() {
    client_.connect(o_.uri, "warren-perf producer " + std::to_string(id_));
    client_.open_channel(kChannel);
    if (!o_.predeclared) declare_topology(client_, o_, id_ == 0 ? plan_ : nullptr);
    if (o_.confirm > 0) {
      client_.call<amqp::ConfirmSelectOk>(kChannel, amqp::ConfirmSelect{});
      size_t ring = 1;
      while (ring < o_.confirm) ring <<= 1;
      ring_.assign(ring, 0);
      mask_ = ring - 1;
    }
    build_prefix();
    sh_.ready++;
    wait_for_go(sh_);
    publish_loop();
    client_.flush_blocking(std::chrono::milliseconds(
        static_cast<int64_t>(o_.drain_timeout * 1000)));
    if (o_.confirm > 0) wait_confirms();
    client_.close(std::chrono::milliseconds(static_cast<int64_t>(o_.drain_timeout * 1000)));
    sh_.producers_done++;
    done_counted_ = true;
  }

  void count_done_on_failure() {
    if (!done_counted_) sh_.producers_done++;
  }

  void on_deliver(uint64_t, bool, std::string_view) override {}
  void on_ack(uint64_t tag, bool multiple) override { settle(tag, multiple, false); }
  void on_nack(uint64_t tag, bool multiple) override { settle(tag, multiple, true); }
  void on_return() override { ++returned_; }
  void on_other(uint16_t, const amqp::Method&) override {}

 private:
  void build_prefix() {
    amqp::BasicPublish p;
    const std::string key = publish_key(o_, id_);
    p.exchange = o_.exchange;
    p.routing_key = key;
    p.mandatory = o_.mandatory;
    if (plan_) {
      for (const std::string& k : plan_->keys) {
        p.routing_key = k;
        std::string m;
        amqp::write_method_frame(m, kChannel, p);
        key_methods_.push_back(std::move(m));
      }
      key_next_ = static_cast<size_t>(id_) * 7919 % plan_->keys.size();
    } else {
      amqp::write_method_frame(prefix_, kChannel, p);
    }
    std::string props;
    amqp::Writer w(props);
    amqp::BasicProperties bp;
    if (o_.persistent) {
      bp.flags |= amqp::BasicProperties::kDeliveryMode;
      bp.delivery_mode = 2;
    }
    bp.encode(w);
    amqp::write_header_frame(prefix_, kChannel, o_.size, props);
    filler_.assign(std::min<size_t>(o_.size, client_.frame_max()), '\0');
  }

  void append_message(std::string& out) {
    if (plan_) {
      out.append(key_methods_[key_next_]);
      routed_ += plan_->copies[key_next_];
      if (++key_next_ == key_methods_.size()) key_next_ = 0;
    }
    out.append(prefix_);
    const size_t max_payload = client_.frame_max() - amqp::kFrameOverhead;
    size_t remaining = o_.size;
    bool first = true;
    while (remaining > 0) {
      const size_t n = std::min(remaining, max_payload);
      amqp::write_body_frame_header(out, kChannel, static_cast<uint32_t>(n));
      size_t fill = n;
      if (first) {
        const int64_t ts = now_ns();
        const uint64_t word = (uint64_t(id_) << kProducerIdShift) | (sent_ & kSeqMask);
        out.append(reinterpret_cast<const char*>(&ts), 8);
        out.append(reinterpret_cast<const char*>(&word), 8);
        fill -= kMinSize;
        first = false;
      }
      out.append(filler_.data(), fill);
      out.push_back(static_cast<char>(amqp::kFrameEnd));
      remaining -= n;
    }
    ++sent_;
    if (o_.confirm > 0) ring_[next_tag_++ & mask_] = 0;
  }

  uint64_t outstanding() const { return next_tag_ - base_tag_; }

  void settle(uint64_t tag, bool multiple, bool nack) {
    if (o_.confirm == 0 || tag < base_tag_) return;
    if (tag >= next_tag_) tag = next_tag_ - 1;
    const uint64_t from = multiple ? base_tag_ : tag;
    for (uint64_t t = from; t <= tag; ++t) {
      uint8_t& slot = ring_[t & mask_];
      if (slot) continue;
      slot = 1;
      if (nack) {
        ++nacked_;
      } else {
        ++confirmed_;
      }
    }
    while (base_tag_ < next_tag_ && ring_[base_tag_ & mask_]) ++base_tag_;
  }

  void read_incoming() {
    for (;;) {
      const size_t room = client_.read_room();
      const size_t n = client_.read_some();
      if (n == 0) break;
      client_.process(*this);
      if (n < room) break;
    }
    publish_counters();
  }

  void publish_counters() {
    st_.sent.store(sent_, std::memory_order_relaxed);
    st_.confirmed.store(confirmed_, std::memory_order_relaxed);
    st_.nacked.store(nacked_, std::memory_order_relaxed);
    st_.returned.store(returned_, std::memory_order_relaxed);
    st_.routed.store(routed_, std::memory_order_relaxed);
  }

  void publish_loop() {
    const auto t0 = Clock::now();
    const size_t batch_bytes = 256 * 1024;
    while (!sh_.stop_producers.load(std::memory_order_relaxed) && !g_interrupted.load()) {
      if (o_.pmessages > 0 && sent_ >= o_.pmessages) break;
      const auto now = Clock::now();
      uint64_t n = 0;
      std::chrono::nanoseconds idle(std::chrono::milliseconds(50));
      bool more_due = false;  // another batch could go out right away
      if (client_.pending_out() == 0) {
        n = o_.batch;
        if (o_.confirm > 0) n = std::min<uint64_t>(n, o_.confirm - std::min<uint64_t>(o_.confirm, outstanding()));
        if (o_.pmessages > 0) n = std::min<uint64_t>(n, o_.pmessages - sent_);
        if (o_.rate > 0) {
          const double elapsed = std::chrono::duration<double>(now - t0).count();
          const auto due = static_cast<uint64_t>(elapsed * o_.rate) + 1;
          n = std::min<uint64_t>(n, due > sent_ ? due - sent_ : 0);
          if (n == 0) {
            const auto next = t0 + std::chrono::nanoseconds(
                                       static_cast<int64_t>(static_cast<double>(sent_) * 1e9 / o_.rate));
            idle = std::min<std::chrono::nanoseconds>(idle, next - now);
          }
        }
        std::string& out = client_.out();
        uint64_t built = 0;
        for (; built < n && out.size() < batch_bytes; ++built) append_message(out);
        // A paced producer has sent all that is due; otherwise the window or the batch cap
        // stopped it and it goes on at once (unless the window is full).
        more_due = built > 0 && o_.rate == 0 &&
                   (o_.confirm == 0 || outstanding() < o_.confirm);
        if (n > 0) {
          client_.flush();
          publish_counters();
        }
      }
      const bool want_write = client_.pending_out() > 0;
      // Sending more is possible right now: only look for incoming frames, do not sleep.
      const bool can_send = !want_write && more_due;
      const short ev = client_.wait(can_send ? std::chrono::nanoseconds(0) : idle, want_write);
      if (ev & POLLIN) read_incoming();
      if (ev & POLLOUT) client_.flush();
    }
    publish_counters();
  }

  void wait_confirms() {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o_.drain_timeout * 1000));
    while (outstanding() > 0 && Clock::now() < deadline) {
      const short ev = client_.wait(std::chrono::milliseconds(50), false);
      if (ev & POLLIN) read_incoming();
    }
    publish_counters();
  }

  int id_;
  const Options& o_;
  const TopicPlan* plan_;
  Shared& sh_;
  ProducerStats& st_;
  AmqpClient client_;
  // basic.publish method frame and content header, the same each time; with a topic plan
  // only the header (the method frames, one per routing key, are in key_methods_).
  std::string prefix_;
  std::vector<std::string> key_methods_;
  size_t key_next_ = 0;
  uint64_t routed_ = 0;
  std::string filler_;   // body bytes after the timestamp and sequence word
  uint64_t sent_ = 0;
  uint64_t confirmed_ = 0;
  uint64_t nacked_ = 0;
  uint64_t returned_ = 0;
  // Publisher confirms: delivery tags [base_tag_, next_tag_) are unsettled or settled out of
  // order; ring_ marks the settled ones.
  std::vector<uint8_t> ring_;
  uint64_t mask_ = 0;
  uint64_t base_tag_ = 1;
  uint64_t next_tag_ = 1;
  bool done_counted_ = false;
};

// One consumer: basic.consume on its queue, measures latency, acks (one by one, or with
// `multiple` every N messages), detects duplicates per producer sequence.
class Consumer final : public AmqpClient::Handler {
 public:
  Consumer(int id, const Options& o, Shared& sh, ConsumerStats& st)
      : id_(id), o_(o), sh_(sh), st_(st),
        seen_(static_cast<size_t>(std::max(o.producers, 1))) {
    ack_every_ = o.multi_ack_every;
    // Acking only every N messages with a prefetch below N would stall: ack at the prefetch.
    if (ack_every_ > 0 && o.qos > 0) ack_every_ = std::min<uint32_t>(ack_every_, o.qos);
  }

  void run() {
    const std::vector<std::string> queues = consumer_queues(o_, id_);
    client_.connect(o_.uri, "warren-perf consumer " + std::to_string(id_));
    client_.set_handler(this);
    client_.open_channel(kChannel);
    if (!o_.predeclared) {
      for (const std::string& q : queues) declare_queue(client_, o_, q);
    }
    if (o_.qos > 0) {
      amqp::BasicQos q;
      q.prefetch_count = o_.qos;
      client_.call<amqp::BasicQosOk>(kChannel, q);
    }
    for (const std::string& q : queues) {
      amqp::BasicConsume c;
      c.queue = q;
      c.no_ack = o_.auto_ack;
      client_.call<amqp::BasicConsumeOk>(kChannel, c);
    }
    sh_.ready++;
    // Deliveries that arrived together with consume-ok are in the input buffer already.
    client_.process(*this);
    while (!sh_.stop_consumers.load(std::memory_order_relaxed)) {
      const short ev = client_.wait(std::chrono::milliseconds(50), client_.pending_out() > 0);
      if (ev & POLLOUT) client_.flush();
      if (ev & POLLIN) {
        // Read until the socket is empty; a short read means it is (saves a failing recv).
        for (;;) {
          const size_t room = client_.read_room();
          const size_t n = client_.read_some();
          if (n == 0) break;
          client_.process(*this);
          after_chunk();
          if (n < room || sh_.stop_consumers.load(std::memory_order_relaxed)) break;
        }
      }
    }
    publish_counters();
    client_.close();
  }

  void on_deliver(uint64_t tag, bool redelivered, std::string_view head) override {
    ++received_;
    if (redelivered) ++redelivered_;
    if (head.size() >= kMinSize) {
      int64_t ts;
      uint64_t word;
      std::memcpy(&ts, head.data(), 8);
      std::memcpy(&word, head.data() + 8, 8);
      const int64_t now = now_ns();
      last_ns_ = now;
      st_.latency.record(now > ts ? static_cast<uint64_t>(now - ts) : 0);
      // With generated topic bindings one consumer takes several queues and so gets several
      // copies of a message: only the count is checked then.
      if (o_.topic_bindings == 0) check_duplicate(word);
    }
    if (!o_.auto_ack) {
      if (ack_every_ > 0) {
        last_tag_ = tag;
        ++unacked_;
      } else {
        amqp::BasicAck a;
        a.delivery_tag = tag;
        amqp::write_method_frame(client_.out(), kChannel, a);
      }
    }
  }
  void on_ack(uint64_t, bool) override {}
  void on_nack(uint64_t, bool) override {}
  void on_return() override {}
  void on_other(uint16_t, const amqp::Method& m) override {
    if (std::holds_alternative<amqp::BasicCancel>(m)) {
      throw PerfError("consumer cancelled by the broker (queue deleted?)");
    }
  }

 private:
  void check_duplicate(uint64_t word) {
    const uint64_t producer = word >> kProducerIdShift;
    if (producer >= seen_.size()) return;  // not ours (a predeclared queue with old messages)
    const uint64_t seq = word & kSeqMask;
    std::vector<uint64_t>& bits = seen_[producer];
    const size_t w = seq / 64;
    if (w >= bits.size()) bits.resize(std::max(w + 1, bits.size() * 2 + 1024), 0);  // amortized
    const uint64_t bit = uint64_t{1} << (seq % 64);
    if (bits[w] & bit) {
      ++duplicates_;
    } else {
      bits[w] |= bit;
    }
  }

  void after_chunk() {
    if (ack_every_ > 0 && unacked_ >= ack_every_) {
      amqp::BasicAck a;
      a.delivery_tag = last_tag_;
      a.multiple = true;
      amqp::write_method_frame(client_.out(), kChannel, a);
      unacked_ = 0;
    }
    client_.flush();
    publish_counters();
  }

  void publish_counters() {
    st_.received.store(received_, std::memory_order_relaxed);
    st_.duplicates.store(duplicates_, std::memory_order_relaxed);
    st_.redelivered.store(redelivered_, std::memory_order_relaxed);
    st_.last_receive_ns.store(last_ns_, std::memory_order_relaxed);
  }

  int id_;
  const Options& o_;
  Shared& sh_;
  ConsumerStats& st_;
  AmqpClient client_;
  std::vector<std::vector<uint64_t>> seen_;  // per producer: bitset of sequence numbers
  uint32_t ack_every_ = 0;
  uint64_t last_tag_ = 0;
  uint32_t unacked_ = 0;
  uint64_t received_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t redelivered_ = 0;
  int64_t last_ns_ = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Raises the open-file soft limit to the hard limit (thousands of connections).
void raise_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void write_ready_file(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fputs(text.c_str(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
  }
}

// --idle-connections N: opens N connections with one channel each, one after the other,
// holds them for --hold seconds and closes them. Stops opening at the first failure (a broker
// at its file limit either refuses or never answers the handshake) and reports how many
// opened: that is a result, not an error.
int run_idle(const Options& o) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  std::vector<std::unique_ptr<AmqpClient>> conns;
  conns.reserve(o.idle_connections);
  std::string error;
  const auto t0 = Clock::now();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.connect_timeout * 1000));
  while (conns.size() < o.idle_connections && !g_interrupted.load()) {
    auto c = std::make_unique<AmqpClient>();
    try {
      c->connect(o.uri, "warren-perf idle " + std::to_string(conns.size()), timeout, true);
      c->call<amqp::ChannelOpenOk>(kChannel, amqp::ChannelOpen{}, timeout);
    } catch (const std::exception& e) {
      error = "connection " + std::to_string(conns.size() + 1) + ": " + e.what();
      break;
    }
    conns.push_back(std::move(c));
    if (!o.quiet && conns.size() % 1000 == 0) {
      std::fprintf(stderr, "%zu connections open\n", conns.size());
    }
  }
  const double open_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!error.empty()) std::cerr << "warren-perf: " << error << "\n";
  std::cerr << "warren-perf: " << conns.size() << " of " << o.idle_connections
            << " connections open in " << fmt(open_s, 1) << " s; holding for " << fmt(o.hold, 0)
            << " s\n";
  write_ready_file(o.ready_file, std::to_string(conns.size()) + "\n");
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o.hold));
  while (Clock::now() < until && !g_interrupted.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // connection.close on all of them in one pass, then close the sockets: waiting for each
  // close-ok in turn would take seconds.
  for (auto& c : conns) {
    amqp::ConnectionClose cl;
    cl.reply_code = 200;
    cl.reply_text = "Goodbye";
    amqp::write_method_frame(c->out(), 0, cl);
    try {
      c->flush();
    } catch (const std::exception&) {
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const size_t opened = conns.size();
  conns.clear();
  std::cout << "{\"ok\":" << (opened > 0 ? "true" : "false") << ",\"mode\":\"idle\""
            << ",\"requested\":" << o.idle_connections << ",\"opened\":" << opened
            << ",\"open_s\":" << fmt(open_s, 3) << ",\"client_nofile\":" << rl.rlim_cur
            << ",\"errors\":[";
  if (!error.empty()) std::cout << "\"" << json_escape(error) << "\"";
  std::cout << "]}\n" << std::flush;
  return opened > 0 ? 0 : 1;
}

// Returns 0 after a clean run, 1 when a connection failed, 2 for bad usage.
int run(int argc, char** argv) {
  Options o;
  std::string uri_text = "amqp://guest:guest@127.0.0.1:5672/";
  std::vector<std::string> flags;
  std::string routing_key;
  std::string auto_delete = "true";
  po::options_description desc("warren-perf: AMQP 0-9-1 load generator (PerfTest-like)");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("uri", po::value(&uri_text), "amqp://user:pass@host:port/vhost (default amqp://guest:guest@127.0.0.1:5672/)")
    ("producers,x", po::value(&o.producers), "number of producers (default 1)")
    ("consumers,y", po::value(&o.consumers), "number of consumers (default 1)")
    ("queue,u", po::value(&o.queue), "queue name (default warren-perf)")
    ("queues", po::value(&o.queues), "spread over N queues named QUEUE-1..QUEUE-N")
    ("size,s", po::value(&o.size), "message size in bytes, at least 16 (default 16)")
    ("exchange,e", po::value(&o.exchange), "exchange (default: the default exchange)")
    ("type,t", po::value(&o.type), "exchange type: direct, fanout, topic (default direct)")
    ("routing-key", po::value(&routing_key), "routing key for publishes and bindings (default: the queue name)")
    ("flag,f", po::value(&flags)->composing(), "message flag: persistent, mandatory (repeatable)")
    ("persistent", po::bool_switch(&o.persistent), "same as -f persistent")
    ("mandatory", po::bool_switch(&o.mandatory), "same as -f mandatory")
    ("durable-queue", po::bool_switch(&o.durable_queue), "declare durable queues (and exchange)")
    ("auto-delete", po::value(&auto_delete), "declare auto-delete queues (default true)")
    ("confirm,c", po::value(&o.confirm), "publisher confirms with at most N unconfirmed messages")
    ("qos,q", po::value(&o.qos), "consumer prefetch count (default 0: unlimited)")
    ("auto-ack,a", po::bool_switch(&o.auto_ack), "consume with no-ack")
    ("multi-ack-every,A", po::value(&o.multi_ack_every), "ack with multiple=true every N messages")
    ("rate,r", po::value(&o.rate), "messages per second per producer (default unlimited)")
    ("time,z", po::value(&o.time), "run time in seconds")
    ("pmessages,C", po::value(&o.pmessages), "messages per producer, then stop")
    ("predeclared", po::bool_switch(&o.predeclared), "do not declare exchange, queues or bindings")
    ("drain-timeout", po::value(&o.drain_timeout), "seconds to wait for confirms and deliveries at the end (default 10)")
    ("batch", po::value(&o.batch), "most messages per socket write (default 1000)")
    ("consume-count", po::value(&o.consume_count), "stop once the consumers have received N messages (e.g. draining a backlog with -x 0)")
    ("topic-bindings", po::value(&o.topic_bindings), "with -t topic: bind N generated */# patterns spread over the queues (pipelined), publish with routing keys that match a few each")
    ("topic-keys", po::value(&o.topic_keys), "with --topic-bindings: distinct routing keys (default 4096)")
    ("idle-connections", po::value(&o.idle_connections), "open N connections with a channel each, hold them (--hold) and exit; no traffic")
    ("hold", po::value(&o.hold), "seconds to hold --idle-connections open (default 10)")
    ("connect-timeout", po::value(&o.connect_timeout), "seconds per handshake step for --idle-connections (default 10)")
    ("ready-file", po::value(&o.ready_file), "write this file once set up (idle connections open, or traffic started)")
    ("json", po::bool_switch(&o.json), "print one JSON line of results on stdout")
    ("quiet", po::bool_switch(&o.quiet), "no per-second lines on stderr");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "warren-perf: " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  try {
    o.uri = parse_uri(uri_text);
  } catch (const std::exception& e) {
    std::cerr << "warren-perf: --uri: " << e.what() << "\n";
    return 2;
  }
  for (const std::string& f : flags) {
    if (f == "persistent") {
      o.persistent = true;
    } else if (f == "mandatory") {
      o.mandatory = true;
    } else {
      std::cerr << "warren-perf: unknown flag '" << f << "' (persistent, mandatory)\n";
      return 2;
    }
  }
  if (vm.count("routing-key")) o.routing_key = routing_key;
  if (auto_delete != "true" && auto_delete != "false") {
    std::cerr << "warren-perf: --auto-delete takes true or false\n";
    return 2;
  }
  o.auto_delete = auto_delete == "true";
  if (o.size < kMinSize) {
    std::cerr << "warren-perf: --size must be at least " << kMinSize
              << " (send time and sequence number)\n";
    return 2;
  }
  if (o.type != "direct" && o.type != "fanout" && o.type != "topic") {
    std::cerr << "warren-perf: --type must be direct, fanout or topic\n";
    return 2;
  }
  if (o.producers < 0 || o.consumers < 0 || o.queues < 0 || o.producers >= 65536 ||
      o.batch == 0) {
    std::cerr << "warren-perf: bad producer, consumer, queue or batch count\n";
    return 2;
  }
  if (o.topic_bindings > 0 && (o.type != "topic" || o.exchange.empty() || o.topic_keys == 0)) {
    std::cerr << "warren-perf: --topic-bindings needs -t topic, -e EXCHANGE and --topic-keys > 0\n";
    return 2;
  }
  if (o.queues > 0) {
    for (int i = 1; i <= o.queues; ++i) o.queue_names.push_back(o.queue + "-" + std::to_string(i));
  } else {
    o.queue_names.push_back(o.queue);
  }

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_interrupted = true; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  raise_file_limit();
  if (o.idle_connections > 0) return run_idle(o);

  std::optional<TopicPlan> plan;
  if (o.topic_bindings > 0) {
    plan = make_topic_plan(o.topic_bindings, o.topic_keys, o.queue_names.size());
    double sum = 0;
    for (uint32_t c : plan->copies) sum += c;
    std::cerr << "warren-perf: " << plan->bindings.size() << " topic bindings, "
              << plan->keys.size() << " routing keys reaching " << fmt(sum / plan->keys.size(), 2)
              << " queues each on average\n";
  }
  const TopicPlan* plan_ptr = plan ? &*plan : nullptr;
  const auto t_setup = Clock::now();

  Shared sh;
  std::vector<std::unique_ptr<ProducerStats>> pstats;
  std::vector<std::unique_ptr<ConsumerStats>> cstats;
  std::vector<std::thread> pthreads;
  std::vector<std::thread> cthreads;
  auto wait_ready = [&](int n) {
    while (sh.ready.load() < n && !sh.failed.load() && !g_interrupted.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };

  // Producers first: they declare the topology the consumers subscribe to.
  for (int i = 0; i < o.producers; ++i) {
    pstats.push_back(std::make_unique<ProducerStats>());
    pthreads.emplace_back([&, i] {
      Producer p(i, o, plan_ptr, sh, *pstats[static_cast<size_t>(i)]);
      try {
        p.run();
      } catch (const std::exception& e) {
        sh.fail("producer " + std::to_string(i), e.what());
        p.count_done_on_failure();
        sh.ready++;
      }
    });
  }
  wait_ready(o.producers);
  for (int j = 0; j < o.consumers && !sh.failed.load(); ++j) {
    cstats.push_back(std::make_unique<ConsumerStats>());
    cthreads.emplace_back([&, j] {
      Consumer c(j, o, sh, *cstats[static_cast<size_t>(j)]);
      try {
        c.run();
      } catch (const std::exception& e) {
        sh.fail("consumer " + std::to_string(j), e.what());
        sh.ready++;
      }
    });
  }
  wait_ready(o.producers + o.consumers);

  auto totals = [&] {
    struct T {
      uint64_t sent = 0, confirmed = 0, nacked = 0, returned = 0, received = 0;
    } t;
    for (auto& p : pstats) {
      t.sent += p->sent.load(std::memory_order_relaxed);
      t.confirmed += p->confirmed.load(std::memory_order_relaxed);
      t.nacked += p->nacked.load(std::memory_order_relaxed);
      t.returned += p->returned.load(std::memory_order_relaxed);
    }
    for (auto& c : cstats) t.received += c->received.load(std::memory_order_relaxed);
    return t;
  };

  const auto t0 = Clock::now();
  const int64_t t0_ns = now_ns();
  const double setup_s = std::chrono::duration<double>(t0 - t_setup).count();
  sh.go = true;
  write_ready_file(o.ready_file, "running\n");
  std::vector<double> pub_samples, conf_samples, cons_samples;
  auto prev = totals();
  auto tick = t0;
  for (;;) {
    if (sh.failed.load() || g_interrupted.load()) break;
    if (o.producers > 0 && sh.producers_done.load() == o.producers) break;
    if (o.consume_count > 0 && totals().received >= o.consume_count) break;
    const auto elapsed = Clock::now() - t0;
    if (o.time > 0 && elapsed >= std::chrono::duration<double>(o.time)) break;
    const auto next = tick + std::chrono::seconds(1);
    auto until = next;
    if (o.time > 0) until = std::min(until, t0 + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(o.time)));
    std::this_thread::sleep_until(std::min(until, Clock::now() + std::chrono::milliseconds(50)));
    if (Clock::now() < next) continue;
    tick = next;
    const auto cur = totals();
    pub_samples.push_back(static_cast<double>(cur.sent - prev.sent));
    conf_samples.push_back(static_cast<double>(cur.confirmed - prev.confirmed));
    cons_samples.push_back(static_cast<double>(cur.received - prev.received));
    if (!o.quiet) {
      std::fprintf(stderr,
                   "time %5.1fs  sent %8.0f msg/s  confirmed %8.0f msg/s  received %8.0f msg/s\n",
                   std::chrono::duration<double>(tick - t0).count(), pub_samples.back(),
                   conf_samples.back(), cons_samples.back());
    }
    prev = cur;
  }
  const auto t_pub_end = Clock::now();
  sh.stop_producers = true;
  sh.go = true;
  for (auto& t : pthreads) t.join();

  // Drain: wait until every routed copy has been consumed, or progress stops.
  uint64_t expected = 0;
  for (int i = 0; i < o.producers; ++i) {
    const ProducerStats& ps = *pstats[static_cast<size_t>(i)];
    expected += plan ? ps.routed.load() : ps.sent.load() * consumed_copies(o, i);
  }
  if (o.producers == 0) expected = o.consume_count;
  if (!cstats.empty() && !sh.failed.load()) {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout * 1000));
    uint64_t last = totals().received;
    auto last_change = Clock::now();
    // Gives up early when nothing arrives for this long (a broker paging a backlog to disk
    // may pause deliveries for seconds).
    const auto stall_limit = std::min<Clock::duration>(
        std::chrono::seconds(15), std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout * 1000)));
    while (Clock::now() < deadline && !sh.failed.load() && !g_interrupted.load()) {
      const uint64_t r = totals().received;
      if (expected > 0 && r >= expected) break;
      if (r != last) {
        last = r;
        last_change = Clock::now();
      } else if (Clock::now() - last_change > stall_limit) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  sh.stop_consumers = true;
  for (auto& t : cthreads) t.join();

  // Report.
  const auto t = totals();
  uint64_t duplicates = 0, redelivered = 0;
  int64_t last_receive = t0_ns;
  Histogram latency;
  for (auto& c : cstats) {
    duplicates += c->duplicates.load();
    redelivered += c->redelivered.load();
    last_receive = std::max(last_receive, c->last_receive_ns.load());
    latency.merge(c->latency);
  }
  const double pub_secs = std::chrono::duration<double>(t_pub_end - t0).count();
  const double cons_secs = static_cast<double>(last_receive - t0_ns) / 1e9;
  const double pub_overall = pub_secs > 0 ? static_cast<double>(t.sent) / pub_secs : 0;
  const double conf_overall = pub_secs > 0 ? static_cast<double>(t.confirmed) / pub_secs : 0;
  const double cons_overall = cons_secs > 0 ? static_cast<double>(t.received) / cons_secs : 0;
  const uint64_t missing = expected > t.received ? expected - t.received : 0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  const uint64_t msgs = std::max(t.sent, t.received);
  const double cpu_us_per_msg = msgs ? cpu * 1e6 / static_cast<double>(msgs) : 0;
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  const bool ok = !sh.failed.load();

  std::ostringstream human;
  human << "warren-perf: " << o.producers << " producer(s), " << o.consumers
        << " consumer(s), " << o.queue_names.size() << " queue(s), " << o.size << " B, "
        << fmt(pub_secs) << " s\n"
        << "sent " << t.sent << " | confirmed " << t.confirmed << " | nacked " << t.nacked
        << " | returned " << t.returned << " | received " << t.received << " | expected "
        << expected << " | missing " << missing << " | duplicates " << duplicates
        << " | redelivered " << redelivered << "\n"
        << "publish rate: median " << fmt(median(pub_samples), 0) << " msg/s, overall "
        << fmt(pub_overall, 0) << " msg/s\n"
        << "confirm rate: median " << fmt(median(conf_samples), 0) << " msg/s, overall "
        << fmt(conf_overall, 0) << " msg/s\n"
        << "consume rate: median " << fmt(median(cons_samples), 0) << " msg/s, overall "
        << fmt(cons_overall, 0) << " msg/s\n"
        << "latency (us): p50 " << fmt(us(latency.quantile(0.5))) << "  p99 "
        << fmt(us(latency.quantile(0.99))) << "  p99.9 " << fmt(us(latency.quantile(0.999)))
        << "  max " << fmt(us(latency.max())) << "\n"
        << "client CPU: " << fmt(cpu, 2) << " s (" << fmt(cpu_us_per_msg, 2) << " us/msg)\n";
  for (const std::string& e : sh.errors) human << "error: " << e << "\n";
  if (o.json) {
    std::cerr << human.str();
    std::ostringstream j;
    j << "{\"ok\":" << (ok ? "true" : "false") << ",\"producers\":" << o.producers
      << ",\"consumers\":" << o.consumers << ",\"queues\":" << o.queue_names.size()
      << ",\"size\":" << o.size << ",\"duration_s\":" << fmt(pub_secs, 3)
      << ",\"consume_s\":" << fmt(cons_secs, 3) << ",\"setup_s\":" << fmt(setup_s, 3)
      << ",\"bindings\":" << (plan ? plan->bindings.size() : 0)
      << ",\"sent\":" << t.sent << ",\"confirmed\":" << t.confirmed << ",\"nacked\":" << t.nacked
      << ",\"returned\":" << t.returned << ",\"received\":" << t.received
      << ",\"expected\":" << expected << ",\"missing\":" << missing
      << ",\"duplicates\":" << duplicates << ",\"redelivered\":" << redelivered
      << ",\"publish_rate_median\":" << fmt(median(pub_samples), 0)
      << ",\"publish_rate\":" << fmt(pub_overall, 0)
      << ",\"confirm_rate_median\":" << fmt(median(conf_samples), 0)
      << ",\"confirm_rate\":" << fmt(conf_overall, 0)
      << ",\"consume_rate_median\":" << fmt(median(cons_samples), 0)
      << ",\"consume_rate\":" << fmt(cons_overall, 0)
      << ",\"latency_p50_us\":" << fmt(us(latency.quantile(0.5)))
      << ",\"latency_p99_us\":" << fmt(us(latency.quantile(0.99)))
      << ",\"latency_p999_us\":" << fmt(us(latency.quantile(0.999)))
      << ",\"latency_max_us\":" << fmt(us(latency.max()))
      << ",\"client_cpu_s\":" << fmt(cpu, 3) << ",\"client_cpu_us_per_msg\":"
      << fmt(cpu_us_per_msg, 3) << ",\"errors\":[";
    for (size_t i = 0; i < sh.errors.size(); ++i) {
      j << (i ? "," : "") << "\"" << json_escape(sh.errors[i]) << "\"";
    }
    j << "]}\n";
    std::cout << j.str() << std::flush;
  } else {
    std::cout << human.str() << std::flush;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace warren::perf

int main(int argc, char** argv) { return warren::perf::run(argc, argv); }
