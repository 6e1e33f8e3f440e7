#include "broker/queue.h"

#include <algorithm>

#include "broker/channel.h"

namespace warren::broker {

Queue::Queue(VHost& vhost, uint32_t id, std::string name, bool durable, bool exclusive,
             bool auto_delete, amqp::FieldTable arguments, Connection* owner)
    : vhost_(&vhost),
      id_(id),
      name_(std::move(name)),
      durable_(durable),
      exclusive_(exclusive),
      auto_delete_(auto_delete),
      arguments_(std::move(arguments)),
      owner_(owner) {}

void Queue::enqueue(MessagePtr m) {
  ready_.push_back(QueueEntry{std::move(m), next_seq_++, false});
  if (!consumers_.empty()) dispatch();
}

void Queue::requeue(QueueEntry e) {
  --unacked_;
  if (deleted_) return;
  e.redelivered = true;
  // Usually older than everything ready: put it in front, else at its sorted position.
  if (ready_.empty() || e.seq < ready_.front().seq) {
    ready_.push_front(std::move(e));
  } else {
    auto pos = std::lower_bound(ready_.begin(), ready_.end(), e.seq,
                                [](const QueueEntry& a, uint64_t s) { return a.seq < s; });
    ready_.insert(pos, std::move(e));
  }
}

std::optional<QueueEntry> Queue::get(bool ack_required) {
  if (ready_.empty()) return std::nullopt;
  QueueEntry e = std::move(ready_.front());
  ready_.pop_front();
  if (ack_required) ++unacked_;
  return e;
}

size_t Queue::purge() {
  size_t n = ready_.size();
  ready_.clear();
  return n;
}

void Queue::add_consumer(Consumer* c) {
  consumers_.push_back(c);
  had_consumer_ = true;
}

void Queue::remove_consumer(Consumer* c) {
  auto it = std::find(consumers_.begin(), consumers_.end(), c);
  if (it == consumers_.end()) return;
  size_t idx = static_cast<size_t>(it - consumers_.begin());
  consumers_.erase(it);
  if (next_consumer_ > idx) --next_consumer_;
  if (next_consumer_ >= consumers_.size()) next_consumer_ = 0;
}

bool Queue::has_exclusive_consumer() const {
  return std::any_of(consumers_.begin(), consumers_.end(),
                     [](const Consumer* c) { return c->exclusive; });
}

void Queue::dispatch() {
  // A delivery can re-enter dispatch (e.g. an auto-ack consumer's channel); the outer loop
  // finishes the work.
  if (dispatching_ || deleted_) return;
  dispatching_ = true;
  while (!ready_.empty() && !consumers_.empty()) {
    // Round-robin: the first consumer with credit at or after next_consumer_.
    const size_t n = consumers_.size();
    Consumer* chosen = nullptr;
    for (size_t i = 0; i < n; ++i) {
      size_t idx = (next_consumer_ + i) % n;
      Consumer* c = consumers_[idx];
      if (c->channel->can_deliver(*c)) {
        chosen = c;
        next_consumer_ = (idx + 1) % n;
        break;
      }
    }
    if (!chosen) break;
    QueueEntry e = std::move(ready_.front());
    ready_.pop_front();
    if (!chosen->no_ack) ++unacked_;
    ConsumerPtr keep(chosen);
    chosen->channel->deliver(*chosen, *this, std::move(e));
  }
  dispatching_ = false;
}

size_t Queue::mark_deleted() {
  deleted_ = true;
  size_t n = ready_.size();
  ready_.clear();
  // Cancelling edits consumers_; work on a copy.
  std::vector<ConsumerPtr> cs(consumers_.begin(), consumers_.end());
  consumers_.clear();
  for (auto& c : cs) c->channel->consumer_cancelled_by_queue(*c);
  return n;
}

}  // namespace warren::broker
