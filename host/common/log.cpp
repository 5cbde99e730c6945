#include "common/log.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>

namespace knp::host {

namespace {
std::atomic<int> gThreshold{static_cast<int>(LogLevel::Info)};
}

LogLevel logThreshold() noexcept { return static_cast<LogLevel>(gThreshold.load(std::memory_order_relaxed)); }
void setLogThreshold(LogLevel level) noexcept { gThreshold.store(static_cast<int>(level), std::memory_order_relaxed); }

void logWrite(LogLevel level, std::string_view message) noexcept {
    try {
        static constexpr char kLetters[] = {'E', 'W', 'I', 'D', 'T'};
        auto now = std::chrono::system_clock::now();
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
        std::time_t secs = static_cast<std::time_t>(us / 1000000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        std::string line =
            fmt::format("{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {} ", kLetters[static_cast<int>(level)], tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000, ::getpid());
        for (char c : message) line.push_back(c == '\n' ? ' ' : c);
        line.push_back('\n');
        // One write per record so concurrent threads never interleave within a line.
        [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    } catch (...) {
        // Logging must never take the process down.
    }
}

}  // namespace knp::host
