#include "common/log.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>

namespace knp::host {

namespace {

std::atomic<int> gThreshold{static_cast<int>(LogLevel::Info)};
std::atomic<int> gFormat{static_cast<int>(LogFormat::Text)};

// Records up to this size are built on the stack; longer ones spill to the heap.
using LineBuffer = fmt::basic_memory_buffer<char, 2048>;

void append(LineBuffer& b, std::string_view s) { b.append(s.data(), s.data() + s.size()); }

// Text: newlines folded so a record stays one line.
void appendFolded(LineBuffer& b, std::string_view s) {
    for (char c : s) b.push_back(c == '\n' ? ' ' : c);
}

// A JSON string; text-format field values are quoted the same way (as klog quotes them).
void appendJsonString(LineBuffer& b, std::string_view s) {
    b.push_back('"');
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            b.push_back('\\');
            b.push_back(c);
        } else if (c == '\n') {
            append(b, "\\n");
        } else if (u < 0x20) {
            fmt::format_to(std::back_inserter(b), "\\u{:04x}", u);
        } else {
            b.push_back(c);
        }
    }
    b.push_back('"');
}

}  // namespace

LogLevel logThreshold() noexcept { return static_cast<LogLevel>(gThreshold.load(std::memory_order_relaxed)); }
void setLogThreshold(LogLevel level) noexcept { gThreshold.store(static_cast<int>(level), std::memory_order_relaxed); }
void setLogFormat(LogFormat format) noexcept { gFormat.store(static_cast<int>(format), std::memory_order_relaxed); }
LogFormat logFormat() noexcept { return static_cast<LogFormat>(gFormat.load(std::memory_order_relaxed)); }

void logWrite(LogLevel level, std::string_view message, std::span<const LogField> fields) noexcept {
    try {
        static constexpr char kLetters[] = {'E', 'W', 'I', 'D', 'T', 'T'};
        static constexpr std::string_view kNames[] = {"error", "warning", "info", "debug", "trace", "trace"};
        int lv = static_cast<int>(level);
        if (lv < 0) lv = 0;
        if (lv > kMaxLogVerbosity) lv = kMaxLogVerbosity;
        auto now = std::chrono::system_clock::now();
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
        std::time_t secs = static_cast<std::time_t>(us / 1000000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        LineBuffer line;
        auto out = std::back_inserter(line);
        const bool json = logFormat() == LogFormat::Json;
        if (json) {
            fmt::format_to(
                out,
                "{{\"ts\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\",\"level\":\"{}\",\"v\":{},\"pid\":{},\"msg\":",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000,
                kNames[lv], lv, ::getpid());
            appendJsonString(line, message);
        } else {
            fmt::format_to(out, "{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {} ", kLetters[lv], tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000, ::getpid());
            appendFolded(line, message);
        }
        // "key":"value" members, or key="value" after the message.
        for (const LogField& f : fields) {
            line.push_back(json ? ',' : ' ');
            if (json) {
                appendJsonString(line, f.key);
            } else {
                appendFolded(line, f.key);
            }
            line.push_back(json ? ':' : '=');
            appendJsonString(line, f.value);
        }
        if (json) line.push_back('}');
        line.push_back('\n');
        // One write per record so concurrent threads never interleave within a line.
        [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    } catch (...) {
        // Logging must never take the process down.
    }
}

}  // namespace knp::host
