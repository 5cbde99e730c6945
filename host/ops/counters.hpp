// Lock-free statistics for the data path: each reader thread writes its own slot, the ops
// thread sums the slots at scrape time.
//
// A slot has exactly one writer, so an update is a relaxed load and store (no read-modify-write,
// no lock prefix, no shared cache line); readers of the totals may see a value a few packets
// old, never a torn one. Nothing here allocates after construction.
//
// THREAD: add()/observe()/record() from the slot's one writer thread only; the getters from any
// thread.
#pragma once

#include <time.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace knp::host {

// The most reader threads (NFQUEUE queues) knpd runs; per-reader tables are sized by it.
inline constexpr unsigned kMaxReaders = 64;

// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call).
inline uint64_t monotonicNowNs() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

class SingleWriterCounter {
public:
    void add(uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

// A histogram over integer observations (nanoseconds, say) with N upper bounds; the bounds are
// the caller's (one constant array per metric), so a slot holds only counts.
template <size_t N>
class SingleWriterHistogram {
public:
    static constexpr size_t kBounds = N;

    // `bucketValue` picks the bucket (compared to `bounds`), `sumValue` adds to the sum: they
    // differ when a metric buckets by a truncated unit but keeps an exact sum.
    void observe(std::span<const uint64_t, N> bounds, uint64_t bucketValue, uint64_t sumValue) noexcept {
        size_t i = 0;
        while (i < N && bucketValue > bounds[i]) ++i;
        buckets_[i].add();
        sum_.add(sumValue);
    }
    void observe(std::span<const uint64_t, N> bounds, uint64_t value) noexcept { observe(bounds, value, value); }
    // Non-cumulative count of bucket i (i == N: above the last bound).
    uint64_t bucket(size_t i) const noexcept { return buckets_[i].get(); }
    uint64_t sum() const noexcept { return sum_.get(); }

private:
    std::array<SingleWriterCounter, N + 1> buckets_;
    SingleWriterCounter sum_;
};

// Totals of histograms summed over slots, ready for exposition.
template <size_t N>
struct HistogramTotals {
    std::array<uint64_t, N + 1> buckets{};  // non-cumulative
    uint64_t sum = 0;

    void add(const SingleWriterHistogram<N>& h) noexcept {
        for (size_t i = 0; i <= N; ++i) buckets[i] += h.bucket(i);
        sum += h.sum();
    }
    uint64_t count() const noexcept {
        uint64_t c = 0;
        for (uint64_t b : buckets) c += b;
        return c;
    }
};

// The most recent N observations (N a power of two), for quantiles computed at scrape time:
// a sliding window by count rather than by time, with no lock and no allocation.
template <size_t N>
class SingleWriterReservoir {
    static_assert((N & (N - 1)) == 0, "N must be a power of two");

public:
    void record(uint32_t value) noexcept {
        uint64_t n = next_.load(std::memory_order_relaxed);
        samples_[n & (N - 1)].store(value, std::memory_order_relaxed);
        next_.store(n + 1, std::memory_order_release);
    }
    // Appends up to N recent samples to `out` (a sample being overwritten may be the newer one).
    template <class Vec>
    void collect(Vec& out) const {
        uint64_t n = next_.load(std::memory_order_acquire);
        size_t have = n < N ? static_cast<size_t>(n) : N;
        for (size_t i = 0; i < have; ++i) out.push_back(samples_[i].load(std::memory_order_relaxed));
    }

private:
    std::array<std::atomic<uint32_t>, N> samples_{};
    std::atomic<uint64_t> next_{0};
};

}  // namespace knp::host
