#include "kube/reflector.hpp"

#include <exception>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "common/log.hpp"

namespace knp::host::kube {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string_view stringAt(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    if (it == o.end() || !it->value().is_string()) return {};
    return it->value().get_string();
}

const json::object* objectAt(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    if (it == o.end() || !it->value().is_object()) return nullptr;
    return &it->value().get_object();
}

// The message of a Kubernetes Status body, or the start of whatever the body is.
std::string statusMessage(const std::string& body) {
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (!ec && v.is_object()) {
        std::string_view m = stringAt(v.get_object(), "message");
        if (!m.empty()) return std::string(m);
    }
    return body.substr(0, 200);
}

constexpr std::chrono::seconds kWatchGrace{30};
constexpr std::chrono::seconds kListIdle{30};
constexpr auto kMinWatch = std::chrono::seconds(1);
constexpr int kMaxContinueRestarts = 3;

}  // namespace

Reflector::Reflector(uint32_t index, WatchTarget target, std::unique_ptr<HttpSession> http, TokenSource& tokens,
                     EventQueue& queue, const std::atomic<bool>& stop, ReflectorOptions options, uint64_t seed)
    : index_(index),
      target_(std::move(target)),
      http_(std::move(http)),
      tokens_(tokens),
      queue_(queue),
      stop_(stop),
      options_(options),
      backoff_(options.backoff, seed),
      relistBackoff_(options.backoff, seed ^ 0x9e3779b97f4a7c15ull),
      rng_(seed + 1),
      cache_(options.retention),
      framer_(options.maxEventBytes) {}

Reflector::~Reflector() = default;

void Reflector::run() {
    bool needList = true;
    while (!stop_.load()) {
        Attempt a;
        try {
            a = needList ? list() : watch();
        } catch (const std::exception& e) {
            // Nothing here throws by design (errors are values); an allocation failure on a
            // giant object is the one way left. Start over with a list rather than end the thread.
            noteFailure(fmt::format("unexpected error: {}", e.what()));
            a = {Outcome::Failed, {}};
            needList = true;
        }
        std::chrono::milliseconds pause{0};
        switch (a.outcome) {
            case Outcome::Ok:
                needList = false;
                break;
            case Outcome::Gone:
                needList = true;
                pause = relistBackoff_.next();
                break;
            case Outcome::Missing:
                needList = true;
                pause = backoff_.next();
                break;
            case Outcome::Failed:
                pause = backoff_.next(a.retryAfter);
                break;
            case Outcome::Stopped:
                return;
        }
        if (pause.count() > 0) {
            logf(LogLevel::Debug, "kube: watch={:?} next attempt in {}ms", target_.describe(), pause.count());
            if (!http_->sleepFor(pause)) return;
        }
    }
}

std::string Reflector::selectorQuery() const {
    std::string q;
    if (!target_.labelSelector.empty()) q += "&labelSelector=" + queryEscape(target_.labelSelector);
    if (!target_.fieldSelector.empty()) q += "&fieldSelector=" + queryEscape(target_.fieldSelector);
    return q;
}

bool Reflector::announceRelist() {
    if (!listing_ || !syncedOnce_ || relistAnnounced_) return true;
    relistAnnounced_ = true;
    {
        std::lock_guard lock(mu_);
        ++health_.relists;
    }
    WatchEvent e;
    e.target = index_;
    e.type = KNP_EVENT_RELIST;
    return queue_.push(std::move(e));
}

bool Reflector::deliver(WatchEvent e) {
    if (!announceRelist()) return false;
    e.target = index_;
    bool object = e.type != KNP_EVENT_SYNCED && e.type != KNP_EVENT_RELIST;
    if (!queue_.push(std::move(e))) return false;
    if (object) {
        std::lock_guard lock(mu_);
        ++health_.events;
        health_.objects = cache_.size();
    }
    return true;
}

void Reflector::noteFailure(const std::string& message) {
    {
        std::lock_guard lock(mu_);
        ++health_.failures;
        health_.lastError = message;
    }
    if (!failing_) {
        logf(LogLevel::Warning, "kube: watch={:?} {}; retrying with backoff", target_.describe(), message);
        failing_ = true;
    } else {
        logf(LogLevel::Debug, "kube: watch={:?} {}", target_.describe(), message);
    }
}

void Reflector::noteSuccess() {
    if (failing_) logf(LogLevel::Info, "kube: watch={:?} recovered", target_.describe());
    failing_ = false;
    std::lock_guard lock(mu_);
    health_.lastError.clear();
    health_.resourceVersion = resourceVersion_;
    lastActivity_ = Clock::now();
}

Reflector::Attempt Reflector::failed(const HttpSession::Response& r, std::string_view what) {
    Attempt a{Outcome::Failed, r.retryAfter};
    std::string msg;
    if (r.status == 0 || (r.status >= 200 && r.status < 300))
        msg = fmt::format("{}: {}", what, r.failure ? r.failure->message : std::string("no response"));
    else
        msg = fmt::format("{}: HTTP {}: {}", what, r.status, statusMessage(r.body));
    if (r.status == 401) {
        // Tokens rotate: read the file again before the next attempt.
        tokens_.invalidate();
        if (tokens_.hasFile()) msg += " (re-reading the token file)";
    }
    if (r.retryAfter) msg += fmt::format(" (Retry-After {}ms)", r.retryAfter->count());
    noteFailure(msg);
    return a;
}

Reflector::Attempt Reflector::list() {
    struct Listing {
        bool& flag;
        explicit Listing(bool& f) : flag(f) { flag = true; }
        ~Listing() { flag = false; }
    } listing(listing_);
    cache_.beginRelist();
    std::string cont, listVersion;
    int restarts = 0;
    size_t listed = 0;
    auto started = Clock::now();
    bool loggedBad = false;
    while (true) {
        HttpSession::Request req;
        req.target = fmt::format("{}?limit={}{}", target_.path(), options_.pageSize, selectorQuery());
        if (!cont.empty()) req.target += "&continue=" + queryEscape(cont);
        req.timeout = options_.requestTimeout;
        req.idleTimeout = kListIdle;
        HttpSession::Response r = http_->get(req);
        if (r.stopped || stop_.load()) return {Outcome::Stopped, {}};
        if (r.status == 410 && !r.failure && !cont.empty() && restarts < kMaxContinueRestarts) {
            // The continue token expired mid-list: list again from the start (the marks made
            // so far stay valid).
            logf(LogLevel::Info, "kube: watch={:?} list continuation expired; listing from the start",
                 target_.describe());
            cont.clear();
            ++restarts;
            continue;
        }
        if (r.status == 404 && !r.failure) {
            // Not served (CRD not installed): an empty list, delivered once per streak.
            if (!missing_)
                logf(LogLevel::Warning,
                     "kube: watch={:?} the server does not serve this resource (CRD not installed?); subscribers "
                     "see no objects until it appears; retrying with backoff",
                     target_.describe());
            bool first = !missing_;
            missing_ = true;
            resourceVersion_.clear();
            cache_.beginRelist();  // nothing is served: sweep everything, also what earlier pages marked
            for (WatchEvent& e : cache_.sweep())
                if (!deliver(std::move(e))) return {Outcome::Stopped, {}};
            if (first) {
                WatchEvent s;
                s.type = KNP_EVENT_SYNCED;
                if (!deliver(std::move(s))) return {Outcome::Stopped, {}};
                syncedOnce_ = true;
                relistAnnounced_ = false;
            }
            std::lock_guard lock(mu_);
            health_.synced = true;
            health_.missing = true;
            health_.objects = 0;
            health_.lastError = "HTTP 404: resource not served";
            return {Outcome::Missing, {}};
        }
        if (r.status != 200 || r.failure) return failed(r, "list");

        json::monotonic_resource mr;
        boost::system::error_code ec;
        json::value v = json::parse(r.body, ec, &mr);
        r.body = std::string();
        if (ec || !v.is_object()) {
            noteFailure(fmt::format("list: malformed response: {}", ec ? ec.message() : "not an object"));
            return {Outcome::Failed, {}};
        }
        json::object& page = v.get_object();
        const json::object* meta = objectAt(page, "metadata");
        std::string listKind(stringAt(page, "kind"));
        std::string kind = listKind.ends_with("List") ? listKind.substr(0, listKind.size() - 4) : target_.kind;
        std::string apiVersion(stringAt(page, "apiVersion"));
        if (apiVersion.empty()) apiVersion = target_.apiVersion();
        if (auto it = page.find("items"); it != page.end() && it->value().is_array()) {
            for (json::value& item : it->value().get_array()) {
                if (!item.is_object()) continue;
                auto d = decodeObject(item.get_object(), apiVersion, kind, options_.retention);
                if (!d) {
                    if (!loggedBad)
                        logf(LogLevel::Warning, "kube: watch={:?} list: skipping an item: {}", target_.describe(),
                             d.error().message);
                    loggedBad = true;
                    continue;
                }
                ++listed;
                if (auto e = cache_.listed(std::move(*d)); e && !deliver(std::move(*e))) return {Outcome::Stopped, {}};
            }
        }
        cont = meta ? std::string(stringAt(*meta, "continue")) : std::string();
        if (meta && (listVersion.empty() || cont.empty())) listVersion = stringAt(*meta, "resourceVersion");
        if (cont.empty()) break;
    }

    for (WatchEvent& e : cache_.sweep())
        if (!deliver(std::move(e))) return {Outcome::Stopped, {}};
    WatchEvent s;
    s.type = KNP_EVENT_SYNCED;
    if (!deliver(std::move(s))) return {Outcome::Stopped, {}};
    if (missing_) logf(LogLevel::Info, "kube: watch={:?} the resource is served now", target_.describe());
    logf(syncedOnce_ ? LogLevel::Info : LogLevel::Debug,
         "kube: watch={:?} listed objects={} resourceVersion={} in {}ms", target_.describe(), listed, listVersion,
         std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    syncedOnce_ = true;
    relistAnnounced_ = false;
    missing_ = false;
    resourceVersion_ = listVersion;
    noteSuccess();
    std::lock_guard lock(mu_);
    health_.synced = true;
    health_.missing = false;
    health_.objects = cache_.size();
    return {Outcome::Ok, {}};
}

bool Reflector::handleLine(std::string_view line, Attempt& result, bool& activity) {
    json::monotonic_resource mr;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec, &mr);
    if (ec || !v.is_object()) {
        noteFailure(fmt::format("watch: malformed event ({})", ec ? ec.message() : "not an object"));
        result.outcome = Outcome::Failed;
        return false;
    }
    json::object& ev = v.get_object();
    std::string_view type = stringAt(ev, "type");
    auto objIt = ev.find("object");
    if (objIt == ev.end() || !objIt->value().is_object()) {
        noteFailure(fmt::format("watch: {} event without an object", type));
        result.outcome = Outcome::Failed;
        return false;
    }
    json::object& obj = objIt->value().get_object();
    if (type == "ERROR") {
        int64_t code = 0;
        if (auto c = obj.find("code"); c != obj.end() && c->value().is_int64()) code = c->value().get_int64();
        if (code == 410) {
            logf(LogLevel::Info, "kube: watch={:?} resourceVersion {} is too old (410 Gone): relisting",
                 target_.describe(), resourceVersion_);
            result.outcome = Outcome::Gone;
        } else {
            noteFailure(fmt::format("watch: ERROR event {}: {}", code, stringAt(obj, "message")));
            result.outcome = Outcome::Failed;
        }
        return false;
    }
    if (type == "BOOKMARK") {
        if (const json::object* md = objectAt(obj, "metadata")) {
            std::string_view rv = stringAt(*md, "resourceVersion");
            if (!rv.empty()) resourceVersion_ = rv;
        }
    } else if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
        uint32_t t = type == "ADDED" ? KNP_EVENT_ADDED : type == "MODIFIED" ? KNP_EVENT_MODIFIED : KNP_EVENT_DELETED;
        auto d = decodeObject(obj, target_.apiVersion(), target_.kind, options_.retention);
        if (!d) {
            logf(LogLevel::Warning, "kube: watch={:?} skipping a {} event: {}", target_.describe(), type,
                 d.error().message);
            return true;
        }
        if (!d->resourceVersion.empty()) resourceVersion_ = d->resourceVersion;
        if (auto e = cache_.apply(t, std::move(*d)); e && !deliver(std::move(*e))) {
            result.outcome = Outcome::Stopped;
            return false;
        }
    } else {
        logf(LogLevel::Debug, "kube: watch={:?} ignoring a {:?} event", target_.describe(), type);
        return true;
    }
    if (!activity) {
        // The stream works: the next failure starts the backoff afresh.
        backoff_.reset();
        relistBackoff_.reset();
        activity = true;
    }
    noteSuccess();
    return true;
}

Reflector::Attempt Reflector::watch() {
    auto base = options_.watchTimeout.count() > 0 ? options_.watchTimeout.count() : 300;
    std::uniform_int_distribution<int64_t> spread(base, 2 * base - 1);
    int64_t timeoutSeconds = spread(rng_);
    HttpSession::Request req;
    req.target = fmt::format("{}?watch=true&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}{}",
                             target_.path(), queryEscape(resourceVersion_), timeoutSeconds, selectorQuery());
    req.timeout = std::chrono::seconds(timeoutSeconds) + kWatchGrace;
    req.idleTimeout = options_.idleTimeout;
    framer_.reset();
    Attempt result{Outcome::Ok, {}};
    bool activity = false;
    std::optional<Error> framing;
    req.onBody = [&](std::string_view chunk) {
        auto st = framer_.feed(chunk, [&](std::string_view line) { return handleLine(line, result, activity); });
        if (!st) framing = std::move(st).error();
        return st.ok() && result.outcome == Outcome::Ok && !stop_.load();
    };
    auto started = Clock::now();
    HttpSession::Response r = http_->get(req);
    if (r.stopped || stop_.load() || result.outcome == Outcome::Stopped) return {Outcome::Stopped, {}};
    if (r.status == 200) {
        {
            std::lock_guard lock(mu_);
            ++health_.watchStarts;
        }
        if (result.outcome != Outcome::Ok) return result;
        if (framing) {
            noteFailure("watch: " + framing->message);
            return {Outcome::Failed, {}};
        }
        if (r.failure) {
            noteFailure(fmt::format("watch: stream ended: {}{}", r.failure->message,
                                    r.timedOut ? " (nothing arrived in time)" : ""));
            return {Outcome::Failed, {}};
        }
        if (framer_.pending() > 0) {
            noteFailure("watch: stream ended in the middle of an event");
            return {Outcome::Failed, {}};
        }
        if (!activity && Clock::now() - started < kMinWatch) {
            // A server that ends watches at once must not make us reconnect in a tight loop.
            noteFailure("watch: the server ended the stream at once");
            return {Outcome::Failed, {}};
        }
        logf(LogLevel::Debug, "kube: watch={:?} stream ended; resuming from resourceVersion {}", target_.describe(),
             resourceVersion_);
        return {Outcome::Ok, {}};
    }
    if (r.status == 410 && !r.failure) {
        logf(LogLevel::Info, "kube: watch={:?} resourceVersion {} is too old (HTTP 410): relisting", target_.describe(),
             resourceVersion_);
        return {Outcome::Gone, {}};
    }
    if (r.status == 404 && !r.failure) {
        logf(LogLevel::Info, "kube: watch={:?} HTTP 404: the resource went away; listing", target_.describe());
        return {Outcome::Missing, {}};
    }
    return failed(r, "watch");
}

TargetHealth Reflector::health() const {
    std::lock_guard lock(mu_);
    TargetHealth h = health_;
    if (lastActivity_ != Clock::time_point{}) h.lastEventAge = Clock::now() - lastActivity_;
    return h;
}

}  // namespace knp::host::kube
