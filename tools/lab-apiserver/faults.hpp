// Fault injection state and bearer-token authentication, driven by the admin API
// (POST /lab/faults, POST /lab/token; see README.md). THREAD: thread-bound to the io_context
// thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "objects.hpp"
#include "resources.hpp"
#include "watch.hpp"

namespace knp::lab {

class Faults {
public:
    // The next `count` requests for `rt` (every kind when null) with one of `verbs` (all when
    // empty) fail with `code` (429 adds Retry-After: retryAfter).
    void addError(const ResourceType* rt, int code, int retryAfter, int count, std::vector<std::string> verbs);
    std::optional<ApiError> takeError(const ResourceType& rt, std::string_view verb);

    // The next `count` watches of `rt` (any kind when null) are cut or stalled as they start.
    void armWatch(const ResourceType* rt, StreamSignal s, int count);
    std::optional<StreamSignal> takeWatchFault(const ResourceType& rt);

    // Every watch event is written as two HTTP chunks, split inside the JSON.
    bool splitChunks = false;
    // A watch from an expired resourceVersion gets an HTTP 410 instead of a 200 stream with an
    // ERROR event (both happen with real API servers, depending on the path).
    bool goneAsStatus = false;

    void clear();
    json::object describe() const;

private:
    struct ErrorFault {
        const ResourceType* rt;
        int code;
        int retryAfter;
        int remaining;
        std::vector<std::string> verbs;
    };
    struct WatchFault {
        const ResourceType* rt;
        StreamSignal signal;
        int remaining;
    };
    std::vector<ErrorFault> errors_;
    std::vector<WatchFault> watches_;
};

class Auth {
public:
    explicit Auth(std::string token) : initial_(token), current_(std::move(token)) {}

    // Kubernetes API requests: the current token, unless it has been rejected.
    bool allowApi(std::string_view authorization) const;
    // The admin API also takes the startup token and a rejected current one, so a test can
    // always repair what it broke.
    bool allowAdmin(std::string_view authorization) const;
    // Public endpoints (/livez, /readyz, /healthz, /version) admit anonymous requests, as the
    // real server's system:public-info-viewer role does; a wrong token is still 401.
    bool allowPublic(std::string_view authorization) const;

    void rejectCurrent() { rejected_ = true; }
    void setToken(std::string token);
    const std::string& token() const { return current_; }
    bool rejected() const { return rejected_; }

private:
    std::string initial_;
    std::string current_;
    bool rejected_ = false;
};

}  // namespace knp::lab
