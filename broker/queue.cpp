#include "broker/queue.h"

#include <algorithm>
#include <chrono>

#include "broker/broker.h"
#include "persistence/store.h"
#include "broker/channel.h"
#include "broker/connection.h"
#include "broker/policy.h"
#include "broker/vhost.h"

namespace warren::broker {

namespace {
// Paging batches: a load reads at most this many entries / bytes of bodies, and starts when
// fewer than kLoadLowWater ready entries are left in memory. Memory may exceed the queue's
// limit by one batch before the tail is paged out again, so loads and page-outs never chase
// each other.
constexpr size_t kLoadCount = 2048;
constexpr uint64_t kLoadBytes = 4u << 20;
constexpr size_t kLoadLowWater = kLoadCount / 2;
// What a queue keeps in memory under memory pressure.
constexpr uint64_t kPressureKeepBytes = 1u << 20;
}  // namespace

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t steady_to_unix_ms(int64_t steady_ms) { return steady_ms - now_ms() + unix_ms(); }

// Never 0, which means "no deadline" in a QueueEntry.
int64_t unix_to_steady_ms(int64_t unix) { return std::max<int64_t>(1, unix - unix_ms() + now_ms()); }

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view death_reason_name(DeathReason r) {
  switch (r) {
    case DeathReason::kRejected: return "rejected";
    case DeathReason::kExpired: return "expired";
    case DeathReason::kMaxLen: return "maxlen";
  }
  return "rejected";
}

Overflow parse_overflow(std::string_view o) {
  if (o == "reject-publish") return Overflow::kRejectPublish;
  if (o == "reject-publish-dlx") return Overflow::kRejectPublishDlx;
  return Overflow::kDropHead;
}

QueueSettings QueueSettings::from_arguments(const amqp::FieldTable& args) {
  // Values were validated at declaration (Channel); here they are only read.
  QueueSettings s;
  auto int_arg = [&](const char* key) -> std::optional<int64_t> {
    if (const amqp::FieldValue* v = args.find(key)) return v->as_int();
    return std::nullopt;
  };
  auto str_arg = [&](const char* key) -> std::optional<std::string> {
    if (const amqp::FieldValue* v = args.find(key)) {
      if (auto str = v->as_string()) return std::string(*str);
    }
    return std::nullopt;
  };
  s.message_ttl = int_arg("x-message-ttl");
  s.expires = int_arg("x-expires");
  s.max_length = int_arg("x-max-length");
  s.max_length_bytes = int_arg("x-max-length-bytes");
  if (auto o = str_arg("x-overflow")) s.overflow = parse_overflow(*o);
  s.dead_letter_exchange = str_arg("x-dead-letter-exchange");
  s.dead_letter_routing_key = str_arg("x-dead-letter-routing-key");
  if (auto p = int_arg("x-max-priority")) s.max_priority = static_cast<uint8_t>(std::clamp<int64_t>(*p, 0, 255));
  if (const amqp::FieldValue* v = args.find("x-single-active-consumer")) {
    s.single_active_consumer = v->as_bool().value_or(false);
  }
  s.lazy = str_arg("x-queue-mode") == "lazy";
  return s;
}

Queue::Queue(VHost& vhost, uint32_t id, std::string name, bool durable, bool exclusive,
             bool auto_delete, amqp::FieldTable arguments, Connection* owner)
    : vhost_(&vhost),
      id_(id),
      name_(std::move(name)),
      durable_(durable),
      exclusive_(exclusive),
      auto_delete_(auto_delete),
      arguments_(std::move(arguments)),
      settings_(QueueSettings::from_arguments(arguments_)),
      owner_(owner),
      ready_(settings_.max_priority + 1u),
      store_key_(persistence::make_queue_ref(vhost.name(), name_)) {
  memory_limit_ = settings_.lazy ? 0 : vhost.broker().config().queue_memory_limit;
  if (settings_.expires) {
    touch();
  }
}

void Queue::apply_policies(const Policy* p, const Policy* op) {
  // RabbitMQ's merge: numeric limits take the smaller of argument and policy; for the
  // others the queue's own argument wins. Operator policies only ever lower the limits.
  QueueSettings s = QueueSettings::from_arguments(arguments_);
  auto lower = [](std::optional<int64_t>& have, const std::optional<int64_t>& pol) {
    if (pol && (!have || *pol < *have)) have = pol;
  };
  for (const Policy* pol : {p, op}) {
    if (!pol) continue;
    lower(s.message_ttl, pol->message_ttl);
    lower(s.expires, pol->expires);
    lower(s.max_length, pol->max_length);
    lower(s.max_length_bytes, pol->max_length_bytes);
  }
  if (p) {
    if (!arguments_.find("x-overflow") && p->overflow) s.overflow = parse_overflow(*p->overflow);
    if (!s.dead_letter_exchange) s.dead_letter_exchange = p->dead_letter_exchange;
    if (!s.dead_letter_routing_key) s.dead_letter_routing_key = p->dead_letter_routing_key;
    if (!arguments_.find("x-queue-mode") && p->queue_mode) s.lazy = *p->queue_mode == "lazy";
  }
  policy_name_ = p ? p->name : "";
  operator_policy_name_ = op ? op->name : "";
  settings_ = std::move(s);
  memory_limit_ = settings_.lazy ? 0 : vhost_->broker().config().queue_memory_limit;
  if (deleted_) return;
  if (settings_.expires) {
    touch();
  } else if (expiry_timer_) {
    expiry_timer_->cancel();
  }
  if (settings_.max_length || settings_.max_length_bytes) enforce_limits();
  maybe_load();
}

bool Queue::publishers_should_wait() const {
  if (consumers_.empty() || memory_bytes() <= std::min(kFlowHigh, memory_limit() + kLoadBytes)) {
    return false;
  }
  return now_ms() - last_delivery_ms_ < 1000;  // consumers that stopped taking do not count
}

void Queue::add_flow_waiter(Connection* c) {
  if (std::find(flow_waiters_.begin(), flow_waiters_.end(), c) == flow_waiters_.end()) {
    flow_waiters_.push_back(c);
  }
}

void Queue::forget_flow_waiter(Connection* c) { std::erase(flow_waiters_, c); }

void Queue::release_flow_waiters() {
  auto waiters = std::move(flow_waiters_);
  flow_waiters_.clear();
  for (Connection* c : waiters) c->flow_resume_from(*this);
}

bool Queue::pageable() const {
  const persistence::Store* store = vhost_->broker().paging_store();
  return settings_.max_priority == 0 && !settings_.max_length && !settings_.max_length_bytes &&
         store != nullptr && store->healthy();
}

uint64_t Queue::memory_limit() const {
  return vhost_->broker().memory_pressure() ? std::min(memory_limit_, kPressureKeepBytes)
                                            : memory_limit_;
}

void Queue::page_out(QueueEntry& e) {
  persistence::Store& store = *vhost_->broker().paging_store();
  Message& m = *e.message;
  const bool durable_entry = stores(m) && m.store_id != 0;  // its row exists already
  if (!durable_entry) {
    // Swap space: written once per message (OR IGNORE when another queue paged it too; the
    // row comes back if that queue's entry already took it away).
    Broker& b = vhost_->broker();
    if (m.swap_id == 0) m.swap_id = b.next_message_id();
    store.put_message(m.swap_id, m.exchange, m.routing_key, m.properties, m.body());
    b.hold_until_committed(e.message);
    const int64_t expires_unix = e.expires_at ? steady_to_unix_ms(e.expires_at) : 0;
    store.add_entry(store_key_,
                    persistence::StoredEntry{m.swap_id, e.seq, e.redelivered, true, expires_unix});
  }
  if (paged_count_ == 0 || e.seq < paged_from_seq_) paged_from_seq_ = e.seq;
  ++paged_count_;
  paged_bytes_ += m.body_size();
}

uint64_t Queue::page_out_to(uint64_t keep_bytes) {
  if (loading_ || deleted_ || !pageable()) return 0;
  auto& bucket = ready_[0];
  uint64_t paged = 0;
  while (memory_bytes() > keep_bytes && !bucket.empty() && bucket.back().seq > max_handed_seq_) {
    QueueEntry e = std::move(bucket.back());
    bucket.pop_back();
    uncount(e);
    paged += e.message->body_size();
    page_out(e);
  }
  return paged;
}

void Queue::restore_paged(uint64_t count, uint64_t bytes, uint64_t from_seq, uint64_t max_seq) {
  paged_count_ = count;
  paged_bytes_ = bytes;
  paged_from_seq_ = from_seq;
  next_seq_ = std::max(next_seq_, max_seq + 1);
}

void Queue::maybe_load() {
  if (paged_count_ == 0 || loading_ || deleted_ || ready_count_ >= kLoadLowWater) return;
  persistence::Store* store = vhost_->broker().paging_store();
  if (!store) return;
  loading_ = true;
  store->load_entries(vhost_->name(), name_, paged_from_seq_, kLoadCount, kLoadBytes,
                      [self = QueuePtr(this), epoch = page_epoch_](
                          std::vector<persistence::LoadedEntry> entries, bool) {
                        if (self->deleted_ || epoch != self->page_epoch_) return;
                        self->loaded(std::move(entries));
                      });
}

void Queue::when_loaded(std::function<void()> f) {
  load_waiters_.push_back(std::move(f));
  maybe_load();
}

void Queue::loaded(std::vector<persistence::LoadedEntry> entries) {
  loading_ = false;
  // Waiters run after this batch is in place (and after consumers had their turn).
  struct RunWaiters {
    Queue* q;
    ~RunWaiters() {
      auto waiters = std::move(q->load_waiters_);
      q->load_waiters_.clear();
      for (auto& w : waiters) w();
    }
  } run_waiters{this};
  if (entries.empty()) {
    // Nothing left where the count says there is: trust the store.
    paged_count_ = 0;
    paged_bytes_ = 0;
    return;
  }
  for (auto& le : entries) {
    // A durable entry stays durable; a swap entry was deleted by the read.
    MessagePtr m = Message::rebuild(std::move(le.message.exchange),
                                    std::move(le.message.routing_key),
                                    std::move(le.message.properties), std::move(le.message.body),
                                    le.entry.transient ? 0 : le.entry.message_id);
    QueueEntry e;
    e.seq = le.entry.seq;
    e.redelivered = le.entry.delivered;
    if (le.entry.expires_unix_ms) e.expires_at = unix_to_steady_ms(le.entry.expires_unix_ms);
    const uint64_t size = m->body_size();
    e.message = std::move(m);
    push(std::move(e));
    --paged_count_;
    paged_bytes_ -= std::min(paged_bytes_, size);
    if (paged_count_ == 0) break;
  }
  paged_from_seq_ = entries.back().entry.seq + 1;
  if (paged_count_ == 0) paged_bytes_ = 0;
  if (settings_.max_length || settings_.max_length_bytes) enforce_limits();
  if (!consumers_.empty()) dispatch();
  if (entries_with_expiry_) arm_ttl_timer();
  maybe_load();
}

Queue::~Queue() = default;

QueueEntry& Queue::head() {
  for (auto it = ready_.rbegin(); it != ready_.rend(); ++it)
    if (!it->empty()) return it->front();
  __builtin_unreachable();
}

void Queue::uncount(const QueueEntry& e) {
  --ready_count_;
  ready_bytes_ -= e.message->body_size();
  if (e.expires_at) --entries_with_expiry_;
}

QueueEntry Queue::pop_head() {
  for (auto it = ready_.rbegin(); it != ready_.rend(); ++it) {
    if (!it->empty()) {
      QueueEntry e = std::move(it->front());
      it->pop_front();
      uncount(e);
      return e;
    }
  }
  __builtin_unreachable();
}

void Queue::push(QueueEntry e) {
  ++ready_count_;
  ready_bytes_ += e.message->body_size();
  if (e.expires_at) ++entries_with_expiry_;
  auto& bucket = ready_[e.priority];
  if (bucket.empty() || bucket.back().seq < e.seq) {
    bucket.push_back(std::move(e));
  } else if (e.seq < bucket.front().seq) {
    bucket.push_front(std::move(e));
  } else {
    auto pos = std::lower_bound(bucket.begin(), bucket.end(), e.seq,
                                [](const QueueEntry& a, uint64_t s) { return a.seq < s; });
    bucket.insert(pos, std::move(e));
  }
}

bool Queue::over_limits(size_t extra_count, uint64_t extra_bytes) const {
  // Paged-out messages count (a policy can add a limit to a queue that already pages); the
  // oldest are in memory, so dropping from the head drops them first.
  if (settings_.max_length &&
      static_cast<int64_t>(ready_count() + extra_count) > *settings_.max_length)
    return true;
  if (settings_.max_length_bytes &&
      static_cast<int64_t>(ready_bytes() + extra_bytes) > *settings_.max_length_bytes)
    return true;
  return false;
}

bool Queue::enqueue(MessagePtr m) {
  if (deleted_) return true;
  QueueEntry e;
  e.seq = next_seq_++;
  if (settings_.max_priority > 0 && m->summary.has_priority) {
    e.priority = std::min(m->summary.priority, settings_.max_priority);
  }
  int64_t ttl = -1;
  if (settings_.message_ttl) ttl = *settings_.message_ttl;
  if (m->ttl_ms >= 0 && (ttl < 0 || m->ttl_ms < ttl)) ttl = m->ttl_ms;
  int64_t now = 0;
  if (ttl >= 0) {
    now = now_ms();
    e.expires_at = now + ttl;
    if (e.expires_at == 0) e.expires_at = 1;
  }
  // reject-publish refuses a message that does not fit; drop-head makes room afterwards.
  if (settings_.overflow != Overflow::kDropHead && over_limits(1, m->body_size())) {
    if (settings_.overflow == Overflow::kRejectPublishDlx) {
      e.message = std::move(m);
      dead_letter(e, DeathReason::kMaxLen);
    }
    return false;
  }
  stats_.add(MessageStats::kPublish);
  e.message = std::move(m);
  if (stores(*e.message)) {
    Broker& b = vhost_->broker();
    if (b.store()) {
      Message& msg = *e.message;
      if (msg.store_id == 0) {
        // Stored once, however many durable queues it reaches.
        msg.store_id = b.next_message_id();
        b.persist([&](persistence::Store& s) {
          s.put_message(msg.store_id, msg.exchange, msg.routing_key, msg.properties, msg.body());
        });
        b.hold_until_committed(e.message);
      }
      const int64_t expires_unix = e.expires_at ? steady_to_unix_ms(e.expires_at) : 0;
      b.persist([&](persistence::Store& s) {
        s.add_entry(store_key_,
                    persistence::StoredEntry{msg.store_id, e.seq, false, false, expires_unix});
      });
    }
  }
  const persistence::Store* paging = vhost_->broker().paging_store();
  if (paged_count_ > 0 && paging && paging->healthy()) {
    // Older messages are paged out: this one goes behind them, in the store (even if a
    // policy made the queue unpageable since: memory must not get ahead of the store).
    page_out(e);
    maybe_load();
    return true;
  }
  push(std::move(e));
  if (!consumers_.empty()) dispatch();
  if (memory_bytes() > memory_limit() + kLoadBytes && pageable()) page_out_to(memory_limit());
  if (ttl == 0) {
    // "Deliver now or drop": what no consumer took at once expires now.
    expire_head(now + 1);
  } else if (ttl > 0) {
    arm_ttl_timer();
  }
  if (settings_.max_length || settings_.max_length_bytes) enforce_limits();
  return true;
}

void Queue::enforce_limits() {
  // drop-head: the oldest ready messages go (and are dead-lettered with reason maxlen).
  while (!empty() && over_limits(0, 0)) {
    QueueEntry e = pop_head();
    dead_letter(e, DeathReason::kMaxLen);
  }
}

void Queue::expire_head(int64_t now) {
  // Only the head is looked at, as RabbitMQ does: a message behind a longer-lived one
  // expires when it reaches the head, and is never delivered once expired.
  while (!empty()) {
    QueueEntry& h = head();
    if (h.expires_at == 0 || h.expires_at >= now) break;
    QueueEntry e = pop_head();
    dead_letter(e, DeathReason::kExpired);
  }
  arm_ttl_timer();
}

void Queue::arm_ttl_timer() {
  if (deleted_ || entries_with_expiry_ == 0 || empty()) return;
  const int64_t at = head().expires_at;
  if (at == 0) return;
  if (ttl_timer_ && ttl_timer_at_ != 0 && ttl_timer_at_ <= at) return;  // an earlier one is set
  if (!ttl_timer_) ttl_timer_ = std::make_unique<boost::asio::steady_timer>(vhost_->broker().executor());
  ttl_timer_at_ = at;
  ttl_timer_->expires_at(std::chrono::steady_clock::time_point(std::chrono::milliseconds(at + 1)));
  ttl_timer_->async_wait([self = QueuePtr(this)](const boost::system::error_code& ec) {
    if (ec || self->deleted_) return;
    self->ttl_timer_at_ = 0;
    self->expire_head(now_ms());
  });
}

void Queue::cancel_timers() {
  if (ttl_timer_) ttl_timer_->cancel();
  if (expiry_timer_) expiry_timer_->cancel();
}

void Queue::touch() {
  if (!settings_.expires || deleted_) return;
  last_used_ = now_ms();
  arm_expiry_timer();
}

void Queue::arm_expiry_timer() {
  if (!expiry_timer_) {
    expiry_timer_ = std::make_unique<boost::asio::steady_timer>(vhost_->broker().executor());
  }
  expiry_timer_->expires_at(std::chrono::steady_clock::time_point(
      std::chrono::milliseconds(last_used_ + *settings_.expires)));
  expiry_timer_->async_wait([self = QueuePtr(this)](const boost::system::error_code& ec) {
    if (ec || self->deleted_) return;
    if (!self->consumers_.empty()) return;  // in use; touched again when the last one goes
    if (now_ms() < self->last_used_ + *self->settings_.expires) {
      self->arm_expiry_timer();
      return;
    }
    self->vhost_->delete_queue(*self);
  });
}

void Queue::dead_letter(QueueEntry& e, DeathReason reason) {
  if (settings_.dead_letter_exchange) vhost_->dead_letter(*this, e.message, reason);
  forget(e);
  e.message.reset();
}

void Queue::forget(const QueueEntry& e) {
  if (!e.message || e.message->store_id == 0 || !stores(*e.message)) return;
  vhost_->broker().persist([&](persistence::Store& s) {
    s.remove_entry(store_key_, e.message->store_id);
  });
}

void Queue::note_delivered(const QueueEntry& e) {
  if (e.redelivered || e.message->store_id == 0 || !stores(*e.message)) return;
  vhost_->broker().persist([&](persistence::Store& s) {
    s.mark_delivered(store_key_, e.message->store_id);
  });
}

void Queue::ack(QueueEntry& e) {
  --unacked_;
  stats_.add(MessageStats::kAck);
  vhost_->broker().stats().add(MessageStats::kAck);
  if (!deleted_) forget(e);
  e.message.reset();
}

void Queue::restore(const MessagePtr& m, uint64_t seq, bool delivered, int64_t expires_unix_ms) {
  QueueEntry e;
  e.message = m;
  e.seq = seq;
  e.redelivered = delivered;
  if (settings_.max_priority > 0 && m->summary.has_priority) {
    e.priority = std::min(m->summary.priority, settings_.max_priority);
  }
  if (expires_unix_ms) {
    // The deadline kept counting while the broker was down.
    e.expires_at = unix_to_steady_ms(expires_unix_ms);
  } else if (settings_.message_ttl) {
    e.expires_at = now_ms() + *settings_.message_ttl;  // stored before deadlines were kept
  }
  next_seq_ = std::max(next_seq_, seq + 1);
  push(std::move(e));
}

void Queue::requeue(QueueEntry e) {
  --unacked_;
  if (deleted_) return;
  e.redelivered = true;
  push(std::move(e));
  if (settings_.max_length || settings_.max_length_bytes) enforce_limits();
}

void Queue::reject(QueueEntry e) {
  --unacked_;
  if (deleted_) return;
  dead_letter(e, DeathReason::kRejected);
}

std::optional<QueueEntry> Queue::get(bool ack_required) {
  touch();
  if (entries_with_expiry_) expire_head(now_ms());
  if (empty()) {
    maybe_load();  // a basic.get racing a load sees an empty head; the next one will not
    return std::nullopt;
  }
  QueueEntry e = pop_head();
  max_handed_seq_ = std::max(max_handed_seq_, e.seq);
  maybe_load();
  if (ack_required) {
    ++unacked_;
    note_delivered(e);
  } else {
    forget(e);
  }
  // A message that expired behind this one goes as soon as it becomes the head.
  if (entries_with_expiry_) expire_head(now_ms());
  return e;
}

void Queue::drop_paged() {
  if (paged_count_ == 0 && !loading_) return;
  if (persistence::Store* store = vhost_->broker().paging_store()) {
    store->drop_entries_from(vhost_->name(), name_, paged_from_seq_);
  }
  paged_count_ = 0;
  paged_bytes_ = 0;
  loading_ = false;
  ++page_epoch_;
  auto waiters = std::move(load_waiters_);
  load_waiters_.clear();
  // After the purge or delete that called this has finished (a waiter taking messages now
  // would put them back just before they are dropped). Each looks its queue up again.
  if (!waiters.empty()) {
    boost::asio::post(vhost_->broker().executor(), [waiters = std::move(waiters)] {
      for (auto& w : waiters) w();
    });
  }
}

size_t Queue::purge() {
  size_t n = ready_count_ + paged_count_;
  drop_paged();
  if (!flow_waiters_.empty()) release_flow_waiters();
  if (durable_ && n > 0) {
    bool any_stored = false;
    for (auto& b : ready_)
      for (auto& e : b) any_stored = any_stored || e.message->store_id != 0;
    if (any_stored) {
      // Unacked entries stay stored: collect the ready ones explicitly.
      for (auto& b : ready_)
        for (auto& e : b) forget(e);
    }
  }
  for (auto& b : ready_) b.clear();
  ready_count_ = 0;
  ready_bytes_ = 0;
  entries_with_expiry_ = 0;
  return n;
}

void Queue::add_consumer(Consumer* c) {
  consumers_.push_back(c);
  had_consumer_ = true;
  touch();
}

void Queue::remove_consumer(Consumer* c) {
  auto it = std::find(consumers_.begin(), consumers_.end(), c);
  if (it == consumers_.end()) return;
  size_t idx = static_cast<size_t>(it - consumers_.begin());
  consumers_.erase(it);
  if (next_consumer_ > idx) --next_consumer_;
  if (next_consumer_ >= consumers_.size()) next_consumer_ = 0;
  touch();
  // Under single-active-consumer the next one in line takes over.
  if (settings_.single_active_consumer && idx == 0 && !consumers_.empty()) dispatch();
}

bool Queue::has_exclusive_consumer() const {
  return std::any_of(consumers_.begin(), consumers_.end(),
                     [](const Consumer* c) { return c->exclusive; });
}

Consumer* Queue::pick_consumer() {
  const size_t n = consumers_.size();
  if (settings_.single_active_consumer) {
    Consumer* c = consumers_.front();
    return c->channel->can_deliver(*c) ? c : nullptr;
  }
  // Highest x-priority with credit wins; round-robin among equals from next_consumer_.
  Consumer* chosen = nullptr;
  size_t chosen_idx = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t idx = (next_consumer_ + i) % n;
    Consumer* c = consumers_[idx];
    if ((!chosen || c->priority > chosen->priority) && c->channel->can_deliver(*c)) {
      chosen = c;
      chosen_idx = idx;
    }
  }
  if (chosen) next_consumer_ = (chosen_idx + 1) % n;
  return chosen;
}

void Queue::dispatch() {
  // A delivery can re-enter dispatch; the outer loop finishes the work.
  if (dispatching_ || deleted_) return;
  dispatching_ = true;
  const int64_t now = entries_with_expiry_ ? now_ms() : 0;
  while (!empty() && !consumers_.empty()) {
    if (entries_with_expiry_) {
      QueueEntry& h = head();
      if (h.expires_at != 0 && h.expires_at < now) {
        QueueEntry e = pop_head();
        dead_letter(e, DeathReason::kExpired);
        continue;
      }
    }
    Consumer* chosen = pick_consumer();
    if (!chosen) break;
    QueueEntry e = pop_head();
    max_handed_seq_ = std::max(max_handed_seq_, e.seq);
    if (!chosen->no_ack) {
      ++unacked_;
      note_delivered(e);
    } else {
      forget(e);
    }
    ConsumerPtr keep(chosen);
    chosen->channel->deliver(*chosen, *this, std::move(e));
    last_delivery_ms_ = -1;  // set once below, not per message
  }
  dispatching_ = false;
  if (last_delivery_ms_ < 0) last_delivery_ms_ = now_ms();
  if (!flow_waiters_.empty() && memory_bytes() < kFlowLow) release_flow_waiters();
  if (entries_with_expiry_ && !empty()) expire_head(now_ms());
  maybe_load();
}

size_t Queue::mark_deleted() {
  size_t n = ready_count_ + paged_count_;
  drop_paged();
  if (!flow_waiters_.empty()) release_flow_waiters();
  deleted_ = true;
  for (auto& b : ready_) b.clear();
  ready_count_ = 0;
  ready_bytes_ = 0;
  entries_with_expiry_ = 0;
  if (ttl_timer_) ttl_timer_->cancel();
  if (expiry_timer_) expiry_timer_->cancel();
  // Cancelling edits consumers_; work on a copy.
  std::vector<ConsumerPtr> cs(consumers_.begin(), consumers_.end());
  consumers_.clear();
  for (auto& c : cs) c->channel->consumer_cancelled_by_queue(*c);
  return n;
}

}  // namespace warren::broker
