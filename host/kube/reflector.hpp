// One watched resource, kept in step with the API server the way client-go's reflector does:
//
//   LIST (paginated: limit/continue) → deliver the differences to what was delivered before
//   (ObjectCache: mark and sweep, so objects deleted while the watch was down become DELETED),
//   then SYNCED → WATCH from the list's resourceVersion with allowWatchBookmarks and a
//   server-side timeoutSeconds → on a clean end or a cut stream, WATCH again from the last
//   resourceVersion seen (an event's or a bookmark's); on 410 Gone (status or ERROR event),
//   RELIST. Failures wait an exponential backoff with jitter (at least the server's
//   Retry-After); a 401 re-reads the token file first.
//
// A resource the server does not serve (404: its CRD is not installed) is not fatal: it is
// logged once, treated as an empty list — DELETED for anything delivered before, then SYNCED,
// so readiness does not wait for a CRD that may never come — and listed again with backoff
// until it appears, when its objects arrive as ADDED (after RELIST) and SYNCED.
//
// THREAD: run() is the body of the reflector's own thread, which owns the cache and the HTTP
// session; health() and requestStop() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "kube/backoff.hpp"
#include "kube/event_queue.hpp"
#include "kube/framer.hpp"
#include "kube/http.hpp"
#include "kube/objects.hpp"

namespace knp::host::kube {

struct ReflectorOptions {
    uint32_t pageSize = 500;  // LIST limit (client-go's pager default)
    // Server-side timeoutSeconds of a watch, drawn from [watchTimeout, 2 * watchTimeout) as
    // client-go does, so many clients do not reconnect in step. The client gives up itself
    // 30 s after the server should have ended it.
    std::chrono::seconds watchTimeout{300};
    // A watch on which nothing (no event, no bookmark) arrives for this long is dropped and
    // resumed; real API servers send a bookmark about every minute to watches that asked.
    // 0 disables (TCP keepalive still catches a dead peer).
    std::chrono::seconds idleTimeout{300};
    std::chrono::milliseconds requestTimeout{60000};  // one LIST page
    BackoffParams backoff;
    size_t maxEventBytes = size_t{64} << 20;  // one watch event line
    // What the cache keeps per object (it is most of the client's memory: see
    // tests/kube/README.md); Full keeps the ABI's promise that a DELETED found by a relist
    // carries the whole last known state.
    ObjectRetention retention = ObjectRetention::Full;
};

// Per-target health, for /readyz and metrics.
struct TargetHealth {
    bool synced = false;          // delivered SYNCED at least once (a missing resource counts)
    bool missing = false;         // the server answers 404 for it (CRD not installed)
    uint64_t relists = 0;         // lists after the first (410 Gone, resource reappeared, ...)
    uint64_t watchStarts = 0;     // watch requests answered 200
    uint64_t events = 0;          // events delivered (ADDED/MODIFIED/DELETED)
    uint64_t failures = 0;        // failed requests and streams
    size_t objects = 0;           // objects currently held
    std::string resourceVersion;  // last seen
    std::string lastError;        // "" when the last attempt succeeded
    // Since the last sign of life: an event, a bookmark, or a successful list.
    std::optional<std::chrono::steady_clock::duration> lastEventAge;
};

class Reflector {
public:
    Reflector(uint32_t index, WatchTarget target, std::unique_ptr<HttpSession> http, TokenSource& tokens,
              EventQueue& queue, const std::atomic<bool>& stop, ReflectorOptions options, uint64_t seed);
    ~Reflector();

    void run();
    void wake() noexcept { http_->wake(); }
    TargetHealth health() const;
    const WatchTarget& target() const noexcept { return target_; }

private:
    enum class Outcome { Ok, Gone, Missing, Failed, Stopped };
    struct Attempt {
        Outcome outcome = Outcome::Ok;
        std::optional<std::chrono::milliseconds> retryAfter;
    };
    Attempt list();
    Attempt watch();
    Attempt failed(const HttpSession::Response& r, std::string_view what);
    bool deliver(WatchEvent e);
    bool announceRelist();
    bool handleLine(std::string_view line, Attempt& result, bool& activity);
    void noteFailure(const std::string& message);
    void noteSuccess();
    std::string selectorQuery() const;

    const uint32_t index_;
    const WatchTarget target_;
    std::unique_ptr<HttpSession> http_;
    TokenSource& tokens_;
    EventQueue& queue_;
    const std::atomic<bool>& stop_;
    const ReflectorOptions options_;
    Backoff backoff_;        // failed requests and streams
    Backoff relistBackoff_;  // 410 Gone: a server that always answers 410 must not cause a list storm
    std::mt19937_64 rng_;
    ObjectCache cache_;
    LineFramer framer_;
    std::string resourceVersion_;
    bool syncedOnce_ = false;
    bool listing_ = false;  // inside list(): what it delivers follows a RELIST (after the first sync)
    bool relistAnnounced_ = false;
    bool missing_ = false;
    bool failing_ = false;  // in a failure streak (logged once)
    uint64_t streak_ = 0;

    mutable std::mutex mu_;  // guards health_
    TargetHealth health_;
    std::chrono::steady_clock::time_point lastActivity_{};
};

}  // namespace knp::host::kube
