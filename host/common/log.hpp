// Host logging: klog-style one-line records on stderr. Thread-safe (one write(2) per line).
#pragma once

#include <atomic>
#include <string_view>

#include <fmt/format.h>

namespace knp::host {

enum class LogLevel : int { Error = 0, Warning = 1, Info = 2, Debug = 3, Trace = 4 };

// The most verbose level that is printed. Info by default; `-v` raises it.
LogLevel logThreshold() noexcept;
void setLogThreshold(LogLevel level) noexcept;
inline bool logEnabled(LogLevel level) noexcept { return level <= logThreshold(); }

// Writes one record; `message` is printed as given, newlines folded to keep one line a record.
void logWrite(LogLevel level, std::string_view message) noexcept;

template <class... Args>
void logf(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
    if (!logEnabled(level)) return;
    logWrite(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace knp::host
