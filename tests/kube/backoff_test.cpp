// Backoff bounds, jitter and Retry-After.
#include <algorithm>
#include <chrono>
#include <set>

#include <doctest/doctest.h>

#include "kube/backoff.hpp"

using namespace knp::host::kube;
using namespace std::chrono_literals;

TEST_CASE("backoff: exponential, jittered, bounded, reset") {
    BackoffParams p;
    p.initial = 100ms;
    p.max = 3000ms;
    p.factor = 2;
    p.jitter = 0.5;
    for (uint64_t seed = 0; seed < 200; ++seed) {
        Backoff b(p, seed);
        int64_t ceiling = 100;
        for (int i = 0; i < 12; ++i) {
            auto d = b.next().count();
            CHECK(d <= ceiling);
            CHECK(d >= ceiling / 2);
            ceiling = std::min<int64_t>(ceiling * 2, 3000);
        }
        CHECK(b.failures() == 12);
        b.reset();
        CHECK(b.next().count() <= 100);
    }
}

TEST_CASE("backoff: jitter spreads clients apart") {
    BackoffParams p;
    p.initial = 1000ms;
    std::set<int64_t> seen;
    for (uint64_t seed = 0; seed < 20; ++seed) seen.insert(Backoff(p, seed).next().count());
    CHECK(seen.size() > 10);
}

TEST_CASE("backoff: Retry-After is a floor, clamped") {
    BackoffParams p;
    p.initial = 100ms;
    p.maxRetryAfter = 10s;
    Backoff b(p, 1);
    CHECK(b.next(2s) == 2s);
    CHECK(b.next(1h) == 10s);
    CHECK(b.next(0ms) <= 400ms);
}

TEST_CASE("Retry-After parsing: seconds, HTTP-date, garbage") {
    auto now = std::chrono::system_clock::from_time_t(1700000000);  // Tue, 14 Nov 2023 22:13:20 GMT
    CHECK(parseRetryAfter("3", now) == 3000ms);
    CHECK(parseRetryAfter(" 0 ", now) == 0ms);
    CHECK(parseRetryAfter("Tue, 14 Nov 2023 22:13:25 GMT", now) == 5000ms);
    CHECK(parseRetryAfter("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0ms);
    CHECK_FALSE(parseRetryAfter("", now));
    CHECK_FALSE(parseRetryAfter("3s", now));
    CHECK_FALSE(parseRetryAfter("soon", now));
    CHECK_FALSE(parseRetryAfter("-1", now));
}
