// Host logging: one record per line on stderr, klog-style text by default or one JSON object
// per line (--logging-format=json). Thread-safe (one write(2) per record).
//
// Text:  I1126 12:00:00.123456 4242 knpd: reloaded key="value"
// JSON:  {"ts":"2026-11-26T12:00:00.123456Z","level":"info","v":2,"pid":4242,"msg":"knpd: reloaded","key":"value"}
//
// A record is formatted in a fixed stack buffer when it fits (the common case), so logging at
// an enabled level does not allocate; per-packet callers must still rate-limit (style rule 5).
#pragma once

#include <atomic>
#include <initializer_list>
#include <span>
#include <string_view>

#include <fmt/format.h>

namespace knp::host {

// Levels are verbosities (-v N prints every level <= N). Packet (5) is for per-packet
// decisions: never on by default, and rate-limited by its callers.
enum class LogLevel : int { Error = 0, Warning = 1, Info = 2, Debug = 3, Trace = 4, Packet = 5 };
inline constexpr int kMaxLogVerbosity = 5;

enum class LogFormat : int { Text = 0, Json = 1 };

// The most verbose level that is printed. Info by default; `-v` raises it.
LogLevel logThreshold() noexcept;
void setLogThreshold(LogLevel level) noexcept;
inline bool logEnabled(LogLevel level) noexcept { return level <= logThreshold(); }
void setLogFormat(LogFormat format) noexcept;
LogFormat logFormat() noexcept;

// A structured field: key="value" in text, "key":"value" in JSON.
struct LogField {
    std::string_view key;
    std::string_view value;
};

// Writes one record; `message` is printed as given, newlines folded to keep one line a record.
void logWrite(LogLevel level, std::string_view message, std::span<const LogField> fields = {}) noexcept;

template <class... Args>
void logf(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
    if (!logEnabled(level)) return;
    logWrite(level, fmt::format(f, std::forward<Args>(args)...));
}

// A message with structured fields, e.g. logKV(LogLevel::Info, "reloaded", {{"file", path}}).
inline void logKV(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) noexcept {
    if (!logEnabled(level)) return;
    logWrite(level, message, std::span<const LogField>(fields.begin(), fields.size()));
}

}  // namespace knp::host
