// A per-call cycle timer for the plugin benchmarks: rdtscp (waits for the timed code to retire)
// plus lfence (keeps later work from starting early), converted to nanoseconds against the
// steady clock once per process, with the timer's own median cost measured so callers can take
// it off. x86-64 only, like the machines the figures in README.md come from.
#pragma once

#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace knp_bench {

inline uint64_t cycles() noexcept {
    unsigned aux = 0;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
}

inline double cyclesPerNs() {
    static const double value = [] {
        using Clock = std::chrono::steady_clock;
        const Clock::time_point start = Clock::now();
        const uint64_t c0 = cycles();
        Clock::time_point now = start;
        while (now - start < std::chrono::milliseconds(250)) now = Clock::now();
        const uint64_t c1 = cycles();
        return static_cast<double>(c1 - c0) / std::chrono::duration<double, std::nano>(now - start).count();
    }();
    return value;
}

// The median cost of an empty timed region, in nanoseconds.
inline double timerCostNs() {
    std::vector<uint64_t> d(1 << 15);
    for (uint64_t& x : d) {
        const uint64_t a = cycles();
        x = cycles() - a;
    }
    std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(d.size() / 2), d.end());
    return static_cast<double>(d[d.size() / 2]) / cyclesPerNs();
}

// The q-quantile (0..1) of `samples` (cycles) in nanoseconds, less `costNs`, never negative.
inline double quantileNs(std::vector<uint64_t>& samples, double q, double costNs) {
    if (samples.empty()) return 0;
    auto at = samples.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(samples.size() - 1));
    std::nth_element(samples.begin(), at, samples.end());
    return std::max(0.0, static_cast<double>(*at) / cyclesPerNs() - costNs);
}

}  // namespace knp_bench
