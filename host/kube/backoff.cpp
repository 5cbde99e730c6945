#include "kube/backoff.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include <curl/curl.h>

namespace knp::host::kube {

Backoff::Backoff(BackoffParams params, uint64_t seed) : p_(params), rng_(seed) {
    if (p_.initial.count() < 1) p_.initial = std::chrono::milliseconds(1);
    if (p_.max < p_.initial) p_.max = p_.initial;
    p_.factor = std::max(1.0, p_.factor);
    p_.jitter = std::clamp(p_.jitter, 0.0, 1.0);
}

std::chrono::milliseconds Backoff::next(std::optional<std::chrono::milliseconds> retryAfter) {
    double d = static_cast<double>(p_.initial.count()) * std::pow(p_.factor, std::min<uint32_t>(failures_, 64));
    d = std::min(d, static_cast<double>(p_.max.count()));
    if (failures_ < 1000) ++failures_;
    std::uniform_real_distribution<double> u(1.0 - p_.jitter, 1.0);
    auto delay = std::chrono::milliseconds(static_cast<int64_t>(d * u(rng_)));
    if (retryAfter) delay = std::max(delay, std::min(*retryAfter, p_.maxRetryAfter));
    return delay;
}

std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r'))
        value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (std::isdigit(static_cast<unsigned char>(value.front()))) {
        uint64_t secs = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
        if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
        secs = std::min<uint64_t>(secs, 86400u * 365);
        return std::chrono::milliseconds(secs * 1000);
    }
    // RFC 9110 HTTP-date; curl_getdate parses every form a server may send.
    std::string s(value);
    time_t t = curl_getdate(s.c_str(), nullptr);
    if (t < 0) return std::nullopt;
    auto at = std::chrono::system_clock::from_time_t(t);
    if (at <= now) return std::chrono::milliseconds(0);
    return std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
}

}  // namespace knp::host::kube
