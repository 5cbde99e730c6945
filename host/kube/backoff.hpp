// Retry pacing for the watch client: exponential backoff with jitter (as client-go's
// reflector), and the server's Retry-After (429, 503) as a floor.
//
// THREAD: thread-bound (one per reflector).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

namespace knp::host::kube {

struct BackoffParams {
    std::chrono::milliseconds initial{250};
    std::chrono::milliseconds max{30000};
    double factor = 2.0;
    // Each delay is drawn uniformly from [(1 - jitter) * d, d], so retries of many clients
    // spread out and the bound `max` still holds.
    double jitter = 0.5;
    // A Retry-After above this is clamped (a server cannot park the client for hours).
    std::chrono::milliseconds maxRetryAfter{300000};
};

class Backoff {
public:
    explicit Backoff(BackoffParams params = {}, uint64_t seed = std::random_device{}());

    // The delay before the next attempt. `retryAfter`, when the server sent one, is a floor.
    std::chrono::milliseconds next(std::optional<std::chrono::milliseconds> retryAfter = std::nullopt);
    // After a success: the next failure waits `initial` again.
    void reset() noexcept { failures_ = 0; }
    uint32_t failures() const noexcept { return failures_; }
    const BackoffParams& params() const noexcept { return p_; }

private:
    BackoffParams p_;
    uint32_t failures_ = 0;
    std::mt19937_64 rng_;
};

// A Retry-After header value: delay-seconds or an HTTP-date (relative to `now`). nullopt when
// malformed; a date in the past is zero.
std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

}  // namespace knp::host::kube
