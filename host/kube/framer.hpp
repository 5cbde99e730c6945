// Splits a watch response body into events. The API server writes one JSON object per line
// ("\n"-terminated); HTTP chunk boundaries fall anywhere, including inside a multi-byte
// character or a line of several megabytes, so bytes are carried over until their newline.
//
// THREAD: thread-bound (one per watch stream).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace knp::host::kube {

class LineFramer {
public:
    // A line longer than `maxLine` bytes is an error (the stream is dropped and resumed).
    explicit LineFramer(size_t maxLine = size_t{64} << 20) : maxLine_(maxLine) {}

    // Calls `onLine(std::string_view)` for each complete line in order, without its "\n" (and
    // without a trailing "\r"); blank lines are skipped. A view is valid only during the call.
    // `onLine` returns false to stop early (the rest of the chunk is dropped).
    template <class F>
    Status feed(std::string_view chunk, F&& onLine) {
        while (!chunk.empty()) {
            size_t nl = chunk.find('\n');
            if (nl == std::string_view::npos) {
                if (pending_.size() + chunk.size() > maxLine_) return tooLong();
                pending_.append(chunk);
                return okStatus();
            }
            std::string_view line;
            if (pending_.empty()) {
                line = chunk.substr(0, nl);  // the common case: no copy
            } else {
                if (pending_.size() + nl > maxLine_) return tooLong();
                pending_.append(chunk.substr(0, nl));
                line = pending_;
            }
            chunk.remove_prefix(nl + 1);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.size() > maxLine_) return tooLong();
            bool more = line.empty() || onLine(line);
            pending_.clear();
            if (!more) return okStatus();
        }
        return okStatus();
    }

    // Bytes of an unfinished line (a stream that ends with some is cut).
    size_t pending() const noexcept { return pending_.size(); }
    void reset() noexcept {
        pending_.clear();
        pending_.shrink_to_fit();
    }

private:
    Status tooLong() {
        reset();
        return makeError("a watch event is longer than {} bytes", maxLine_);
    }
    size_t maxLine_;
    std::string pending_;
};

}  // namespace knp::host::kube
