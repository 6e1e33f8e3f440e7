// MessageStats: RabbitMQ's message counters (publish, deliver, ack, ...) for the whole broker,
// a queue, an exchange or a channel, and their rates per second over the last statistics
// interval (`collect_statistics_interval`, 5 s by default, as in RabbitMQ).
//
// Counting is an increment of a plain integer on the owning thread; Broker's tick calls
// sample() once per interval, which is the only place rates are computed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace warren::broker {

class MessageStats {
 public:
  // The counters, named as RabbitMQ's message_stats fields (kNames).
  enum Field : uint8_t {
    kPublish,         // broker/channel: published; queue: enqueued; exchange: publish_in
    kPublishOut,      // exchange: messages it routed somewhere
    kConfirm,         // publisher confirms sent
    kReturnUnroutable,
    kDropUnroutable,
    kDeliver,         // to a consumer, manual ack
    kDeliverNoAck,    // to a consumer, automatic ack
    kGet,             // basic.get, manual ack
    kGetNoAck,        // basic.get, automatic ack
    kGetEmpty,
    kAck,
    kRedeliver,
    kCount
  };
  static constexpr std::array<const char*, kCount> kNames = {
      "publish", "publish_out", "confirm", "return_unroutable", "drop_unroutable",
      "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "ack", "redeliver"};

  void add(Field f, uint64_t n = 1) { totals_[f] += n; }
  uint64_t total(Field f) const { return totals_[f]; }
  double rate(Field f) const { return sampling_ ? sampling_->rates[f] : 0.0; }
  // deliver + deliver_no_ack + get + get_no_ack, as RabbitMQ's deliver_get.
  uint64_t deliver_get() const {
    return totals_[kDeliver] + totals_[kDeliverNoAck] + totals_[kGet] + totals_[kGetNoAck];
  }
  double deliver_get_rate() const {
    return rate(kDeliver) + rate(kDeliverNoAck) + rate(kGet) + rate(kGetNoAck);
  }
  bool any() const {
    for (uint64_t t : totals_)
      if (t) return true;
    return false;
  }
  // Sums counters and rates (a vhost's or a user's view of several queues).
  void merge(const MessageStats& o) {
    for (size_t i = 0; i < kCount; ++i) totals_[i] += o.totals_[i];
    if (o.sampling_) {
      if (!sampling_) sampling_ = std::make_unique<Sampling>();
      for (size_t i = 0; i < kCount; ++i) sampling_->rates[i] += o.sampling_->rates[i];
    }
  }

  // Rates since the previous sample, `seconds` ago.
  void sample(double seconds) {
    // An object that never counted anything (an idle channel, an unused queue) keeps no
    // sampling state at all: its rates are 0.
    if (!sampling_) {
      if (!any()) return;
      sampling_ = std::make_unique<Sampling>();
    }
    for (size_t i = 0; i < kCount; ++i) {
      sampling_->rates[i] =
          seconds > 0 ? static_cast<float>((totals_[i] - sampling_->sampled[i]) / seconds) : 0.0f;
      sampling_->sampled[i] = totals_[i];
    }
  }

 private:
  struct Sampling {
    std::array<uint64_t, kCount> sampled{};
    std::array<float, kCount> rates{};
  };
  std::array<uint64_t, kCount> totals_{};
  std::unique_ptr<Sampling> sampling_;
};

// One counter and its rate (a connection's bytes received and sent).
struct CounterRate {
  uint64_t total = 0;
  uint64_t sampled = 0;
  float rate = 0;
  void sample(double seconds) {
    rate = seconds > 0 ? static_cast<float>((total - sampled) / seconds) : 0.0f;
    sampled = total;
  }
};

// A gauge's rate of change (queue length), sampled with the counters.
struct GaugeRate {
  int64_t sampled = 0;
  float rate = 0;
  void sample(int64_t now, double seconds) {
    rate = seconds > 0 ? static_cast<float>((now - sampled) / seconds) : 0.0f;
    sampled = now;
  }
};

}  // namespace warren::broker
