// Histogram: a fixed-size log-linear latency histogram (HdrHistogram-like), ~0.8% precision.
//
// Owned by one consumer thread while it records; the main thread merges them after the
// threads have joined. record() never allocates: values below 256 get a bucket each, larger
// values fall in one of 128 linear sub-buckets of their power of two, so a bucket's width is
// at most 1/128 of its value. Values past 2^47 (about 39 hours in ns) share the last bucket.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace warren::perf {

class Histogram {
 public:
  static constexpr int kSubBits = 7;                   // 128 sub-buckets per power of two
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kMaxMsb = 47;
  static constexpr size_t kBuckets = 2 * kSub + (kMaxMsb - kSubBits) * kSub;

  void record(uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    if (v > max_) max_ = v;
    if (v < min_) min_ = v;
  }

  void merge(const Histogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    if (o.max_ > max_) max_ = o.max_;
    if (o.min_ < min_) min_ = o.min_;
  }

  uint64_t count() const { return total_; }
  uint64_t max() const { return total_ ? max_ : 0; }
  uint64_t min() const { return total_ ? min_ : 0; }

  // The value at quantile q in [0, 1] (the midpoint of its bucket, clamped to [min, max]);
  // 0 when empty.
  uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank >= total_) rank = total_ - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen > rank) {
        uint64_t v = midpoint(i);
        if (v > max_) v = max_;
        if (v < min_) v = min_;
        return v;
      }
    }
    return max_;
  }

  static size_t index(uint64_t v) {
    if (v < 2 * kSub) return static_cast<size_t>(v);
    int msb = 63 - std::countl_zero(v);
    if (msb > kMaxMsb) return kBuckets - 1;
    const int shift = msb - kSubBits;  // >= 1
    const uint64_t sub = (v >> shift) - kSub;  // in [0, kSub)
    return 2 * kSub + static_cast<size_t>(shift - 1) * kSub + static_cast<size_t>(sub);
  }

  static uint64_t lower_bound(size_t i) {
    if (i < 2 * kSub) return i;
    const size_t shift = (i - 2 * kSub) / kSub + 1;
    const uint64_t sub = (i - 2 * kSub) % kSub;
    return (kSub + sub) << shift;
  }

  static uint64_t midpoint(size_t i) {
    if (i < 2 * kSub) return i;
    const size_t shift = (i - 2 * kSub) / kSub + 1;
    return lower_bound(i) + ((uint64_t{1} << shift) >> 1);
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
};

}  // namespace warren::perf
